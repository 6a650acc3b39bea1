"""The online store: one narrow interface with a SQLite and a Redis backend.

It holds two kinds of state, each written in batches and read by entity key (the shape of Feast's
online stores; the trailing windows are ours, Feast does not compute them online):
- daily rows: entity key → feature values, for the day they were computed for (pushed by the
  `online_features` asset);
- real-time entries: per (series, entity), time-ordered entries built from the event feed, read
  by time range. An event is applied at most once (by its id); entries older than the retention
  cutoff expire;
- dead letters: events the feed guard rejected, with the reason, kept once per event id.

Times are epoch seconds (UTC). Any failure to reach or use the backend is an `OnlineStoreError`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

SQLITE_FILE = "serving/online_store.db"  # under the data dir when ML_ASSETS_ONLINE_STORE is unset


@lru_cache(maxsize=16384)
def decoded_json(text: str):
    """A daily row or payload from its JSON text, decoded once per distinct text: the same rows are
    read by every request of a day. The value is shared: read it, never change it."""
    return json.loads(text)


class OnlineStoreError(RuntimeError):
    """The online store cannot be reached or failed to answer."""


@dataclass(frozen=True)
class Entry:
    """One piece of real-time state of (series, entity) at `time`: a number and/or a JSON-able
    list (kept apart so the hot path reads numbers without decoding anything)."""

    series: str
    entity: str
    time: float
    value: float | None = None
    payload: list | None = None


@dataclass(frozen=True)
class StoreEvent:
    """An event as the store applies it: its entries, once; `progress` marks an event whose
    time says how far the feed has got (a departure, an observation), for the watermark."""

    event_id: str
    time: float
    entries: tuple[Entry, ...]
    progress: bool


@dataclass(frozen=True)
class TimeRange:
    """Entries of (series, entity) with start <= time <= end."""

    series: str
    entity: str
    start: float
    end: float


@dataclass(frozen=True)
class Tally:
    """How many entries of (series, entity) lie in after < time <= upto, and the sum of their values
    (0 unless `summed`: a count alone is cheaper to answer)."""

    series: str
    entity: str
    after: float
    upto: float
    summed: bool = True


@dataclass(frozen=True)
class NamedRead:
    """Reads keyed by an entity that another entry names, resolved by the store in the same round
    trip: the latest entry of `source` names it at `payload[field]`; then the daily row
    `daily_prefix + entity` of `day` and the entries of (`series`, entity) in [start, end]."""

    source: TimeRange
    field: int
    day: date
    daily_prefix: str
    series: str
    start: float
    end: float


Entries = list[tuple[float, float | None, list | None]]  # (time, value, payload), oldest first


@dataclass(frozen=True)
class Snapshot:
    """What one request reads: the status, daily rows by day and key, entries per range, per named
    read (entity or None, its daily row, its entries), and per tally (count, sum of values)."""

    status: StoreStatus
    daily: dict[date, dict[str, dict | None]]
    ranges: list[Entries]
    named: list[tuple[str | None, dict | None, Entries]]
    tallies: list[tuple[int, float]]


@dataclass(frozen=True)
class AppendResult:
    applied: int
    duplicates: int
    expired: int  # older than the retention cutoff: not applied


@dataclass(frozen=True)
class Rejection:
    """An event the feed guard refused: kept with its reason, never applied."""

    event_id: str
    reason: str  # a kind, e.g. ahead_of_feed, unknown_carrier
    message: str
    event: dict  # as received (JSON)


@dataclass(frozen=True)
class DeadLetters:
    counts: dict[str, int]  # reason → events kept
    latest: list[dict]  # newest first: event_id, reason, message, event, received_at


@dataclass(frozen=True)
class StoreStatus:
    watermark: float | None  # latest progress-event time applied
    coverage_start: float | None  # earliest progress-event time applied (or set by a warm-up)
    expired_before: float | None  # entries before this were expired
    last_received: float | None  # wall-clock time of the last append
    daily: dict[date, str]  # days with daily rows → when they were pushed (ISO 8601)

    @property
    def realtime_since(self) -> float | None:
        """From when on the real-time state is complete."""
        if self.coverage_start is None:
            return None
        return max(self.coverage_start, self.expired_before or self.coverage_start)


class OnlineStore(ABC):
    url: str  # for messages, without credentials

    @abstractmethod
    def write_daily(self, day: date, rows: dict[str, dict], pushed_at: datetime) -> None:
        """Replace the daily rows of `day` atomically."""

    @abstractmethod
    def read_daily(self, day: date, keys: Sequence[str]) -> list[dict | None]:
        """The rows of `keys` for `day` (None where absent)."""

    @abstractmethod
    def append(self, events: Sequence[StoreEvent], received_at: float) -> AppendResult:
        """Apply the events not applied before and not older than the expiry cutoff."""

    @abstractmethod
    def read_ranges(self, ranges: Sequence[TimeRange]) -> list[list[tuple[float, float | None, list | None]]]:
        """For each range, its entries as (time, value, payload), oldest first."""

    @abstractmethod
    def read_tallies(self, tallies: Sequence[Tally]) -> list[tuple[int, float]]:
        """For each tally, (count, sum of values) of its entries."""

    def read_snapshot(
        self, daily: dict[date, list[str]], ranges: Sequence[TimeRange], named: Sequence[NamedRead], tallies: Sequence[Tally]
    ) -> Snapshot:
        """Everything a request reads at once (a backend answers it in one round trip)."""
        found = self.read_ranges([*ranges, *(n.source for n in named)])
        return Snapshot(
            self.status(),
            {day: dict(zip(keys, self.read_daily(day, keys))) for day, keys in daily.items()},
            found[: len(ranges)],
            [self._named(n, source) for n, source in zip(named, found[len(ranges) :])],
            self.read_tallies(tallies),
        )

    def _named(self, read: NamedRead, source: Entries) -> tuple[str | None, dict | None, Entries]:
        payload = source[-1][2] if source else None
        entity = payload[read.field] if payload else None
        if entity is None:
            return None, None, []
        (row,) = self.read_daily(read.day, [read.daily_prefix + entity])
        (entries,) = self.read_ranges([TimeRange(read.series, entity, read.start, read.end)])
        return entity, row, entries

    @abstractmethod
    def expire(self, before: float) -> int:
        """Drop entries and applied event ids older than `before`; returns entries dropped."""

    @abstractmethod
    def set_coverage_start(self, start: float) -> None:
        """Declare the real-time state complete from `start` on (a warm-up replayed from there)."""

    @abstractmethod
    def dead_letter(self, rejected: Sequence[Rejection], received_at: float) -> int:
        """Keep rejected events with their reasons (once per event id); returns how many were new."""

    @abstractmethod
    def dead_letters(self, limit: int) -> DeadLetters:
        """Counts by reason and the `limit` newest rejected events."""

    @abstractmethod
    def status(self) -> StoreStatus:
        """Watermark, coverage and the days with daily rows."""

    @abstractmethod
    def ping(self) -> None:
        """Raise OnlineStoreError unless the store answers."""

    def close(self) -> None:
        """Release connections."""


def store_url_from_env() -> str | None:
    return os.environ.get("ML_ASSETS_ONLINE_STORE") or None


def open_store(url: str | None, data_dir: Path) -> OnlineStore:
    """`redis://host:port/db[?prefix=...]`, `sqlite:///path` (`sqlite:////abs/path`), or None: the SQLite file under
    `data_dir`."""
    if not url:
        from ml_assets.serving.sqlite_store import SqliteOnlineStore

        return SqliteOnlineStore(data_dir / SQLITE_FILE)
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        from ml_assets.serving.redis_store import RedisOnlineStore

        return RedisOnlineStore(url)
    if scheme == "sqlite":
        from ml_assets.serving.sqlite_store import SqliteOnlineStore

        return SqliteOnlineStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"ML_ASSETS_ONLINE_STORE={url!r}: expected redis://..., sqlite:///path or unset")
