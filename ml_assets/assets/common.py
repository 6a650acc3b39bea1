"""Shared wiring of the asset layers: partition ranges, data versions, asset defaults, check
results per partition."""

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta

import dagster as dg

from ml_assets.partitions import daily_partitions
from ml_assets.settings import OWNER, PARTITIONS_PER_RUN

# A backfill materializes its day range in one run (one Delta commit per table), or in runs of at
# most PARTITIONS_PER_RUN days when that is set, so a pod's memory does not grow with the range.
DAILY = dict(
    partitions_def=daily_partitions,
    backfill_policy=(
        dg.BackfillPolicy.multi_run(PARTITIONS_PER_RUN) if PARTITIONS_PER_RUN else dg.BackfillPolicy.single_run()
    ),
    owners=[OWNER],
)
# The monitoring loop's daily assets carry partitioned checks, and a check result belongs to one
# partition: their backfills run one day per run.
DAILY_ONE_PER_RUN = DAILY | {"backfill_policy": dg.BackfillPolicy.multi_run(1)}
STATIC = dict(owners=[OWNER])


def day_range(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[date, date] | None:
    """First and last day (inclusive) of the partitions this run materializes or checks; None for
    an unpartitioned asset."""
    op_context = context.op_execution_context
    assets_def = op_context.assets_def
    if assets_def.partitions_def is None and all(spec.partitions_def is None for spec in assets_def.check_specs):
        return None
    window = op_context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def data_version(table: str, version: int) -> dg.DataVersion:
    """A table's Delta version is the asset's data version: it pins exactly what was written."""
    return dg.DataVersion(f"{table}@{version}")


def check_results_by_day(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    results: Mapping[date, Sequence[dg.AssetCheckResult]],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Partitioned checks' results, day by day, for a run over one day or a range.

    An `AssetCheckResult` is recorded for the run's single partition, which a ranged run has not
    (Dagster raises there), so each result becomes an evaluation of its own day, tied to the day's
    latest materialization (the one this run just wrote); each selected check's output is yielded
    once. A failed blocking check still fails the step, once every day is recorded."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    op_context = context.op_execution_context
    assets_def, selected = op_context.assets_def, op_context.selected_asset_check_keys
    specs = {spec.name: spec for spec in assets_def.check_specs}
    latest = _latest_materializations(op_context.instance, {spec.asset_key for spec in specs.values()}, results)
    for day, day_results in results.items():
        partition = day.isoformat()
        for result in day_results:
            spec = specs[result.check_name]
            if spec.key not in selected:
                continue
            record = latest.get((spec.asset_key, partition))
            yield dg.AssetCheckEvaluation(
                asset_key=spec.asset_key, check_name=spec.name, passed=result.passed, metadata=result.metadata,
                severity=result.severity, description=result.description, blocking=spec.blocking, partition=partition,
                target_materialization_data=record and AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                ),
            )  # fmt: skip
    for output_name, spec in assets_def.check_specs_by_output_name.items():
        if spec.key in selected:
            yield dg.Output(None, output_name=output_name)


def _latest_materializations(instance: dg.DagsterInstance, asset_keys: set, days) -> dict:
    """(asset key, partition) → the latest materialization record of each day, one query per asset."""
    partitions = [day.isoformat() for day in days]
    latest = {}
    for asset_key in asset_keys:
        cursor, found = None, set()
        while len(found) < len(partitions):  # newest first: a run's own writes come first
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=len(partitions), cursor=cursor
            )
            for record in page.records:
                found.add(record.partition_key)
                latest.setdefault((asset_key, record.partition_key), record)
            if not page.has_more:
                break
            cursor = page.cursor
    return latest
