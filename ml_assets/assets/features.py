"""Features layer: `flight_features`, one row per flight, point-in-time correct."""

from datetime import date, timedelta

import dagster as dg

from ml_assets.assets.common import DAILY, check_results_by_day, data_version, day_range
from ml_assets.dates import days_between
from ml_assets.flights.feature_spec import COLUMN_DESCRIPTIONS, FEATURES, LABEL
from ml_assets.flights.feature_spec import FEATURES_TABLE as TABLE
from ml_assets.flights.features import FLIGHT_DAYS_BEFORE, WEATHER_DAYS_BEFORE
from ml_assets.metadata import table_metadata
from ml_assets.partitions import daily_partitions
from ml_assets.resources.storage import DeltaStorage

LABEL_RATE_BOUNDS = (0.02, 0.95)  # outside these a day's labels are broken, not just bad weather


def _trailing(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(
        start_offset=-days, allow_nonexistent_upstream_partitions=True
    )


def refuse_short_deliveries(storage: DeltaStorage, first: date, last: date) -> None:
    """Fail when a stored day of flights in first..last is a short delivery (the processed
    layer's `rows_per_day` rule, a cut-off file included): it must not feed features; its next
    complete delivery re-runs it, and automation then rebuilds the days whose window contains it."""
    from ml_assets.assets.processed import stored_rows_by_day
    from ml_assets.flights.quality_gates import QUALITY_GATES
    from ml_assets.metadata import markdown_table
    from ml_assets.quality.gates import short_days
    from ml_assets.resources.sources import cut_off_days

    gate = QUALITY_GATES["flights"]
    counts = stored_rows_by_day(storage, "processed/flights", last + timedelta(days=1), (last - first).days + 1 + gate.history_days)
    stored = [day for day in counts if first <= day <= last]
    cut_off = cut_off_days(storage.scan("raw/flights", first, last)) if storage.exists("raw/flights") else {}
    short = short_days(counts, stored, gate, cut_off)
    if short.height:
        raise dg.Failure(
            f"processed/flights holds short deliveries for {', '.join(map(str, short['date']))} "
            f"(rule rows_per_day: at least {gate.min_rows_per_day} rows and {gate.min_weekday_share:.0%} "
            "of the weekday's recent median, and no file cut off mid-line); they do not feed features until a complete "
            "redelivery replaces them",
            metadata={"short_days": dg.MetadataValue.md(markdown_table(short))},
        )


def refuse_failed_gates(instance: dg.DagsterInstance, windows: dict[str, tuple[date, date]]) -> None:
    """Fail when a day of an input table (dataset → its days first..last) failed a blocking quality
    gate on its latest materialization: it feeds no features, in a run of one day or a range,
    until a delivery that passes the gate re-runs it (automation then rebuilds the days that read it)."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from ml_assets.dates import days_between
    from ml_assets.flights.quality_gates import QUALITY_GATES
    from ml_assets.quality.gates import gate_check_specs

    failed = []
    for dataset, (first, last) in windows.items():
        keys = [spec.key for spec in gate_check_specs(dataset, QUALITY_GATES[dataset]) if spec.blocking]
        partitions = [day.isoformat() for day in days_between(first, last)]
        infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=partitions)
        failed += sorted(
            f"{dataset} {info.partition_key} ({info.check_key.name})" for info in infos
            if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.is_current
        )  # fmt: skip
    if failed:
        raise dg.Failure(
            f"inputs failed their blocking quality gates: {', '.join(failed)}; they feed no features "
            "until a delivery that passes the gates runs them again"
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
            "flight_id_unique", asset="flight_features", blocking=True, partitions_def=daily_partitions,
            description="One feature row per flight.",
        ),
        dg.AssetCheckSpec(
            "label_rate_plausible", asset="flight_features", blocking=True, partitions_def=daily_partitions,
            description=f"The day's disruption rate lies within {LABEL_RATE_BOUNDS}.",
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
    inputs = {
        "processed/flights": (start - timedelta(days=FLIGHT_DAYS_BEFORE), end),
        "processed/weather": (start - timedelta(days=WEATHER_DAYS_BEFORE), end),
    }
    refuse_short_deliveries(storage, *inputs["processed/flights"])
    refuse_failed_gates(context.instance, {table.removeprefix("processed/"): days for table, days in inputs.items()})
    versions = {table: storage.version(table) for table in [*inputs, "processed/planes"]}
    flights, weather = (
        storage.scan(table, first, last, version=versions[table]).collect()
        for table, (first, last) in inputs.items()
    )
    planes = storage.scan("processed/planes", version=versions["processed/planes"]).collect()
    frame = build_flight_features(flights, weather, planes, holidays_around(start, end), start, end)
    version = storage.write_days(TABLE, frame, start, end)

    yield dg.MaterializeResult(
        metadata=table_metadata(frame, storage.table_uri(TABLE), version, COLUMN_DESCRIPTIONS)
        | {
            "features": len(FEATURES),
            "disruption_rate": frame.get_column(LABEL).mean() if frame.height else None,
            "input_table_versions": dg.MetadataValue.json(versions),
        },
        data_version=data_version(TABLE, version),
    )
    yield from check_results_by_day(context, {day: feature_checks(frame.filter(pl.col("date") == day)) for day in days_between(start, end)})


def feature_checks(day_rows) -> list[dg.AssetCheckResult]:
    """The blocking checks of one day's feature rows."""
    rate = day_rows.get_column(LABEL).mean() if day_rows.height else None
    low, high = LABEL_RATE_BOUNDS
    duplicated = day_rows.height - day_rows.get_column("flight_id").n_unique()
    return [
        dg.AssetCheckResult(check_name="flight_id_unique", passed=duplicated == 0, metadata={"duplicated_rows": duplicated}),
        dg.AssetCheckResult(
            check_name="label_rate_plausible",
            passed=rate is None or low <= rate <= high,
            metadata={"disruption_rate": rate, "bounds": dg.MetadataValue.json(list(LABEL_RATE_BOUNDS))},
        ),
    ]
