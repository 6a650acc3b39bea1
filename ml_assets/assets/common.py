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


def day_range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last day (inclusive) of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def data_version(table: str, version: int) -> dg.DataVersion:
    """A table's Delta version is the asset's data version: it pins exactly what was written."""
    return dg.DataVersion(f"{table}@{version}")
