"""Shared wiring of the asset layers: partition ranges, data versions, asset defaults."""

from datetime import date, timedelta

import dagster as dg

from ml_assets.partitions import daily_partitions
from ml_assets.settings import OWNER

# Each run over a day range materializes it in one run (one Delta commit per table).
DAILY = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=[OWNER],
)
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
