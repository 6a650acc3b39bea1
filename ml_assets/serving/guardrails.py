"""Rollouts inside the service: which model answers a flight, and the guardrails that abort a bad
challenger.

- canary: a stable hash of the flight key sends `percent` % of flights to the challenger; the same
  flight goes to the same model on every replica and at every request;
- shadow: the champion answers every flight; the challenger also scores `percent` % of them (by
  the same hash) off the response path;
- guardrails: over a sliding window of the challenger's latest scoring calls, its error rate, its
  p99 latency and the shift of its mean score against the champion's on the same flights. The
  first limit exceeded (once the window holds `min_calls` calls) is a breach: the caller aborts
  the rollout.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import deque
from dataclasses import dataclass

from ml_assets.models.rollouts import CANARY, NONE, SHADOW

__all__ = ["CANARY", "NONE", "SHADOW"]  # the modes, re-exported for the service
BUCKETS = 10_000  # hash buckets: percent is honoured to 0.01 points


def bucket(flight_key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a flight key (the same in every process)."""
    digest = hashlib.blake2b(flight_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def selected(flight_key: str, percent: float) -> bool:
    """Whether the flight falls in the first `percent` % of the buckets."""
    return bucket(flight_key) < round(percent * BUCKETS / 100)


def answering_role(flight_key: str, mode: str, percent: float) -> str:
    """Who answers this flight: the challenger only in a canary, for its share of flights."""
    return "challenger" if mode == CANARY and selected(flight_key, percent) else "champion"


def shadowed(flight_key: str, mode: str, percent: float) -> bool:
    """Whether the challenger scores this flight in the shadow (the champion answers)."""
    return mode == SHADOW and selected(flight_key, percent)


@dataclass(frozen=True)
class GuardrailLimits:
    window: int = 200  # the challenger's latest scoring calls that are judged
    min_calls: int = 50  # no verdict on fewer
    max_error_rate: float = 0.02
    max_p99_ms: float = 50.0
    max_score_shift: float = 0.05  # |mean challenger score - mean champion score|, same flights

    def __post_init__(self) -> None:
        if not 1 <= self.min_calls <= self.window:
            raise ValueError(f"guardrails need 1 <= min_calls <= window, got {self.min_calls} and {self.window}")

    @classmethod
    def from_env(cls) -> GuardrailLimits:
        """Overrides from ML_ASSETS_GUARDRAIL_{WINDOW,MIN_CALLS,MAX_ERROR_RATE,MAX_P99_MS,MAX_SCORE_SHIFT}."""
        values = {}
        for name, kind in (("window", int), ("min_calls", int), ("max_error_rate", float),
                           ("max_p99_ms", float), ("max_score_shift", float)):  # fmt: skip
            text = os.environ.get(f"ML_ASSETS_GUARDRAIL_{name.upper()}")
            if text:
                values[name] = kind(text)
        return cls(**values)


@dataclass(frozen=True)
class ChallengerCall:
    """One scoring call of the challenger: how long it took, whether it failed, and the scores of
    the champion and the challenger on the same flights (empty when it failed)."""

    latency_s: float
    failed: bool
    challenger_scores: tuple[float, ...] = ()
    champion_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class Breach:
    figure: str  # error_rate, p99_latency_ms or score_shift
    value: float
    limit: float
    calls: int

    @property
    def reason(self) -> str:
        return (
            f"guardrail breached: challenger {self.figure} {self.value:.4g} > {self.limit:.4g} "
            f"over its last {self.calls} scoring calls"
        )


def p99(values: list[float]) -> float:
    """The nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


class GuardrailWindow:
    """The sliding window of challenger calls; `record` returns the breach it causes, if any.
    Safe to call from several threads."""

    def __init__(self, limits: GuardrailLimits):
        self.limits = limits
        self._calls: deque[ChallengerCall] = deque(maxlen=limits.window)
        self._lock = threading.Lock()

    def record(self, call: ChallengerCall) -> Breach | None:
        with self._lock:
            self._calls.append(call)
            return self._verdict()

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def figures(self) -> dict[str, float | int | None]:
        """The judged figures now (None where undefined)."""
        with self._lock:
            return self._figures()

    def _figures(self) -> dict[str, float | int | None]:
        calls = list(self._calls)
        shifts = [
            (sum(c.challenger_scores) - sum(c.champion_scores), len(c.challenger_scores))
            for c in calls
            if not c.failed and len(c.challenger_scores) == len(c.champion_scores)
        ]
        flights = sum(n for _, n in shifts)
        return {
            "calls": len(calls),
            "error_rate": sum(c.failed for c in calls) / len(calls) if calls else None,
            "p99_latency_ms": p99([c.latency_s for c in calls]) * 1000 if calls else None,
            "score_shift": abs(sum(d for d, _ in shifts)) / flights if flights else None,
        }

    def _verdict(self) -> Breach | None:
        figures = self._figures()
        if figures["calls"] < self.limits.min_calls:
            return None
        for figure, limit in (
            ("error_rate", self.limits.max_error_rate),
            ("p99_latency_ms", self.limits.max_p99_ms),
            ("score_shift", self.limits.max_score_shift),
        ):
            value = figures[figure]
            if value is not None and value > limit:
                return Breach(figure, value, limit, figures["calls"])
        return None
