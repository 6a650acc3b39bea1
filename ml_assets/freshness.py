"""Freshness expectations, applied centrally to every asset in `definitions.py`.

Asset-level policies judge the latest materialization of any partition against the wall clock.
The per-partition SLA is a freshness check of each daily data asset judged on the **feed's
clock**: for a live feed (`ML_ASSETS_FEED_CLOCK=wall`, the default) yesterday's partition must
exist by 09:00 local time; for a feed whose data time is not wall time (a replay of 2013:
`ML_ASSETS_FEED_CLOCK=replay`) the landing zone's deliveries set the clock: the newest landed day
must be processed within three quarters of the feed's interval (the median gap between its recent
deliveries), and each further interval without a delivery makes the next day overdue. An on-time
replay that keeps up is fresh; a stalled one is late within an interval of the missed delivery.
The `freshness` sensor evaluates the checks every tick and records a result when one changes.
"""

import statistics
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ml_assets.settings import TIMEZONE, WALL_CLOCK, feed_clock

DEADLINE_HOUR = 9  # yesterday's partition must exist by 09:00 local
FRESHNESS_CHECK = "freshness_check"
PACE_DAYS = 7  # the gaps between the newest deliveries that set a replay's pace
PROCESSING_SHARE = 0.75  # of a replay's interval: the time a landed day has to be processed

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


@dataclass(frozen=True)
class Expected:
    day: date | None  # the newest partition that must exist; None: nothing is expected yet
    basis: str  # how the feed's clock was read, for the check's metadata


def expected_day(now: datetime) -> date:
    """On the wall clock: yesterday's partition once the deadline has passed, else the day before."""
    local = now.astimezone(ZoneInfo(TIMEZONE))
    return local.date() - timedelta(days=1 if local.hour >= DEADLINE_HOUR else 2)


def landing_expected(landed_at: dict[date, float], wall_now: float) -> Expected:
    """On a replayed feed's clock (day → when it landed, epoch seconds): its pace is the median gap
    between the newest deliveries. The newest day must be processed within PROCESSING_SHARE of an
    interval after it landed; each further interval without a delivery makes one more day overdue."""
    if not landed_at:
        return Expected(None, "nothing has landed yet")
    newest = max(landed_at)
    recent = sorted(landed_at)[-(PACE_DAYS + 1):]
    gaps = [landed_at[b] - landed_at[a] for a, b in zip(recent, recent[1:]) if (b - a).days == 1 and landed_at[b] > landed_at[a]]
    waited = max(0.0, wall_now - landed_at[newest])
    if not gaps:  # a single delivery: no pace to judge lateness by yet
        return Expected(newest - timedelta(days=1), f"{newest} landed {waited:.0f} s ago; no pace yet")
    pace = statistics.median(gaps)
    basis = f"{newest} landed {waited:.0f} s ago; the feed delivers a day every {pace:.0f} s"
    grace = PROCESSING_SHARE * pace
    if waited < grace:
        return Expected(newest - timedelta(days=1), basis)
    return Expected(newest + timedelta(days=int((waited - grace) // pace)), basis)


def current_expected(source) -> Expected:
    """The newest partition expected now, by `ML_ASSETS_FEED_CLOCK` (`source`: the `source` resource)."""
    from ml_assets.flights.contracts import DAILY_DATASETS
    from ml_assets.resources.sources import LandingZone

    if feed_clock() == WALL_CLOCK:
        now = datetime.now(ZoneInfo(TIMEZONE))
        return Expected(expected_day(now), f"the wall clock, {now:%Y-%m-%d %H:%M} {TIMEZONE}")
    if not isinstance(source, LandingZone):
        raise ValueError("ML_ASSETS_FEED_CLOCK=replay reads the landing zone's deliveries: set ML_ASSETS_LANDING_DIR")
    return landing_expected(source.landed_at(DAILY_DATASETS), time.time())


@dataclass(frozen=True)
class Freshness:
    asset_key: dg.AssetKey
    passed: bool
    metadata: dict[str, str]


def freshness_of(instance: dg.DagsterInstance, asset_keys, expected: Expected, last_partition: date | None) -> list[Freshness]:
    """Each daily asset: is the partition expected on the feed's clock (at most the partitions'
    last) materialized?"""
    day = min(expected.day, last_partition) if expected.day and last_partition else expected.day
    metadata = {"expected_partition": str(day) if day else "none", "feed_clock": feed_clock(), "basis": expected.basis}
    found = []
    for key in asset_keys:
        present = day is None or _materialized(instance, key, day)
        reason = {} if present else {"reason": f"partition {day} is not materialized yet ({expected.basis})"}
        found.append(Freshness(key, present, metadata | reason))
    return found


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
        for found in freshness_of(context.instance, selected, current_expected(source), _last_partition(partitions_def)):
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
        found = freshness_of(context.instance, keys, current_expected(source), _last_partition(partitions_def))
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
