"""Freshness expectations, applied centrally to every asset in `definitions.py`.

Asset-level policies judge the latest materialization of any partition against the wall clock.
The per-partition SLA (yesterday's partition of each daily data asset exists by 09:00 local time)
is a freshness check judged on the **feed's clock**: the wall clock for a live feed
(`ML_ASSETS_FEED_CLOCK=wall`, the default), or, for a feed whose data time is not wall time (a
replay of 2013: `ML_ASSETS_FEED_CLOCK=landing`), the time the landing zone's deliveries say it
is: the newest complete day ended when it landed, and feed time runs on from there at the pace of
the recent deliveries (the median gap between them is one day). An on-time replay is always fresh;
when the feed stops, its clock still advances, so the next day is overdue within one interval.
The `freshness` sensor evaluates the checks every tick and records a result when one changes.
"""

import os
import statistics
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ml_assets.settings import TIMEZONE

DEADLINE_HOUR = 9  # yesterday's partition must exist by 09:00 local
FRESHNESS_CHECK = "freshness_check"
FEED_CLOCKS = ("wall", "landing")
PACE_DAYS = 7  # the gaps between the newest deliveries that set a replay's pace

POLICY_BY_GROUP = {
    "raw": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)),
    "processed": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)),
    "features": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=32), warn_window=timedelta(hours=27)),
    # weekly: models train at the start of a week, its evaluation follows once its labels are in
    "training": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7, hours=12)),
    "evaluation": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=9), warn_window=timedelta(days=8, hours=12)),
    # daily: scored as soon as the features are in
    "serving": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=34), warn_window=timedelta(hours=29)),
    # daily, a label delay behind the features
    "monitoring": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=58), warn_window=timedelta(hours=53)),
}  # fmt: skip
STATIC_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7))


def with_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Partitioned layers by group; unpartitioned dimensions are refreshed weekly."""
    policy = POLICY_BY_GROUP.get(spec.group_name) if spec.partitions_def else STATIC_POLICY
    return dg.apply_freshness_policy(spec, policy) if policy else spec


def feed_clock_kind() -> str:
    kind = os.environ.get("ML_ASSETS_FEED_CLOCK") or "wall"
    if kind not in FEED_CLOCKS:
        raise ValueError(f"ML_ASSETS_FEED_CLOCK={kind!r}: expected one of {FEED_CLOCKS}")
    return kind


@dataclass(frozen=True)
class FeedTime:
    now: datetime | None  # None: nothing has landed yet, nothing is expected
    basis: str  # how `now` was read, for the check's metadata


def landing_feed_time(landed_at: dict[date, float], wall_now: float) -> FeedTime:
    """The feed's time from its deliveries (day → when it landed, epoch seconds)."""
    if not landed_at:
        return FeedTime(None, "nothing has landed yet")
    newest = max(landed_at)
    day_ended = datetime(newest.year, newest.month, newest.day, tzinfo=ZoneInfo(TIMEZONE)) + timedelta(days=1)
    recent = sorted(landed_at)[-(PACE_DAYS + 1):]
    gaps = [landed_at[b] - landed_at[a] for a, b in zip(recent, recent[1:]) if (b - a).days == 1 and landed_at[b] > landed_at[a]]
    if not gaps:  # one delivery, no pace yet: the feed is at the end of its newest day
        return FeedTime(day_ended, f"{newest} landed; no pace yet")
    pace = statistics.median(gaps)  # wall seconds per feed day
    waited = max(0.0, wall_now - landed_at[newest])
    return FeedTime(
        day_ended + timedelta(days=waited / pace),
        f"{newest} landed {waited:.0f} s ago; the feed delivers a day every {pace:.0f} s",
    )


def expected_day(now: datetime) -> date:
    """The newest partition that must exist at `now`: yesterday's once the deadline has passed."""
    local = now.astimezone(ZoneInfo(TIMEZONE))
    return local.date() - timedelta(days=1 if local.hour >= DEADLINE_HOUR else 2)


def current_feed_time(source) -> FeedTime:
    """The feed's time now, by `ML_ASSETS_FEED_CLOCK` (`source` is the `source` resource)."""
    from ml_assets.flights.contracts import DAILY_DATASETS
    from ml_assets.resources.sources import LandingZone

    if feed_clock_kind() == "wall":
        return FeedTime(datetime.now(ZoneInfo(TIMEZONE)), "the wall clock")
    if not isinstance(source, LandingZone):
        raise ValueError("ML_ASSETS_FEED_CLOCK=landing reads the landing zone's deliveries: set ML_ASSETS_LANDING_DIR")
    return landing_feed_time(source.landed_at(DAILY_DATASETS), time.time())


@dataclass(frozen=True)
class Freshness:
    asset_key: dg.AssetKey
    passed: bool
    metadata: dict[str, str]


def freshness_of(instance: dg.DagsterInstance, asset_keys, feed_time: FeedTime, last_partition: date | None) -> list[Freshness]:
    """Each daily asset: is the partition expected at the feed's time (at most the partitions'
    last) materialized?"""
    expected = expected_day(feed_time.now) if feed_time.now else None
    if expected and last_partition:
        expected = min(expected, last_partition)
    metadata = {
        "expected_partition": str(expected) if expected else "none",
        "feed_clock": feed_clock_kind(),
        "feed_time": feed_time.now.isoformat(timespec="seconds") if feed_time.now else "none",
        "basis": feed_time.basis,
    }
    return [Freshness(key, expected is None or _materialized(instance, key, expected), metadata) for key in asset_keys]


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey, day: date) -> bool:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[day.isoformat()]), limit=1)
    return bool(records.records)


def _last_partition(partitions_def) -> date | None:
    last = partitions_def.get_last_partition_key()
    return date.fromisoformat(last) if last else None


def partition_freshness(daily_assets: list[dg.AssetsDefinition]) -> tuple[list, dg.SensorDefinition]:
    """The per-partition SLA checks (one per daily asset, WARN when late) and the sensor that
    evaluates them on the feed's clock, recording a result only when it changes."""
    from ml_assets.resources.sources import DataSource

    keys = [asset.key for asset in daily_assets]
    partitions_def = daily_assets[0].partitions_def
    specs = [
        dg.AssetCheckSpec(FRESHNESS_CHECK, asset=key, description=(
            f"The partition of yesterday (on the feed's clock: the wall clock, or a replayed feed's own) "
            f"exists by {DEADLINE_HOUR:02d}:00 {TIMEZONE}."
        ))
        for key in keys
    ]  # fmt: skip

    @dg.multi_asset_check(
        specs=specs, name="partition_freshness", can_subset=True, description="Yesterday's partitions, on the feed's clock."
    )
    def freshness_checks(context: dg.AssetCheckExecutionContext, source: DataSource):
        selected = [key for key in keys if dg.AssetCheckKey(key, FRESHNESS_CHECK) in context.selected_asset_check_keys]
        for found in freshness_of(context.instance, selected, current_feed_time(source), _last_partition(partitions_def)):
            yield dg.AssetCheckResult(
                asset_key=found.asset_key, check_name=FRESHNESS_CHECK, passed=found.passed,
                severity=dg.AssetCheckSeverity.WARN, metadata=found.metadata,
            )  # fmt: skip

    @dg.sensor(
        name="freshness",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the per-partition freshness checks on the feed's clock (ML_ASSETS_FEED_CLOCK) "
        "and records a result when one changes (no run: a few queries a tick).",
    )
    def freshness_sensor(context: dg.SensorEvaluationContext, source: DataSource):
        import json

        previous = json.loads(context.cursor) if context.cursor else {}
        found = freshness_of(context.instance, keys, current_feed_time(source), _last_partition(partitions_def))
        state = {f.asset_key.to_user_string(): [f.passed, f.metadata["expected_partition"]] for f in found}
        changed = [f for f in found if previous.get(f.asset_key.to_user_string()) != state[f.asset_key.to_user_string()]]
        events = [
            dg.AssetCheckEvaluation(
                asset_key=f.asset_key, check_name=FRESHNESS_CHECK, passed=f.passed,
                severity=dg.AssetCheckSeverity.WARN, metadata=f.metadata,
            )
            for f in changed
        ]  # fmt: skip
        return dg.SensorResult(
            asset_events=events, cursor=json.dumps(state),
            skip_reason=None if events else "no freshness result changed",
        )  # fmt: skip

    return [freshness_checks], freshness_sensor
