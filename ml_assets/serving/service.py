"""The serving service behind the HTTP API: feature assembly, routing between champion and
challenger, guardrails, prediction log and metrics. `app.py` only maps HTTP onto it.

Settings come from the environment (see `ServingSettings.from_env`).
"""

from __future__ import annotations

import math
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ml_assets.serving.access import AccessSettings
from ml_assets.serving.assembly import FeatureAssembler, FlightQuery
from ml_assets.serving.deployment import ModelDeployment, Routing
from ml_assets.serving.feed_guard import FeedClock, guarded_ingest, implausible_state, rejection_summary
from ml_assets.serving.guardrails import (
    SHADOW,
    ChallengerCall,
    GuardrailLimits,
    GuardrailWindow,
    answering_role,
    shadowed,
)
from ml_assets.serving.inference_protocol import (
    OUTPUT,
    InferenceResponse,
    InferenceRows,
    ResponseOutput,
)
from ml_assets.serving.metrics import ServingMetrics
from ml_assets.serving.prediction_log import SPILL_FOLDER, PredictionLogWriter, open_prediction_log, utc_now_iso
from ml_assets.serving.realtime import LOCAL
from ml_assets.serving.schemas import EventsResponse
from ml_assets.serving.store import OnlineStoreError, open_store, store_url_from_env

MODEL_NAME = "flight_disruption"
COMPARISON_QUEUE = 2000  # shadow and canary comparisons waiting; beyond, they are skipped
REJECTIONS_LISTED = 100  # per events response; all are kept in the store's dead letters
LATEST_DEAD_LETTERS = 5  # in /v1/status


class ServiceUnavailable(RuntimeError):
    """The service cannot answer now (no champion loaded); the reason says why."""


@dataclass(frozen=True)
class ServingSettings:
    data_dir: Path
    store_url: str | None
    tracking_uri: str
    model_name: str = MODEL_NAME
    api_token: str | None = None
    max_batch: int = 1000
    poll_interval_s: float = 5.0
    guardrails: GuardrailLimits = field(default_factory=GuardrailLimits)
    read_token: str | None = None
    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None
    feed_clock: FeedClock = field(default_factory=FeedClock)

    def __post_init__(self):
        self.access()  # refuses a contradictory access configuration at once

    def access(self) -> AccessSettings:
        rate, burst = self.rate_limit_per_s, self.rate_limit_burst
        return AccessSettings(self.api_token, self.read_token, rate, burst or max(1, math.ceil(rate or 1)))

    @classmethod
    def from_env(cls) -> ServingSettings:
        """ML_ASSETS_ONLINE_STORE, ML_ASSETS_API_TOKEN, ML_ASSETS_READ_TOKEN, MLFLOW_TRACKING_URI
        (default: the local store under ML_ASSETS_DATA_DIR), ML_ASSETS_MAX_BATCH,
        ML_ASSETS_REGISTRY_POLL_SECONDS, ML_ASSETS_RATE_LIMIT(_BURST), the ML_ASSETS_GUARDRAIL_* limits
        and the feed clock (`FeedClock.from_env`)."""
        from ml_assets.resources.mlflow import local_mlflow
        from ml_assets.settings import data_dir

        return cls(
            data_dir=data_dir(),
            store_url=store_url_from_env(),
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or local_mlflow().prepared_uri(),
            api_token=os.environ.get("ML_ASSETS_API_TOKEN") or None,
            max_batch=int(os.environ.get("ML_ASSETS_MAX_BATCH", "1000")),
            poll_interval_s=float(os.environ.get("ML_ASSETS_REGISTRY_POLL_SECONDS", "5")),
            guardrails=GuardrailLimits.from_env(),
            read_token=os.environ.get("ML_ASSETS_READ_TOKEN") or None,
            rate_limit_per_s=float(os.environ["ML_ASSETS_RATE_LIMIT"]) if os.environ.get("ML_ASSETS_RATE_LIMIT") else None,
            rate_limit_burst=int(os.environ["ML_ASSETS_RATE_LIMIT_BURST"]) if os.environ.get("ML_ASSETS_RATE_LIMIT_BURST") else None,
            feed_clock=FeedClock.from_env(),
        )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return parts._replace(netloc=host).geturl()


class ServingService:
    def __init__(self, settings: ServingSettings, *, store=None, registry=None, loader=None, prediction_log=None):
        from ml_assets.models.registry import ModelRegistry

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in logs
        self.settings = settings
        self.metrics = ServingMetrics()
        self.store = store or open_store(settings.store_url, settings.data_dir)
        self.assembler = FeatureAssembler(self.store)
        self.registry = registry or ModelRegistry(settings.tracking_uri, settings.model_name)
        self.deployment = ModelDeployment(self.registry, self.metrics, loader, settings.poll_interval_s)
        self.guardrails = GuardrailWindow(settings.guardrails)
        log = prediction_log or open_prediction_log(settings.store_url, settings.data_dir)
        self.log_writer = PredictionLogWriter(log, settings.data_dir / SPILL_FOLDER, self.metrics)
        self._comparisons: queue.Queue = queue.Queue(maxsize=COMPARISON_QUEUE)
        self._worker: threading.Thread | None = None
        self._judged: str | None = None  # the rollout (start time) the guardrail window holds
        self._started_at: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker:
            return
        self._started_at = time.time()
        self.log_writer.start()
        self.deployment.start()
        self._worker = threading.Thread(target=self._compare, name="challenger-comparisons", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        if not self._worker:
            return
        self.deployment.stop()
        self._comparisons.put(None)
        self._worker.join()
        self._worker = None
        self.log_writer.stop()
        self.store.close()

    def readiness(self) -> tuple[bool, str | None]:
        if self.deployment.routing.champion is None:
            return False, f"no champion model is loaded ({self.deployment.last_error or 'waiting for the registry'})"
        try:
            self.store.ping()
            problem = implausible_state(self.settings.feed_clock, self.store.status(), time.time())
        except OnlineStoreError as error:
            self.metrics.store_errors.labels(operation="ping").inc()
            return False, str(error)
        return problem is None, problem

    # --- predictions -----------------------------------------------------------------------------

    def _routing(self) -> Routing:
        routing = self.deployment.routing
        if routing.champion is None:
            raise ServiceUnavailable(
                f"no champion model is loaded ({self.deployment.last_error or 'waiting for the registry'})"
            )
        return routing

    def predict(
        self, flights: list, return_features: bool = False, request_id: str | None = None, caller: str | None = None
    ) -> dict:
        """The PredictResponse as a JSON-ready dict (built directly: the hot path skips a model
        validation per flight; the tests hold it to `schemas.PredictResponse`)."""
        began = time.perf_counter()
        request_id = request_id or uuid.uuid4().hex
        routing = self._routing()
        queries = [FlightQuery(f.carrier, f.flight, f.origin, f.dest, f.sched_dep, f.tailnum) for f in flights]
        try:
            assembled = self.assembler.assemble(queries)
        except OnlineStoreError:
            self.metrics.store_errors.labels(operation="read").inc()
            raise
        categorical = [a.categorical() for a in assembled]
        numeric = np.array([a.numeric() for a in assembled], dtype=np.float64)
        keys = [a.key for a in assembled]
        roles = [answering_role(k, routing.mode, routing.rollout.percent) for k in keys]
        scores, roles = self._score(routing, roles, categorical, numeric)
        versions = [routing.challenger.version if r == "challenger" else routing.champion.version for r in roles]
        predictions = [
            {
                "flight_key": a.key, "risk": float(s), "model_version": v, "role": r,
                "prediction_time": _iso_z(a.prediction_time), "freshness": _freshness(a.freshness),
                "features": a.features if return_features else None,
            }  # fmt: skip
            for a, s, v, r in zip(assembled, scores, versions, roles)
        ]
        latency_ms = (time.perf_counter() - began) * 1000
        self._observe(assembled, scores, versions, roles)
        records = [
            _record(request_id, str(a.freshness["daily_features_for"]), a.key, a.prediction_time.isoformat(),
                    v, r, float(s), latency_ms, a.features, caller)  # fmt: skip
            for a, s, v, r in zip(assembled, scores, versions, roles)
        ]
        self.log_writer.submit(records)
        if routing.mode == SHADOW:
            rows = [i for i, k in enumerate(keys) if shadowed(k, SHADOW, routing.rollout.percent)]
            if rows:
                self._queue_comparison(("shadow", routing, request_id, assembled, rows, categorical, numeric, scores, caller))
        return {"request_id": request_id, "model_name": self.settings.model_name, "predictions": predictions}

    def _score(self, routing: Routing, roles: list[str], categorical: list, numeric: np.ndarray):
        """Scores per row from the model each row is routed to; rows of a failing challenger fall
        back to the champion (the failure goes to the guardrails)."""
        scores = np.empty(len(roles))
        chosen = [i for i, r in enumerate(roles) if r == "challenger"]
        if chosen:
            began = time.perf_counter()
            try:
                answer = np.asarray(
                    routing.challenger.scorer.predict_vectors([categorical[i] for i in chosen], numeric[chosen]), float
                )
                failed = answer.shape != (len(chosen),) or not np.all(np.isfinite(answer) & (answer >= 0) & (answer <= 1))
            except Exception:
                answer, failed = None, True
            latency = time.perf_counter() - began
            if failed:
                roles = ["champion" if r == "challenger" else r for r in roles]
                self.metrics.challenger_fallbacks.inc(len(chosen))
            else:
                scores[chosen] = answer
            self._queue_comparison(("canary", routing, latency, failed, answer, chosen, categorical, numeric))
        kept = [i for i, r in enumerate(roles) if r == "champion"]
        if kept:
            scores[kept] = routing.champion.scorer.predict_vectors([categorical[i] for i in kept], numeric[kept])
        return scores, roles

    def infer(self, request: InferenceRows, caller: str | None = None) -> InferenceResponse:
        """Open Inference Protocol: full feature vectors in, the champion's probabilities out."""
        began = time.perf_counter()
        routing = self._routing()
        categorical, numeric = request.categorical, request.numeric
        scores = np.asarray(routing.champion.scorer.predict_vectors(categorical, numeric), float)
        request_id = request.request_id or uuid.uuid4().hex
        version = routing.champion.version
        latency_ms = (time.perf_counter() - began) * 1000
        today = str(datetime.now(LOCAL).date())
        self.log_writer.submit([
            _record(request_id, today, None, None, version, "champion", float(s), latency_ms,
                    dict(zip(CATEGORICAL_FEATURES, c)) | dict(zip(NUMERIC_FEATURES, _nulls(n.tolist()))), caller)  # fmt: skip
            for s, c, n in zip(scores, categorical, numeric)
        ])  # fmt: skip
        for s in scores:
            self.metrics.predictions.labels(model_version=version, role="champion").inc()
            self.metrics.prediction_score.labels(role="champion").observe(float(s))
        return InferenceResponse(
            model_name=self.settings.model_name, model_version=version, id=request_id,
            outputs=[ResponseOutput(name=OUTPUT, shape=[len(scores)], datatype="FP64", data=scores.tolist())],
        )  # fmt: skip

    def _observe(self, assembled, scores, versions, roles) -> None:
        now = time.time()
        counts: dict[tuple[str, str], int] = {}
        for s, v, r in zip(scores, versions, roles):
            counts[(v, r)] = counts.get((v, r), 0) + 1
            self.metrics.prediction_score.labels(role=r).observe(float(s))
        for (v, r), n in counts.items():
            self.metrics.predictions.labels(model_version=v, role=r).inc(n)
        daily = self.metrics.feature_age.labels(kind="daily")
        realtime = self.metrics.feature_age.labels(kind="realtime")
        for a in assembled:
            daily.observe(now - a.freshness["daily_features_pushed_at"].timestamp())
            if a.freshness["events_received_at"] is not None:
                realtime.observe(now - a.freshness["events_received_at"])

    # --- challenger comparisons, off the response path ---------------------------------------------

    def _queue_comparison(self, job: tuple) -> None:
        try:
            self._comparisons.put_nowait(job)
        except queue.Full:
            self.metrics.shadow_dropped.inc()

    def _compare(self) -> None:
        while (job := self._comparisons.get()) is not None:
            if self.deployment.routing.challenger is not job[1].challenger:
                continue  # that rollout is over: nothing left to judge
            try:
                call, routing = self._comparison(job)
            except Exception as error:  # a comparison must never stop the worker
                self.deployment.last_error = f"challenger comparison failed: {error}"
                continue
            if routing.rollout.started_at != self._judged:
                self.guardrails.reset()
                self._judged = routing.rollout.started_at
            breach = self.guardrails.record(call)
            if breach is not None:
                self.deployment.abort(breach.reason, breach.figure)
                self.guardrails.reset()

    def _comparison(self, job: tuple) -> tuple[ChallengerCall, Routing]:
        kind, routing = job[0], job[1]
        champion = routing.champion.scorer
        if kind == "canary":
            _, _, latency, failed, answer, chosen, categorical, numeric = job
            if failed:
                return ChallengerCall(latency, True), routing
            reference = champion.predict_vectors([categorical[i] for i in chosen], numeric[chosen])
            return ChallengerCall(latency, False, tuple(answer), tuple(map(float, reference))), routing
        _, _, request_id, assembled, rows, categorical, numeric, scores, caller = job
        began = time.perf_counter()
        try:
            answer = np.asarray(routing.challenger.scorer.predict_vectors([categorical[i] for i in rows], numeric[rows]), float)
            failed = answer.shape != (len(rows),) or not np.all(np.isfinite(answer) & (answer >= 0) & (answer <= 1))
        except Exception:
            failed = True
        latency = time.perf_counter() - began
        if failed:
            return ChallengerCall(latency, True), routing
        version = routing.challenger.version
        self.log_writer.submit([
            _record(request_id, str(assembled[i].freshness["daily_features_for"]), assembled[i].key,
                    assembled[i].prediction_time.isoformat(), version, "shadow", float(s), latency * 1000,
                    assembled[i].features, caller)  # fmt: skip
            for i, s in zip(rows, answer)
        ])  # fmt: skip
        for s in answer:
            self.metrics.predictions.labels(model_version=version, role="shadow").inc()
            self.metrics.prediction_score.labels(role="shadow").observe(float(s))
        return ChallengerCall(latency, False, tuple(map(float, answer)), tuple(float(scores[i]) for i in rows)), routing

    # --- events and status ------------------------------------------------------------------------

    def ingest(self, events: list) -> EventsResponse:
        """Apply the events the feed guard accepts; keep the others with their reasons."""
        try:
            result, rejected = guarded_ingest(self.store, self.settings.feed_clock, events, time.time())
            status = self.store.status()
        except OnlineStoreError:
            self.metrics.store_errors.labels(operation="write").inc()
            raise
        for outcome, count in (("applied", result.applied), ("duplicate", result.duplicates), ("expired", result.expired)):
            if count:
                self.metrics.events.labels(outcome=outcome).inc(count)
        for rejection in rejected:
            self.metrics.events.labels(outcome=f"rejected_{rejection.reason}").inc()
        watermark = status.watermark
        return EventsResponse(
            received=len(events), applied=result.applied, duplicates=result.duplicates, expired=result.expired,
            rejected=len(rejected), rejections=rejection_summary(rejected, REJECTIONS_LISTED),
            events_as_of=datetime.fromtimestamp(watermark, timezone.utc) if watermark is not None else None,
        )  # fmt: skip

    def status(self) -> dict:
        routing = self.deployment.routing
        loaded = {
            role: {"version": m.version, "kind": m.kind, "loaded_at": _iso(m.loaded_at)} if m else None
            for role, m in (("champion", routing.champion), ("challenger", routing.challenger))
        }
        try:
            store = self.store.status()
            dead = self.store.dead_letters(LATEST_DEAD_LETTERS)
            online_store = {
                "url": self.store.url, "events_as_of": _iso(store.watermark),
                "realtime_since": _iso(store.realtime_since), "daily_features": {str(d): p for d, p in store.daily.items()},
                "realtime_problem": implausible_state(self.settings.feed_clock, store, time.time()),
            }  # fmt: skip
            feed = {"clock": asdict(self.settings.feed_clock), "rejected": dead.counts, "latest_rejected": dead.latest}
        except OnlineStoreError as error:
            online_store = {"url": self.store.url, "error": str(error)}
            feed = {"clock": asdict(self.settings.feed_clock), "error": str(error)}
        return {
            "model_name": self.settings.model_name,
            "process": {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _iso(self._started_at)},
            "models": loaded,
            "rollout": asdict(routing.rollout) | {"mode": routing.mode},
            "guardrails": {"limits": asdict(self.settings.guardrails), "window": self.guardrails.figures()},
            "online_store": online_store,
            "event_feed": feed,
            "prediction_log": {"url": self.log_writer.log.url, "pending": self.log_writer.pending,
                               "last_error": self.log_writer.last_error},  # fmt: skip
            "registry": {"tracking_uri": _without_credentials(self.settings.tracking_uri),
                         "last_poll": _iso(self.deployment.last_poll), "last_error": self.deployment.last_error},  # fmt: skip
        }


def _record(request_id, day, flight_key, prediction_time, version, role, score, latency_ms, features, caller=None) -> dict:
    return {
        "request_id": request_id, "served_at": utc_now_iso(), "date": day, "flight_key": flight_key,
        "prediction_time": prediction_time, "model_version": version, "role": role, "score": score,
        "latency_ms": latency_ms, "features": features, "caller": caller,
    }  # fmt: skip


def _iso_z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _freshness(freshness: dict) -> dict:
    """The response's `Freshness` of an assembled flight."""
    as_of = freshness["events_as_of"]
    return {
        "daily_features_for": str(freshness["daily_features_for"]),
        "daily_features_pushed_at": _iso_z(freshness["daily_features_pushed_at"]),
        "events_as_of": _iso_z(as_of) if as_of is not None else None,
        "realtime_complete": freshness["realtime_complete"],
        "realtime_lag_seconds": freshness["realtime_lag_seconds"],
    }


def _nulls(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


def _iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat() if seconds is not None else None
