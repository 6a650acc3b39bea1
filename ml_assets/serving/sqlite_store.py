"""The online store in one SQLite file (the embedded default): WAL mode, so the service reads while
the daily push or the event feed writes; one connection per thread."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from ml_assets.serving.store import (
    AppendResult,
    OnlineStore,
    OnlineStoreError,
    DeadLetters,
    NamedRead,
    Rejection,
    Snapshot,
    StoreEvent,
    Tally,
    StoreStatus,
    TimeRange,
    decoded_json,
)

DAILY_RETENTION_DAYS = 7  # daily rows older than this (before the day pushed) are dropped

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied_events (event_id TEXT PRIMARY KEY, time REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applied_events_by_time ON applied_events (time);
CREATE TABLE IF NOT EXISTS entries (
    series TEXT NOT NULL, entity TEXT NOT NULL, time REAL NOT NULL, event_id TEXT NOT NULL, value REAL, payload TEXT
);
DROP INDEX IF EXISTS entries_by_entity_time;
CREATE INDEX IF NOT EXISTS entries_by_entity_time_value ON entries (series, entity, time, value); -- tallies read no rows
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (time);
CREATE TABLE IF NOT EXISTS daily (day TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (day, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily_pushes (day TEXT PRIMARY KEY, pushed_at TEXT NOT NULL, keys INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL, message TEXT NOT NULL, event TEXT NOT NULL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_by_reason ON dead_letters (reason);
"""


class SqliteOnlineStore(OnlineStore):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._daily: tuple[float | None, dict] = (None, {})  # (daily_version, day → pushed at)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection().executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OnlineStoreError(f"online store {self.url}: {error}") from error

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _run(self, operation):
        try:
            return operation(self._connection())
        except sqlite3.Error as error:
            raise OnlineStoreError(f"online store {self.url}: {error}") from error

    def write_daily(self, day: date, rows: dict[str, dict], pushed_at: datetime) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM daily WHERE day = ? OR day < ?", (str(day), str(_oldest_kept(day))))
                db.execute("DELETE FROM daily_pushes WHERE day = ? OR day < ?", (str(day), str(_oldest_kept(day))))
                db.executemany(
                    "INSERT INTO daily (day, key, payload) VALUES (?, ?, ?)",
                    ((str(day), key, json.dumps(values)) for key, values in rows.items()),
                )
                db.execute(
                    "INSERT INTO daily_pushes (day, pushed_at, keys) VALUES (?, ?, ?)",
                    (str(day), pushed_at.isoformat(), len(rows)),
                )
                _set_meta(db, "daily_version", time.time_ns(), "set")  # readers re-read the pushes
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        self._run(write)

    def read_daily(self, day: date, keys: Sequence[str]) -> list[dict | None]:
        def read(db: sqlite3.Connection) -> list[dict | None]:
            marks = ",".join("?" * len(keys))
            found = dict(
                db.execute(f"SELECT key, payload FROM daily WHERE day = ? AND key IN ({marks})", (str(day), *keys))
            )
            return [decoded_json(found[key]) if key in found else None for key in keys]

        return self._run(read) if keys else []

    def append(self, events: Sequence[StoreEvent], received_at: float) -> AppendResult:
        def write(db: sqlite3.Connection) -> AppendResult:
            db.execute("BEGIN IMMEDIATE")
            try:
                cutoff = _meta(db).get("expired_before", float("-inf"))
                applied = duplicates = expired = 0
                progress = [e.time for e in events if e.progress and e.time >= cutoff]
                for event in events:
                    if event.time < cutoff:
                        expired += 1
                        continue
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO applied_events (event_id, time) VALUES (?, ?)",
                        (event.event_id, event.time),
                    ).rowcount
                    if not inserted:
                        duplicates += 1
                        continue
                    applied += 1
                    db.executemany(
                        "INSERT INTO entries (series, entity, time, event_id, value, payload) VALUES (?, ?, ?, ?, ?, ?)",
                        [(e.series, e.entity, e.time, event.event_id, e.value, _encoded(e.payload)) for e in event.entries],
                    )
                if progress:
                    _set_meta(db, "watermark", max(progress), "max")
                    _set_meta(db, "coverage_start", min(progress), "min")
                if events:
                    _set_meta(db, "last_received", received_at, "set")
                db.execute("COMMIT")
                return AppendResult(applied, duplicates, expired)
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return self._run(write)

    def read_ranges(self, ranges: Sequence[TimeRange]) -> list[list[tuple[float, float | None, list | None]]]:
        """One indexed query per range; its rows are the entries as they are, payloads decoded."""

        def read(db: sqlite3.Connection) -> list[list[tuple[float, float | None, list | None]]]:
            found = []
            for r in ranges:
                rows = db.execute(
                    "SELECT time, value, payload FROM entries WHERE series = ? AND entity = ? AND time BETWEEN ? AND ? "
                    "ORDER BY time, rowid",
                    (r.series, r.entity, r.start, r.end),
                ).fetchall()
                if any(payload is not None for _, _, payload in rows):
                    rows = [(t, v, decoded_json(p) if p is not None else None) for t, v, p in rows]
                found.append(rows)
            return found

        return self._run(read) if ranges else []

    def read_tallies(self, tallies: Sequence[Tally]) -> list[tuple[int, float]]:
        def read(db: sqlite3.Connection) -> list[tuple[int, float]]:
            return [
                db.execute(
                    f"SELECT count(*), {'total(value)' if t.summed else '0.0'} FROM entries "
                    "WHERE series = ? AND entity = ? AND time > ? AND time <= ?",
                    (t.series, t.entity, t.after, t.upto),
                ).fetchone()
                for t in tallies
            ]

        return self._run(read) if tallies else []

    def read_snapshot(
        self, daily: dict[date, list[str]], ranges: Sequence[TimeRange], named: Sequence[NamedRead], tallies: Sequence[Tally]
    ) -> Snapshot:
        """In one read transaction: a consistent snapshot while the feed writes."""
        db = self._connection()
        self._run(lambda db: db.execute("BEGIN"))
        try:
            return super().read_snapshot(daily, ranges, named, tallies)
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    def expire(self, before: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                dropped = db.execute("DELETE FROM entries WHERE time < ?", (before,)).rowcount
                db.execute("DELETE FROM applied_events WHERE time < ?", (before,))
                _set_meta(db, "expired_before", before, "max")
                db.execute("COMMIT")
                return dropped
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return self._run(delete)

    def dead_letter(self, rejected: Sequence[Rejection], received_at: float) -> int:
        def write(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                kept = sum(
                    db.execute(
                        "INSERT OR IGNORE INTO dead_letters (event_id, reason, message, event, received_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (r.event_id, r.reason, r.message, json.dumps(r.event), received_at),
                    ).rowcount
                    for r in rejected
                )
                db.execute("COMMIT")
                return kept
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return self._run(write) if rejected else 0

    def dead_letters(self, limit: int) -> DeadLetters:
        def read(db: sqlite3.Connection) -> DeadLetters:
            counts = dict(db.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason"))
            rows = db.execute(
                "SELECT event_id, reason, message, event, received_at FROM dead_letters ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
            latest = [
                {"event_id": i, "reason": r, "message": m, "event": json.loads(e), "received_at": t}
                for i, r, m, e, t in rows
            ]
            return DeadLetters(counts, latest)

        return self._run(read)

    def set_coverage_start(self, start: float) -> None:
        self._run(lambda db: _set_meta(db, "coverage_start", start, "set"))

    def status(self) -> StoreStatus:
        def read(db: sqlite3.Connection) -> StoreStatus:
            meta = _meta(db)
            version = meta.get("daily_version")
            if version is None or version != self._daily[0]:  # pushed since: read the days again
                pushes = {date.fromisoformat(d): p for d, p in db.execute("SELECT day, pushed_at FROM daily_pushes")}
                self._daily = (version, dict(sorted(pushes.items())))
            return StoreStatus(
                meta.get("watermark"), meta.get("coverage_start"), meta.get("expired_before"),
                meta.get("last_received"), dict(self._daily[1]),
            )  # fmt: skip

        return self._run(read)

    def ping(self) -> None:
        if not self.path.exists():
            raise OnlineStoreError(f"online store {self.url}: the file is gone")
        self._run(lambda db: db.execute("SELECT count(*) FROM meta").fetchone())

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def _encoded(payload: list | None) -> str | None:
    return json.dumps(payload) if payload is not None else None


def _oldest_kept(day: date) -> date:
    return day - timedelta(days=DAILY_RETENTION_DAYS)


def _meta(db: sqlite3.Connection) -> dict[str, float]:
    return dict(db.execute("SELECT name, value FROM meta"))


def _set_meta(db: sqlite3.Connection, name: str, value: float, how: str) -> None:
    update = {"set": "excluded.value", "max": "max(value, excluded.value)", "min": "min(value, excluded.value)"}[how]
    db.execute(
        f"INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = {update}",
        (name, value),
    )
