"""The prediction log: every served prediction (request id, time, flight key, model version, role,
score, features, latency, the caller who asked), appended off the response path and durably.

The request path only puts records in a queue. A writer thread appends them in batches to the
log, a SQLite file by default or one Redis stream per flight date with the Redis store. A failed
write is counted (`ml_assets_serving_prediction_log_errors_total`) and retried; nothing is
dropped. Records still unwritten when the process stops are spilled to a local file and appended
at the next start. Several processes (`ml-assets serve --workers N`) share the log and the spill
folder: a starting writer claims a spill file with an exclusive lock, held until its records are in
the log and the file is gone, so each spilled record is written by one process only. The `served_predictions` asset moves a day of the log into the lake.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SQLITE_FILE = "serving/prediction_log.db"
SPILL_FOLDER = "serving/prediction_log_spill"
FIELDS = ["request_id", "served_at", "date", "flight_key", "prediction_time", "model_version", "role",
          "score", "latency_ms", "features", "caller"]  # fmt: skip


class PredictionLogError(RuntimeError):
    """The log cannot be written or read."""


class PredictionLog(ABC):
    url: str

    @abstractmethod
    def append(self, records: Sequence[dict]) -> None:
        """Append records (FIELDS; `features` a JSON string) durably, all or none."""

    @abstractmethod
    def read_day(self, day: date) -> list[dict]:
        """The records whose `date` (the flight's local date) is `day`, in the order written."""

    @abstractmethod
    def prune(self, before: date) -> int:
        """Drop the records of days before `before`; returns how many."""

    def close(self) -> None:
        """Release connections."""


class SqlitePredictionLog(PredictionLog):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a batch written is on disk
        columns = ", ".join(f"{f} {'REAL' if f in ('score', 'latency_ms') else 'TEXT'}" for f in FIELDS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS prediction_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
        self._db.execute("CREATE INDEX IF NOT EXISTS prediction_log_by_date ON prediction_log (date)")
        present = {row[1] for row in self._db.execute("PRAGMA table_info(prediction_log)")}
        for missing in [f for f in FIELDS if f not in present]:  # a log written before the field existed
            self._db.execute(f"ALTER TABLE prediction_log ADD COLUMN {missing} TEXT")

    def append(self, records: Sequence[dict]) -> None:
        marks = ", ".join("?" * len(FIELDS))
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        f"INSERT INTO prediction_log ({', '.join(FIELDS)}) VALUES ({marks})",
                        [tuple(r.get(f) for f in FIELDS) for r in records],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            raise PredictionLogError(f"prediction log {self.url}: {error}") from error

    def read_day(self, day: date) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(FIELDS)} FROM prediction_log WHERE date = ? ORDER BY seq", (str(day),)
            ).fetchall()
        return [dict(zip(FIELDS, row)) for row in rows]

    def prune(self, before: date) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM prediction_log WHERE date < ?", (str(before),)).rowcount

    def close(self) -> None:
        self._db.close()


class RedisPredictionLog(PredictionLog):
    """One stream per flight date, `{prefix}prediction_log:{date}`, each entry one record."""

    def __init__(self, url: str):
        import redis

        from ml_assets.serving.redis_store import DEFAULT_PREFIX, SOCKET_TIMEOUT_S

        parts = urlsplit(url)
        self.prefix = dict(parse_qsl(parts.query)).get("prefix", DEFAULT_PREFIX)
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        self.client = redis.Redis.from_url(
            parts._replace(query="").geturl(), decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
        )  # fmt: skip

    def _stream(self, day: str) -> str:
        return f"{self.prefix}prediction_log:{day}"

    def append(self, records: Sequence[dict]) -> None:
        import redis

        pipe = self.client.pipeline(transaction=True)
        for record in records:
            pipe.xadd(self._stream(record["date"]), {"record": json.dumps(record)})
        try:
            pipe.execute()
        except redis.RedisError as error:
            raise PredictionLogError(f"prediction log {self.url}: {error}") from error

    def read_day(self, day: date) -> list[dict]:
        entries = self.client.xrange(self._stream(str(day)))
        return [json.loads(fields["record"]) for _, fields in entries]

    def prune(self, before: date) -> int:
        pattern = self._stream("*")
        old = [k for k in self.client.scan_iter(match=pattern) if k.rsplit(":", 1)[1] < str(before)]
        dropped = sum(self.client.xlen(k) for k in old)
        if old:
            self.client.delete(*old)
        return dropped

    def close(self) -> None:
        self.client.close()


def open_prediction_log(store_url: str | None, data_dir: Path) -> PredictionLog:
    """The log next to the online store: a Redis stream with Redis, else a SQLite file."""
    if store_url and urlsplit(store_url).scheme in ("redis", "rediss"):
        return RedisPredictionLog(store_url)
    return SqlitePredictionLog(data_dir / SQLITE_FILE)


def _encoded(record: dict) -> dict:
    """The record with its features as JSON text (encoded here, off the response path)."""
    features = record["features"]
    return record if features is None or isinstance(features, str) else record | {"features": json.dumps(features)}


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class PredictionLogWriter:
    """Appends submitted records to the log from a thread of its own; never drops one."""

    def __init__(self, log: PredictionLog, spill_dir: Path, metrics=None, interval_s: float = 0.2, batch: int = 1000):
        self.log, self.spill_dir, self.metrics = log, Path(spill_dir), metrics
        self.interval_s, self.batch = interval_s, batch
        self._queue: deque[dict] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._spilled: list[tuple[Path, int]] = []  # claimed spill files and their locked descriptors
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, records: Sequence[dict]) -> None:
        """Queue records (FIELDS; `features` may be a dict: it is encoded by the writer)."""
        self._queue.extend(records)
        if self.metrics:
            self.metrics.log_pending.set(len(self._queue))

    def start(self) -> None:
        if self._thread:
            return
        for path in sorted(self.spill_dir.glob("*.jsonl")) if self.spill_dir.exists() else []:
            claimed = _claim(path)
            if claimed is not None:
                descriptor, text = claimed
                self._queue.extend(json.loads(line) for line in text.splitlines() if line)
                self._spilled.append((path, descriptor))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (retrying until `timeout_s`), then spill the rest to a file."""
        if not self._thread:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._thread = None
        deadline = time.monotonic() + timeout_s
        while self._queue and time.monotonic() < deadline and not self.flush():
            time.sleep(0.1)
        if self._queue:
            self._spill()

    def flush(self) -> bool:
        """Write everything queued now; False when a write failed (the records stay queued)."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
            try:
                self.log.append([_encoded(record) for record in batch])
            except Exception as error:  # the log is down: keep the records, count, retry later
                self.last_error = str(error)
                if self.metrics:
                    self.metrics.log_errors.inc()
                return False
            for _ in batch:
                self._queue.popleft()
            if self.metrics:
                self.metrics.log_pending.set(len(self._queue))
        self.last_error = None
        self._release_spilled()  # their records are all in the log now
        return True

    def _run(self) -> None:
        backoff = self.interval_s
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = self.interval_s if self.flush() else min(backoff * 2, 5.0)

    def _spill(self) -> None:
        """Write the queue to a new spill file (complete before it appears), then drop the claimed
        ones: their records are in it."""
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial = self.spill_dir / f"{name}.partial"
        partial.write_text("".join(json.dumps(record) + "\n" for record in self._queue))
        os.replace(partial, self.spill_dir / f"{name}.jsonl")
        self._queue.clear()
        self._release_spilled()

    def _release_spilled(self) -> None:
        for path, descriptor in self._spilled:
            path.unlink(missing_ok=True)
            os.close(descriptor)  # releases the lock: the file is gone
        self._spilled.clear()


def _claim(path: Path) -> tuple[int, str] | None:
    """Lock a spill file for this process: (descriptor, text), or None when another process holds
    it or has already written and removed it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(descriptor).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)  # removed (and maybe replaced) since it was opened
    except (BlockingIOError, FileNotFoundError):
        os.close(descriptor)
        return None
    with os.fdopen(os.dup(descriptor)) as source:
        return descriptor, source.read()
