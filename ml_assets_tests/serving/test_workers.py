"""`ml-assets serve --workers 2`: two processes share the port, each follows the registry on its
own (a canary rollout, its abort, a promotion), and the prediction log they share holds every
prediction once when the service stops."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import ml_assets
from ml_assets.models.rollouts import CANARY, abort_rollout, start_rollout
from ml_assets.serving.prediction_log import SqlitePredictionLog
from ml_assets_tests.serving.conftest import PARITY_DAY, flight_request

WORKERS = 2
PROJECT = Path(ml_assets.__file__).resolve().parents[1]


@pytest.fixture
def two_workers(registry, warm_store_file, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "serving").mkdir(parents=True)
    shutil.copy(warm_store_file, data_dir / "serving" / "online_store.db")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("ML_ASSETS_ONLINE_STORE", "ML_ASSETS_API_TOKEN")}
    env |= {"ML_ASSETS_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": registry.tracking_uri,
            "ML_ASSETS_REGISTRY_POLL_SECONDS": "0.3", "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1",
            "ML_ASSETS_FEED_CLOCK": "replay"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "ml_assets.cli", "serve", "--workers", str(WORKERS), "--port", str(port)],
        env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        every_worker(base, lambda s: s["models"]["champion"] is not None, "a loaded champion", timeout_s=180, process=process)
        yield base, process, data_dir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def every_worker(base: str, condition, what: str, timeout_s: float = 60.0, process=None) -> dict[int, dict]:
    """Ask /v1/status on fresh connections (the kernel spreads them over the workers) until
    `WORKERS` processes have answered with a status meeting `condition`; their statuses by pid."""
    deadline, meeting, seen = time.monotonic() + timeout_s, {}, set()
    while len(meeting) < WORKERS:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the service exited: {process.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"{what}: only {sorted(meeting)} of the workers {sorted(seen)} in {timeout_s} s"
        try:
            status = httpx.get(f"{base}/v1/status", headers={"Connection": "close"}, timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        pid = status["process"]["pid"]
        seen.add(pid)
        if condition(status):
            meeting[pid] = status
        else:
            meeting.pop(pid, None)
        time.sleep(0.02)
    return meeting


def test_two_workers_follow_a_rollout_its_abort_and_a_promotion_and_log_each_prediction_once(
    two_workers, registry, parity_flights
):
    base, process, data_dir = two_workers
    bodies = [flight_request(r) for r in parity_flights.sort("flight_id").head(60).to_dicts()]
    sent = []

    def predict(count: int) -> None:
        for body in bodies[:count]:
            request_id = uuid.uuid4().hex
            response = httpx.post(f"{base}/v1/predict", json={"flights": [body]},
                                  headers={"x-request-id": request_id, "Connection": "close"}, timeout=10)  # fmt: skip
            assert response.status_code == 200, response.text
            sent.append(request_id)

    started = every_worker(base, lambda s: s["models"]["champion"]["version"] == "1", "champion v1")
    predict(30)
    start_rollout(registry, CANARY, 50.0, "two workers", by="tests")
    canary = every_worker(base, lambda s: s["rollout"]["mode"] == CANARY and s["models"]["challenger"]["version"] == "2",
                          "the canary of v2")  # fmt: skip
    predict(30)
    abort_rollout(registry, "stopped by the test", by="tests")
    aborted = every_worker(base, lambda s: s["rollout"]["mode"] == "none" and s["models"]["challenger"] is None,
                           "the abort")  # fmt: skip
    registry.promote("2", "promoted by the test", moved_by="tests")
    promoted = every_worker(base, lambda s: s["models"]["champion"]["version"] == "2", "champion v2")
    predict(20)

    assert len(set(started)) == WORKERS and set(started) == set(canary) == set(aborted) == set(promoted)
    assert process.pid not in started  # the workers are processes of their own
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    log = SqlitePredictionLog(data_dir / "serving" / "prediction_log.db")
    logged = [r["request_id"] for day in (PARITY_DAY, PARITY_DAY + timedelta(days=1)) for r in log.read_day(day)]
    assert sorted(logged) == sorted(sent)  # every prediction once: none lost, none twice
    assert not list((data_dir / "serving" / "prediction_log_spill").glob("*"))
