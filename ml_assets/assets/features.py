"""Features layer: `flight_features`, one row per flight, point-in-time correct."""

from datetime import date, timedelta

import dagster as dg

from ml_assets.assets.common import DAILY, data_version, day_range
from ml_assets.flights.feature_spec import COLUMN_DESCRIPTIONS, FEATURES, LABEL
from ml_assets.flights.feature_spec import FEATURES_TABLE as TABLE
from ml_assets.flights.features import FLIGHT_DAYS_BEFORE, WEATHER_DAYS_BEFORE
from ml_assets.metadata import table_metadata
from ml_assets.resources.storage import DeltaStorage

LABEL_RATE_BOUNDS = (0.02, 0.95)  # outside these a day's labels are broken, not just bad weather


def _trailing(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(
        start_offset=-days, allow_nonexistent_upstream_partitions=True
    )


def refuse_short_deliveries(storage: DeltaStorage, first: date, last: date) -> None:
    """Fail when a stored day of flights in first..last is a short delivery (the processed
    layer's `rows_per_day` rule): it must not feed features; its next complete delivery
    re-runs it, and automation then rebuilds the days whose window contains it."""
    from ml_assets.assets.processed import stored_rows_by_day
    from ml_assets.flights.quality_gates import QUALITY_GATES
    from ml_assets.metadata import markdown_table
    from ml_assets.quality.gates import short_days

    gate = QUALITY_GATES["flights"]
    counts = stored_rows_by_day(storage, "processed/flights", last + timedelta(days=1), (last - first).days + 1 + gate.history_days)
    stored = [day for day in counts if first <= day <= last]
    short = short_days(counts, stored, gate)
    if short.height:
        raise dg.Failure(
            f"processed/flights holds short deliveries for {', '.join(map(str, short['date']))} "
            f"(rule rows_per_day: at least {gate.min_rows_per_day} rows and {gate.min_weekday_share:.0%} "
            "of the weekday's recent median); they do not feed features until a complete "
            "redelivery replaces them",
            metadata={"short_days": dg.MetadataValue.md(markdown_table(short))},
        )


@dg.asset(
    group_name="features",
    deps=[
        dg.AssetDep("flights", partition_mapping=_trailing(FLIGHT_DAYS_BEFORE)),
        dg.AssetDep("weather", partition_mapping=_trailing(WEATHER_DAYS_BEFORE)),
        "planes",
    ],
    kinds={"polars", "deltalake"},
    code_version="3",
    check_specs=[
        dg.AssetCheckSpec(
            "flight_id_unique", asset="flight_features", blocking=True,
            description="One feature row per flight.",
        ),
        dg.AssetCheckSpec(
            "label_rate_plausible", asset="flight_features", blocking=True,
            description=f"Each day's disruption rate lies within {LABEL_RATE_BOUNDS}.",
        ),
    ],  # fmt: skip
    description=(
        "One row per flight: schedule, aircraft, origin weather and its trend, operations at the "
        "origin in the last hours and trailing disruption rates, all as known 2 hours before "
        "the scheduled departure; label `label_disrupted` (arrival delay >= 15 min, cancelled "
        "or diverted)."
    ),
    **DAILY,
)
def flight_features(context: dg.AssetExecutionContext, storage: DeltaStorage):
    import polars as pl

    from ml_assets.flights.features import build_flight_features, holidays_around

    start, end = day_range(context)
    refuse_short_deliveries(storage, start - timedelta(days=FLIGHT_DAYS_BEFORE), end)
    inputs = {
        "processed/flights": (start - timedelta(days=FLIGHT_DAYS_BEFORE), end),
        "processed/weather": (start - timedelta(days=WEATHER_DAYS_BEFORE), end),
    }
    versions = {table: storage.version(table) for table in [*inputs, "processed/planes"]}
    flights, weather = (
        storage.scan(table, first, last, version=versions[table]).collect()
        for table, (first, last) in inputs.items()
    )
    planes = storage.scan("processed/planes", version=versions["processed/planes"]).collect()
    frame = build_flight_features(flights, weather, planes, holidays_around(start, end), start, end)
    version = storage.write_days(TABLE, frame, start, end)

    daily_rate = frame.group_by("date").agg(pl.col(LABEL).mean()).sort("date")
    low, high = LABEL_RATE_BOUNDS
    implausible = daily_rate.filter(~pl.col(LABEL).is_between(low, high))
    duplicated = frame.height - frame.get_column("flight_id").n_unique()
    return dg.MaterializeResult(
        metadata=table_metadata(frame, storage.table_uri(TABLE), version, COLUMN_DESCRIPTIONS)
        | {
            "features": len(FEATURES),
            "disruption_rate": frame.get_column(LABEL).mean() if frame.height else None,
            "input_table_versions": dg.MetadataValue.json(versions),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="flight_id_unique",
                passed=duplicated == 0,
                metadata={"duplicated_rows": duplicated},
            ),
            dg.AssetCheckResult(
                check_name="label_rate_plausible",
                passed=implausible.is_empty(),
                metadata={
                    "implausible_days": dg.MetadataValue.json(
                        {str(d): round(r, 3) for d, r in implausible.iter_rows()}
                    )
                },
            ),
        ],
        data_version=data_version(TABLE, version),
    )
