"""Shared wiring of the weekly layers (training, evaluation): week ranges and per-week rows.

Weekly assets store small per-week tables (training-set manifests, evaluation summaries) as Delta
tables keyed by a `week` column: a week is rewritten in one atomic commit (`DeltaStorage.write_key`).
"""

from datetime import date

import dagster as dg
import polars as pl

from ml_assets.partitions import weekly_partitions
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import OWNER

WEEK_COLUMN = "week"

WEEKLY = dict(partitions_def=weekly_partitions, owners=[OWNER])


def read_week_rows(storage: DeltaStorage, table: str, week: str, producer: str) -> pl.DataFrame:
    """The rows of `week`, or a failure telling which asset must be materialized first."""
    rows = (
        storage.scan(table).filter(pl.col(WEEK_COLUMN) == week).collect()
        if storage.exists(table)
        else pl.DataFrame()
    )
    if rows.is_empty():
        raise dg.Failure(f"{table} has no rows for week {week}: materialize {producer} for {week} first")
    return rows


def read_days_pinned(storage: DeltaStorage, table: str, first: date, last: date) -> tuple[pl.DataFrame, int]:
    """The days first..last of a table at its current version, and that version."""
    if not storage.exists(table):
        raise dg.Failure(f"Delta table {storage.table_uri(table)!r} does not exist: materialize it first")
    version = storage.version(table)
    return storage.scan(table, first, last, version=version).collect(), version
