"""Shared wiring of the asset layers: partition ranges, data versions, asset defaults."""

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


def day_range(context: dg.AssetExecutionContext) -> tuple[date, date] | None:
    """First and last day (inclusive) of the partitions this run materializes; None for an
    unpartitioned asset."""
    if context.assets_def.partitions_def is None:
        return None
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def data_version(table: str, version: int) -> dg.DataVersion:
    """A table's Delta version is the asset's data version: it pins exactly what was written."""
    return dg.DataVersion(f"{table}@{version}")
