"""When monitoring asks for retraining: an ERROR drift result or degraded live performance requests
the weekly models of the latest complete week, at most once per week and never within the
cooldown of the previous request. Days are the partitions' days, not the wall clock, so a replay
of 2013 behaves as the live feed would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from ml_assets.monitoring import thresholds

TRIGGERS = {("flight_features", "feature_drift"), ("batch_predictions", "score_drift"), ("live_performance", "performance_degradation")}  # fmt: skip


@dataclass(frozen=True)
class Signal:
    """A failed ERROR check that asks for retraining."""

    day: date
    asset: str
    check: str
    reason: str


@dataclass(frozen=True)
class RetrainRequest:
    week: str
    signal: Signal

    @property
    def reason(self) -> str:
        return f"{self.signal.check} on {self.signal.asset} {self.signal.day}: {self.signal.reason}"[:500]


def latest_complete_week(weeks: list[str], present_days: set[date], window_weeks: int) -> str | None:
    """The latest week whose whole training window (the `window_weeks` weeks before it) is present."""
    for week in sorted(weeks, reverse=True):
        monday = date.fromisoformat(week)
        window = (monday - timedelta(days=n) for n in range(1, 7 * window_weeks + 1))
        if all(day in present_days for day in window):
            return week
    return None


def decide(
    signals: list[Signal], week: str | None, requested_weeks: set[str], last_request_day: date | None,
    weeks_in_training: set[str] = frozenset(),
) -> tuple[RetrainRequest | None, str]:
    """The request to make for the newest signal (or None), and why. A week that a queued or
    running run is training already (the weekly automation) needs no second run."""
    if not signals:
        return None, "no ERROR drift or degradation"
    signal = max(signals, key=lambda s: s.day)
    if week is None:
        return None, "no week has a complete training window yet"
    if week in requested_weeks:
        return None, f"week {week} was already retrained for monitoring"
    if week in weeks_in_training:
        return None, f"week {week} is being trained by another run already"
    if last_request_day is not None and signal.day < last_request_day + timedelta(days=thresholds.RETRAIN_COOLDOWN_DAYS):
        return None, f"cooldown: the last request was for {last_request_day}, {thresholds.RETRAIN_COOLDOWN_DAYS} days are needed"
    return RetrainRequest(week, signal), f"retrain week {week}"
