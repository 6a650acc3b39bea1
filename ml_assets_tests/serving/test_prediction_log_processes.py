"""The prediction log shared by several processes (`ml-assets serve --workers N`): writers append to
one SQLite log at once, each process spills what it could not write when it stops, and writers
starting together claim each spill file once: every record ends up in the log exactly once."""

import multiprocessing
from pathlib import Path

from ml_assets.serving.prediction_log import PredictionLog, PredictionLogError, PredictionLogWriter, SqlitePredictionLog

DAY = "2013-02-08"
SPAWN = multiprocessing.get_context("spawn")


class DownLog(PredictionLog):
    url = "down://"

    def append(self, records):
        raise PredictionLogError("the log is down")

    def read_day(self, day):
        return []

    def prune(self, before):
        return 0


def record(request_id: str) -> dict:
    return {"request_id": request_id, "served_at": "2013-02-08T12:00:00+00:00", "date": DAY, "flight_key": "k",
            "prediction_time": None, "model_version": "1", "role": "champion", "score": 0.5, "latency_ms": 1.0,
            "features": {"carrier": "AA"}}  # fmt: skip


def write(log_path: str | None, spill_dir: str, name: str, count: int, ready) -> None:
    """One worker process: start (claiming spill files), submit `count` records in small batches,
    stop; with no log path, the log is down and the records are spilled at the stop."""
    log = SqlitePredictionLog(Path(log_path)) if log_path else DownLog()
    writer = PredictionLogWriter(log, Path(spill_dir), interval_s=0.01, batch=25)
    ready.wait()  # every process starts at the same moment
    writer.start()
    for start in range(0, count, 10):
        writer.submit([record(f"{name}-{i}") for i in range(start, min(start + 10, count))])
    writer.stop(timeout_s=0.5 if log_path is None else 30.0)


def run_processes(log_path: Path | None, spill_dir: Path, counts: dict[str, int]) -> None:
    ready = SPAWN.Barrier(len(counts))
    processes = [
        SPAWN.Process(target=write, args=(str(log_path) if log_path else None, str(spill_dir), name, count, ready))
        for name, count in counts.items()
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0


def test_workers_spill_on_their_own_and_the_next_ones_write_every_record_once(tmp_path):
    spill_dir, log_path = tmp_path / "spill", tmp_path / "prediction_log.db"

    run_processes(None, spill_dir, {"down-a": 120, "down-b": 80})  # the log is down when they stop
    spilled = sorted(spill_dir.glob("*.jsonl"))
    run_processes(log_path, spill_dir, {"w1": 300, "w2": 300, "w3": 300})  # they start together

    assert len(spilled) == 2  # one file per stopped process
    logged = [r["request_id"] for r in SqlitePredictionLog(log_path).read_day(DAY)]
    expected = [f"down-a-{i}" for i in range(120)] + [f"down-b-{i}" for i in range(80)]
    expected += [f"w{w}-{i}" for w in (1, 2, 3) for i in range(300)]
    assert sorted(logged) == sorted(expected)  # each once
    assert list(spill_dir.iterdir()) == []
