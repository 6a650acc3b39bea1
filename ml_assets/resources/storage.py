"""Delta Lake storage: one date-partitioned table per asset, read and written with polars.

A day range is written as one `overwrite` commit with a predicate on the range, so a killed run
never leaves a half-written partition and a re-run replaces exactly its days. Every commit is a
table version, which the assets record as their data version (time travel with `version=`): the
version of the write's own commit, found by an id the write puts in the commit's metadata, so a
concurrent commit to the same table never passes for ours.
A write may add columns (a new feature): they are merged into the table schema, and days not
rewritten yet read them as null until they are re-materialized.
"""

import uuid
from datetime import date

import dagster as dg
import polars as pl

DATE_COLUMN = "date"
WRITE_ID = "ml_assets.write_id"  # commit metadata naming the write that made the commit
RECENT_COMMITS = 100  # looked through first for a write's commit, before the whole history


class DeltaStorage(dg.ConfigurableResource):
    """Tables live at `{base_uri}/{layer}/{name}`: a local folder or an object-store URI."""

    base_uri: str

    def table_uri(self, table: str) -> str:
        return f"{self.base_uri.rstrip('/')}/{table}"

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.table_uri(table))

    def version(self, table: str) -> int:
        from deltalake import DeltaTable

        return DeltaTable(self.table_uri(table)).version()

    def write_days(self, table: str, frame: pl.DataFrame, start: date, end: date) -> int:
        """Replace the days start..end (inclusive) with `frame` atomically; returns the new version."""
        days = frame.get_column(DATE_COLUMN)
        if frame.height and (days.min() < start or days.max() > end):
            raise ValueError(
                f"{table}: rows dated {days.min()}..{days.max()} fall outside the "
                f"range {start}..{end} being written"
            )
        return self._overwrite(
            table,
            frame,
            predicate=f"{DATE_COLUMN} >= '{start}' AND {DATE_COLUMN} <= '{end}'",
            partition_by=[DATE_COLUMN],
            schema_mode="merge",
        )

    def write_key(self, table: str, frame: pl.DataFrame, column: str, value: str) -> int:
        """Replace the rows whose `column` is `value` (a weekly asset's week) with `frame` atomically;
        `column` is set to `value` on every row written. Returns the new version."""
        return self._overwrite(
            table, frame.with_columns(pl.lit(value).alias(column)), predicate=f"{column} = '{value}'", schema_mode="merge"
        )

    def write_table(self, table: str, frame: pl.DataFrame) -> int:
        """Replace a whole unpartitioned table; returns the new version."""
        return self._overwrite(table, frame, schema_mode="overwrite")

    def write(self, table: str, frame: pl.DataFrame, days: tuple[date, date] | None) -> int:
        """`write_days` over `days` (first, last), or `write_table` for an unpartitioned table."""
        return self.write_days(table, frame, *days) if days else self.write_table(table, frame)

    def _overwrite(self, table: str, frame: pl.DataFrame, **options) -> int:
        """One `overwrite` commit of `frame` with the Delta write `options`; returns its version."""
        from deltalake import CommitProperties

        write_id = uuid.uuid4().hex
        frame.write_delta(
            self.table_uri(table),
            mode="overwrite",
            delta_write_options={**options, "commit_properties": CommitProperties(custom_metadata={WRITE_ID: write_id})},
        )
        return self._version_written_by(table, write_id)

    def _version_written_by(self, table: str, write_id: str) -> int:
        from deltalake import DeltaTable

        delta_table = DeltaTable(self.table_uri(table))
        for limit in (RECENT_COMMITS, None):
            for commit in delta_table.history(limit):
                if commit.get(WRITE_ID) == write_id:
                    return commit["version"]
        raise RuntimeError(f"{self.table_uri(table)}: the commit of write {write_id} is not in the table's history")

    def scan(
        self,
        table: str,
        start: date | None = None,
        end: date | None = None,
        version: int | None = None,
    ) -> pl.LazyFrame:
        """The table (at `version`, default latest), limited to days start..end when given."""
        if not self.exists(table):
            raise FileNotFoundError(
                f"Delta table {self.table_uri(table)!r} does not exist yet: materialize "
                f"the asset that writes {table!r} first"
            )
        frame = pl.scan_delta(self.table_uri(table), version=version)
        if start is not None:
            frame = frame.filter(pl.col(DATE_COLUMN) >= start)
        if end is not None:
            frame = frame.filter(pl.col(DATE_COLUMN) <= end)
        return frame
