"""Canary routing and the challenger guardrails (pure logic; on the mutation-testing list)."""

import hashlib
import os
import subprocess
import sys
import threading

import pytest

from ml_assets.serving.guardrails import (
    BUCKETS,
    CANARY,
    NONE,
    SHADOW,
    Breach,
    ChallengerCall,
    GuardrailLimits,
    GuardrailWindow,
    answering_role,
    bucket,
    p99,
    selected,
    shadowed,
)
from ml_assets.settings import PROJECT_ROOT

LIMITS = GuardrailLimits(window=100, min_calls=50, max_error_rate=0.02, max_p99_ms=50.0, max_score_shift=0.05)


def key_in_bucket(wanted: int) -> str:
    """A flight key whose bucket is `wanted`."""
    for i in range(2_000_000):
        key = f"2013-12-31/AA{i}/JFK"
        if bucket(key) == wanted:
            return key
    raise AssertionError(f"no key found for bucket {wanted}")


def ok_call(latency_s: float = 0.001, challenger=(0.3,), champion=(0.3,)) -> ChallengerCall:
    return ChallengerCall(latency_s, False, tuple(challenger), tuple(champion))


FAILED = ChallengerCall(0.001, True)


# --- routing ------------------------------------------------------------------------------------


def test_bucket_is_blake2b_of_the_key_and_the_same_in_another_process():
    key = "2013-12-31/AA3/JFK"
    expected = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000

    code = f"from ml_assets.serving.guardrails import bucket; print(bucket({key!r}))"
    env = os.environ | {"PYTHONHASHSEED": "12345", "PYTHONPATH": str(PROJECT_ROOT)}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)

    assert BUCKETS == 10_000
    assert bucket(key) == expected == int(other.stdout)
    assert all(0 <= bucket(f"k{i}") < BUCKETS for i in range(2000))
    assert len({bucket(f"k{i}") for i in range(2000)}) > 1500  # spread, not constant


def test_selected_takes_the_first_percent_of_the_buckets():
    below, at = key_in_bucket(2499), key_in_bucket(2500)
    first, last = key_in_bucket(0), key_in_bucket(BUCKETS - 1)

    assert selected(below, 25.0) and not selected(at, 25.0)
    assert selected(at, 25.01) and not selected(below, 24.99)
    assert not selected(first, 0.0) and selected(first, 0.01)
    assert selected(last, 100.0) and not selected(last, 99.99)


def test_only_a_canary_routes_to_the_challenger():
    key = key_in_bucket(10)

    assert answering_role(key, CANARY, 0.11) == "challenger"
    assert answering_role(key, CANARY, 0.1) == "champion"
    assert answering_role(key, SHADOW, 100.0) == "champion"
    assert answering_role(key, NONE, 100.0) == "champion"


def test_only_a_shadow_rollout_shadows():
    key = key_in_bucket(10)

    assert shadowed(key, SHADOW, 0.11) and not shadowed(key, SHADOW, 0.1)
    assert not shadowed(key, CANARY, 100.0) and not shadowed(key, NONE, 100.0)


@pytest.mark.parametrize("percent", [1.0, 5.0, 10.0, 25.0, 50.0, 90.0])
def test_the_canary_split_of_10000_real_flights_is_within_2_points(real_flight_keys, percent):
    keys = real_flight_keys[:10_000]
    share = 100 * sum(answering_role(k, CANARY, percent) == "challenger" for k in keys) / len(keys)

    assert len(keys) == 10_000
    assert abs(share - percent) <= 2.0, (percent, share)


# --- limits -------------------------------------------------------------------------------------


def test_limits_need_min_calls_within_the_window():
    assert GuardrailLimits(window=10, min_calls=10).min_calls == 10
    assert GuardrailLimits(window=10, min_calls=1).min_calls == 1
    with pytest.raises(ValueError, match="min_calls"):
        GuardrailLimits(window=10, min_calls=11)
    with pytest.raises(ValueError, match="min_calls"):
        GuardrailLimits(window=10, min_calls=0)


def test_limits_from_the_environment(monkeypatch):
    for name in ("WINDOW", "MIN_CALLS", "MAX_ERROR_RATE", "MAX_P99_MS", "MAX_SCORE_SHIFT"):
        monkeypatch.delenv(f"ML_ASSETS_GUARDRAIL_{name}", raising=False)
    assert GuardrailLimits.from_env() == GuardrailLimits()

    monkeypatch.setenv("ML_ASSETS_GUARDRAIL_WINDOW", "300")
    monkeypatch.setenv("ML_ASSETS_GUARDRAIL_MIN_CALLS", "20")
    monkeypatch.setenv("ML_ASSETS_GUARDRAIL_MAX_ERROR_RATE", "0.1")
    monkeypatch.setenv("ML_ASSETS_GUARDRAIL_MAX_P99_MS", "12.5")
    monkeypatch.setenv("ML_ASSETS_GUARDRAIL_MAX_SCORE_SHIFT", "0.2")
    limits = GuardrailLimits.from_env()

    assert limits == GuardrailLimits(window=300, min_calls=20, max_error_rate=0.1, max_p99_ms=12.5, max_score_shift=0.2)
    assert isinstance(limits.window, int) and isinstance(limits.min_calls, int)


def test_default_limits():
    assert GuardrailLimits() == GuardrailLimits(200, 50, 0.02, 50.0, 0.05)


# --- p99 ----------------------------------------------------------------------------------------


def test_p99_is_the_nearest_rank():
    assert p99([float(v) for v in range(100, 0, -1)]) == 99.0
    assert p99([float(v) for v in range(1, 201)]) == 198.0
    assert p99([float(v) for v in range(1, 51)]) == 50.0
    assert p99([7.0]) == 7.0
    assert p99([float(v) for v in range(1, 102)]) == 100.0


# --- the window ---------------------------------------------------------------------------------


def test_no_verdict_before_min_calls():
    window = GuardrailWindow(LIMITS)
    verdicts = [window.record(FAILED) for _ in range(LIMITS.min_calls)]

    assert verdicts[:-1] == [None] * (LIMITS.min_calls - 1)
    assert verdicts[-1] == Breach("error_rate", 1.0, 0.02, 50)


def test_an_error_rate_at_the_limit_passes_and_above_it_breaches():
    window = GuardrailWindow(LIMITS)
    for _ in range(48):
        assert window.record(ok_call()) is None
    assert window.record(FAILED) is None  # 1 failure in 49 calls: too few calls to judge
    assert window.record(ok_call()) is None  # 1 in 50 = 0.02: at the limit

    breach = window.record(FAILED)  # 2 in 51

    assert breach.figure == "error_rate" and breach.calls == 51 and breach.limit == 0.02
    assert breach.value == pytest.approx(2 / 51)


def test_p99_latency_at_the_limit_passes_and_above_it_breaches():
    at_limit = GuardrailWindow(LIMITS)
    for _ in range(49):
        at_limit.record(ok_call(latency_s=0.001))
    assert at_limit.record(ok_call(latency_s=0.050)) is None

    above = GuardrailWindow(LIMITS)
    for _ in range(49):
        above.record(ok_call(latency_s=0.001))
    breach = above.record(ok_call(latency_s=0.0501))

    assert breach.figure == "p99_latency_ms" and breach.value == pytest.approx(50.1) and breach.limit == 50.0


def test_one_slow_call_in_a_hundred_is_the_tail_the_p99_allows():
    window = GuardrailWindow(LIMITS)
    verdicts = [window.record(ok_call(latency_s=0.001)) for _ in range(99)]
    verdicts.append(window.record(ok_call(latency_s=1.0)))  # rank 99 of 100 is still 1 ms

    assert verdicts == [None] * 100
    assert window.figures()["p99_latency_ms"] == pytest.approx(1.0)
    assert window.record(ok_call(latency_s=1.0)).figure == "p99_latency_ms"  # two in the window


def test_score_shift_at_the_limit_passes_and_above_it_breaches_either_way():
    at_limit = GuardrailWindow(LIMITS)
    verdicts = [at_limit.record(ok_call(challenger=(0.3125,), champion=(0.25,))) for _ in range(40)]
    verdicts += [at_limit.record(ok_call(challenger=(0.25,), champion=(0.25,))) for _ in range(10)]
    assert verdicts == [None] * 50  # mean shift 40 * 0.0625 / 50 = 0.05
    assert at_limit.figures()["score_shift"] == pytest.approx(0.05)

    lower = GuardrailWindow(LIMITS)
    for _ in range(49):
        lower.record(ok_call(challenger=(0.2,), champion=(0.3,)))
    breach = lower.record(ok_call(challenger=(0.2,), champion=(0.3,)))

    assert breach.figure == "score_shift" and breach.value == pytest.approx(0.1) and breach.limit == 0.05


def test_score_shift_is_weighted_by_flights_and_skips_failed_calls():
    window = GuardrailWindow(LIMITS)
    window.record(ok_call(challenger=(0.5,) * 9, champion=(0.4,) * 9))  # shift 0.1 on 9 flights
    window.record(ok_call(challenger=(0.4,), champion=(0.5,)))  # -0.1 on 1 flight
    window.record(FAILED)

    figures = window.figures()

    assert figures["score_shift"] == pytest.approx((0.9 - 0.1) / 10)
    assert figures["calls"] == 3 and figures["error_rate"] == pytest.approx(1 / 3)


def test_calls_without_paired_scores_give_no_shift():
    window = GuardrailWindow(LIMITS)
    window.record(ChallengerCall(0.002, False, (0.4, 0.5), (0.4,)))
    window.record(ChallengerCall(0.002, False))

    assert window.figures()["score_shift"] is None
    assert window.figures()["p99_latency_ms"] == pytest.approx(2.0)


def test_the_first_breached_figure_in_order_is_reported():
    window = GuardrailWindow(LIMITS)
    for _ in range(49):
        window.record(ok_call(latency_s=0.2, challenger=(0.9,), champion=(0.1,)))
    latency_and_shift = window.record(ok_call(latency_s=0.2, challenger=(0.9,), champion=(0.1,)))
    assert latency_and_shift.figure == "p99_latency_ms"

    errors_and_shift = GuardrailWindow(LIMITS)
    for _ in range(49):
        errors_and_shift.record(ok_call(challenger=(0.9,), champion=(0.1,)))
    assert errors_and_shift.record(FAILED).figure == "score_shift"  # 1 failure in 50: at the limit
    assert errors_and_shift.record(FAILED).figure == "error_rate"


def test_the_window_slides_over_the_latest_calls():
    window = GuardrailWindow(LIMITS)
    window.record(FAILED)
    window.record(FAILED)
    for _ in range(LIMITS.window - 2):
        window.record(ok_call())
    assert window.figures()["error_rate"] == pytest.approx(0.02)

    assert window.record(ok_call()) is None  # the first failure slides out
    assert window.figures() == {"calls": 100, "error_rate": pytest.approx(0.01), "p99_latency_ms": pytest.approx(1.0),
                                "score_shift": pytest.approx(0.0)}  # fmt: skip


def test_reset_empties_the_window():
    window = GuardrailWindow(LIMITS)
    for _ in range(60):
        window.record(FAILED)
    window.reset()

    assert window.figures() == {"calls": 0, "error_rate": None, "p99_latency_ms": None, "score_shift": None}
    assert window.record(FAILED) is None


def test_breach_reason_names_the_figure_value_limit_and_calls():
    reason = Breach("p99_latency_ms", 84.23, 50.0, 60).reason

    assert reason == "guardrail breached: challenger p99_latency_ms 84.23 > 50 over its last 60 scoring calls"


def test_records_from_many_threads_all_count():
    window = GuardrailWindow(GuardrailLimits(window=10_000, min_calls=10_000))

    def record() -> None:
        for _ in range(500):
            window.record(ok_call())

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert window.figures()["calls"] == 2000
