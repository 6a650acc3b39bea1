"""Rollouts in the running service: canary and shadow routing from the registry, and a bad
challenger (slow, erroring, shifted) aborted automatically, recorded in the alias log and followed
by another replica. The challenger is a real registered version; the fault is added around it once
it has loaded and warmed up (the service's model loader is the one seam)."""

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ml_assets.models.rollouts import CANARY, NONE, SHADOW, current_rollout, start_rollout
from ml_assets.models.scoring import load_scoring_model
from ml_assets.serving.app import create_app
from ml_assets.serving.guardrails import GuardrailLimits, answering_role
from ml_assets_tests.serving.conftest import PARITY_DAY, flight_request

LIMITS = GuardrailLimits(window=100, min_calls=20, max_error_rate=0.05, max_p99_ms=50.0, max_score_shift=0.1)
# for a sound challenger: latency judged loosely, as this shared machine has pauses of its own, and
# the score shift too: the test models (two weeks apart) differ by 0.10-0.12 on a few dozen flights
SOUND = GuardrailLimits(window=100, min_calls=20, max_error_rate=0.05, max_p99_ms=1000.0, max_score_shift=0.25)


class Faulty:
    """A loaded model that turns slow, failing or shifted after its warm-up (two calls)."""

    def __init__(self, model, fault: str):
        self.model, self.fault, self.kind, self.calls = model, fault, model.kind, 0

    def predict_vectors(self, categorical, numeric):
        self.calls += 1
        scores = self.model.predict_vectors(categorical, numeric)
        if self.calls <= 2 or self.fault == "none":
            return scores
        if self.fault == "slow":
            time.sleep(0.08)
        if self.fault == "erroring" and self.calls % 4 == 0:
            raise RuntimeError("challenger failed")
        if self.fault == "shifted":
            return np.clip(scores + 0.3, 0.0, 1.0)
        if self.fault == "broken":
            raise RuntimeError("cannot score at all")
        return scores


def loader(faults: dict[str, str]):
    def load(registry, version):
        model = load_scoring_model(registry, version)
        return Faulty(model, faults[version]) if version in faults else model

    return load


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition") -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic() - began


@pytest.fixture(scope="module")
def bodies(parity_flights) -> list[dict]:
    return [flight_request(r) for r in parity_flights.sort("flight_id").to_dicts()]


def test_a_canary_answers_its_share_of_flights_from_the_challenger(make_service, registry, bodies):
    service = make_service(loader=loader({}), limits=SOUND)
    with TestClient(create_app(service)) as client:
        start_rollout(registry, CANARY, 30, "try v2", by="tests")
        wait_for(lambda: service.deployment.routing.mode == CANARY, what="the canary")
        answers = [client.post("/v1/predict", json={"flights": bodies[i : i + 50]}).json() for i in range(0, 400, 50)]
        singles = [client.post("/v1/predict", json={"flights": [b]}).status_code for b in bodies[400:480]]
        wait_for(lambda: service._comparisons.empty(), what="the comparisons")
        figures = service.guardrails.figures()

    predictions = [p for a in answers for p in a["predictions"]]
    roles = [p["role"] for p in predictions]
    assert roles == [answering_role(p["flight_key"], CANARY, 30.0) for p in predictions]
    assert {p["model_version"] for p in predictions if p["role"] == "challenger"} == {"2"}
    assert 0.2 < roles.count("challenger") / len(roles) < 0.4
    # a sound challenger passes the guardrails (one call per request that routed a flight to it)
    assert set(singles) == {200} and figures["calls"] >= SOUND.min_calls
    assert figures["error_rate"] == 0 and figures["score_shift"] < SOUND.max_score_shift, figures
    assert service.deployment.routing.mode == CANARY


def test_a_shadow_scores_the_challenger_off_the_response_path(make_service, registry, bodies):
    service = make_service(loader=loader({}), limits=SOUND)
    with TestClient(create_app(service)) as client:
        start_rollout(registry, SHADOW, 100, "watch v2", by="tests")
        wait_for(lambda: service.deployment.routing.mode == SHADOW, what="the shadow")
        answers = [client.post("/v1/predict", json={"flights": [b]}).json() for b in bodies[:30]]
        # a comparison is counted by the guardrails after its shadow rows went to the log writer
        wait_for(lambda: service.guardrails.figures()["calls"] == 30, what="the 30 comparisons")
        wait_for(lambda: service.log_writer.pending == 0, what="the log")
        logged = service.log_writer.log.read_day(PARITY_DAY)
        metrics = client.get("/metrics").text

    assert {p["role"] for a in answers for p in a["predictions"]} == {"champion"}
    shadow = [r for r in logged if r["role"] == "shadow"]
    assert len(shadow) == 30 and {r["model_version"] for r in shadow} == {"2"}
    assert {r["caller"] for r in logged} == {"anonymous@testclient"}  # the shadow rows name who asked too
    assert {r["flight_key"] for r in shadow} == {a["predictions"][0]["flight_key"] for a in answers}
    assert 'ml_assets_serving_predictions_total{model_version="2",role="shadow"} 30.0' in metrics
    assert service.guardrails.figures()["calls"] == 30


@pytest.mark.parametrize(
    ("mode", "fault", "figure"),
    [(CANARY, "slow", "p99_latency_ms"), (CANARY, "erroring", "error_rate"), (CANARY, "shifted", "score_shift"),
     (SHADOW, "slow", "p99_latency_ms")],  # fmt: skip
)
def test_a_bad_challenger_is_aborted_and_every_replica_follows(make_service, registry, bodies, mode, fault, figure):
    limits = LIMITS if fault == "slow" else SOUND  # the one judged figure, whatever pauses the machine has
    replica = make_service(loader=loader({"2": fault}), limits=limits)
    other = make_service(loader=loader({"2": fault}), limits=limits, poll_interval_s=0.5)
    other.start()
    with TestClient(create_app(replica)) as client:
        started = start_rollout(registry, mode, 50, f"try a {fault} v2", by="tests")
        wait_for(lambda: replica.deployment.routing.mode == mode and other.deployment.routing.mode == mode, what=mode)
        began, statuses, served_after = time.monotonic(), [], []
        for body in bodies:
            response = client.post("/v1/predict", json={"flights": [body]})
            statuses.append(response.status_code)
            if replica.deployment.routing.mode == NONE:
                served_after += [client.post("/v1/predict", json={"flights": [b]}).json() for b in bodies[-40:]]
                break
        to_champion = time.monotonic() - began
        followed = wait_for(lambda: other.deployment.routing.mode == NONE, timeout_s=10, what="the other replica")
        metrics = client.get("/metrics").text

    assert set(statuses) == {200}  # no request failed, the champion answered for a failing challenger
    assert to_champion < 30, to_champion
    assert followed < 5, followed
    assert {p["role"] for a in served_after for p in a["predictions"]} == {"champion"}
    rollout = current_rollout(registry)
    assert rollout.mode == NONE and rollout.started_at == started.started_at and figure in rollout.end
    entry = registry.alias_log()[-1]
    assert (entry.alias, entry.action, entry.from_version, entry.to_version) == ("challenger", "rollout_abort", "2", "1")
    assert entry.moved_by.startswith("guardrail (") and f"challenger {figure} " in entry.reason
    assert f'ml_assets_serving_rollout_aborts_total{{reason="{figure}"}} 1.0' in metrics
    assert 'ml_assets_serving_rollout_state{mode="none"} 1.0' in metrics


def test_a_challenger_that_cannot_score_is_never_routed_traffic(make_service, registry, bodies):
    def broken(registry_, version):
        model = load_scoring_model(registry_, version)
        if version == "2":
            model = Faulty(model, "broken")
            model.calls = 2  # fails from its warm-up on
        return model

    service = make_service(loader=broken, limits=LIMITS)
    with TestClient(create_app(service)) as client:
        start_rollout(registry, CANARY, 100, "v2 everywhere", by="tests")
        wait_for(lambda: current_rollout(registry).mode == NONE, what="the abort in the registry")
        answers = [client.post("/v1/predict", json={"flights": [b]}).json() for b in bodies[:10]]

    assert {p["role"] for a in answers for p in a["predictions"]} == {"champion"}
    assert "failed to load or score" in current_rollout(registry).end
    assert registry.alias_log()[-1].action == "rollout_abort"
