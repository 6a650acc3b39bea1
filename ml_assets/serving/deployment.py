"""The models in the service: the champion and, during a rollout, the challenger.

A background thread polls the registry (its aliases and the rollout record, one call) so that
every replica serves the same versions and follows the same rollout. A new version is loaded
from its native files (`load_scoring_model`: nothing unpickled), warmed up by scoring rows, and
only then switched to, by replacing the `Routing` object in one assignment: requests in flight keep
the models they started with, none waits for a load. A version that fails to load or score is
never routed traffic (a failing challenger also ends its rollout). A guardrail breach switches this
process to the champion at once, then records the abort in the registry, which the other replicas
read at their next poll.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ml_assets.models.registry import CHAMPION
from ml_assets.models.rollouts import NONE, Rollout, abort_rollout, rollout_from_tags

log = logging.getLogger(__name__)
REGISTRY_RETRIES = 5  # attempts to record an abort in the registry (one per poll interval)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    kind: str
    scorer: object  # ScoringModel: predict_vectors(categorical, numeric)
    loaded_at: float


@dataclass(frozen=True)
class Routing:
    """What answers now; replaced as a whole, never changed in place."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None
    rollout: Rollout = Rollout()

    @property
    def mode(self) -> str:
        return self.rollout.mode if self.challenger else NONE


def warm_up(scorer) -> None:
    """Score a few rows (all missing, and random values) twice; raise unless they are probabilities."""
    rng = np.random.default_rng(0)
    numeric = np.vstack([np.full(len(NUMERIC_FEATURES), np.nan), rng.normal(0, 10, (7, len(NUMERIC_FEATURES)))])
    categorical = [(None,) * len(CATEGORICAL_FEATURES)] + [("AA", "JFK", "LAX")] * 7
    for _ in range(2):
        scores = np.asarray(scorer.predict_vectors(categorical, numeric), dtype=float)
        if scores.shape != (8,) or not np.all(np.isfinite(scores) & (scores >= 0) & (scores <= 1)):
            raise ValueError(f"warm-up scores are not 8 probabilities: {scores!r}")


def guardrail_identity() -> str:
    return f"guardrail ({socket.gethostname()} pid {os.getpid()})"


class ModelDeployment:
    def __init__(self, registry, metrics, loader=None, poll_interval_s: float = 5.0):
        from ml_assets.models.scoring import load_scoring_model

        self.registry, self.metrics = registry, metrics
        self.loader = loader or load_scoring_model
        self.poll_interval_s = poll_interval_s
        self.routing = Routing()
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self._aborted: set[str] = set()  # rollouts (by start time) this process aborted
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Import both learners' libraries (so a later swap imports nothing while serving), load
        the champion, then poll in the background."""
        if self._thread:
            return
        import lightgbm  # noqa: F401
        import torch

        torch.set_num_threads(1)  # one request at a time per process: no intra-op thread pool
        self.poll()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="registry-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll()

    def poll(self) -> None:
        """Follow the registry: load what changed, then switch to it in one assignment."""
        try:
            model = self.registry.client.get_registered_model(self.registry.model_name)
        except Exception as error:  # the registry is down or has no model yet: keep serving
            self.last_error = f"registry poll failed: {error}"
            self.metrics.registry_poll_errors.inc()
            return
        self.last_poll, self.last_error = time.time(), None
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
        rollout = rollout_from_tags(model.tags)
        current = self.routing
        champion = self._model(CHAMPION, aliases.get(CHAMPION), current) or current.champion
        wanted = rollout.challenger_version if rollout.active and rollout.started_at not in self._aborted else None
        challenger = self._model("challenger", wanted, current)
        if wanted and challenger is None:
            self._abort_in_registry(rollout, f"challenger v{wanted} failed to load or score: {self.last_error}")
        with self._lock:
            if rollout.started_at in self._aborted:  # a guardrail aborted it while we loaded
                challenger = None
            self._switch(Routing(champion, challenger, rollout if challenger else Rollout()))

    def _model(self, role: str, version: str | None, current: Routing) -> LoadedModel | None:
        """The loaded model of `version`: one already loaded, or loaded and warmed up now."""
        if version is None:
            return None
        for loaded in (current.champion, current.challenger):
            if loaded is not None and loaded.version == version:
                return loaded
        try:
            scorer = self.loader(self.registry, version)
            warm_up(scorer)
        except Exception as error:
            self.last_error = f"{role} v{version}: {error}"
            self.metrics.model_load_failures.labels(role=role).inc()
            log.error("not routing traffic to %s v%s: %s", role, version, error)
            return None
        self.metrics.model_swaps.labels(role=role).inc()
        return LoadedModel(version, scorer.kind, scorer, time.time())

    def _switch(self, routing: Routing) -> None:
        self.routing = routing
        self.metrics.set_rollout(routing.mode, routing.rollout.percent)
        self.metrics.set_models({
            "champion": routing.champion.version if routing.champion else None,
            "challenger": routing.challenger.version if routing.challenger else None,
        })  # fmt: skip

    def abort(self, reason: str, figure: str) -> bool:
        """Send all traffic to the champion now, then record the abort in the registry (from a
        thread of its own). False when no rollout was running."""
        with self._lock:
            routing = self.routing
            if routing.challenger is None:
                return False
            self._aborted.add(routing.rollout.started_at)
            self._switch(Routing(routing.champion, None, Rollout()))
        self.metrics.rollout_aborts.labels(reason=figure).inc()
        threading.Thread(
            target=self._abort_in_registry, args=(routing.rollout, reason), name="rollout-abort", daemon=True
        ).start()
        return True

    def _abort_in_registry(self, rollout: Rollout, reason: str) -> None:
        self._aborted.add(rollout.started_at)
        for attempt in range(REGISTRY_RETRIES):
            try:
                abort_rollout(self.registry, reason, by=guardrail_identity(), started_at=rollout.started_at)
                return
            except Exception as error:  # the registry is down: retry, this process already switched
                log.error("could not record the abort in the registry (attempt %d): %s", attempt + 1, error)
                time.sleep(self.poll_interval_s)
