"""Hot swaps under load: `ml-assets serve` in its own process, a load generator in another, and the
champion moved three times in the registry; not one request fails."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx

from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.serving.conftest import flight_request

RATE, DURATION = 100, 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def champion_of(base: str) -> str | None:
    models = httpx.get(f"{base}/v1/status", timeout=5).json()["models"]
    return models["champion"]["version"] if models["champion"] else None


def wait_for(condition, timeout_s: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"{what} not reached in {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - began


def test_three_champion_swaps_under_load_fail_no_request(registry, warm_store_file, parity_flights, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "serving").mkdir(parents=True)
    shutil.copy(warm_store_file, data_dir / "serving" / "online_store.db")
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"flights": [flight_request(r)]}) + "\n" for r in parity_flights.to_dicts()))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("ML_ASSETS_ONLINE_STORE", "ML_ASSETS_API_TOKEN")} | {
        "ML_ASSETS_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "ML_ASSETS_REGISTRY_POLL_SECONDS": "0.5", "PYTHONPATH": str(PROJECT_ROOT), "ML_ASSETS_FEED_CLOCK": "replay",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "ml_assets.cli", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _ready(base), 90, "the service")
        out = tmp_path / "load.json"
        load = subprocess.Popen(
            [sys.executable, "-m", "ml_assets.bench.load_generator", "--url", f"{base}/v1/predict",
             "--bodies", str(bodies), "--rate", str(RATE), "--duration", str(DURATION), "--out", str(out)],
            cwd=PROJECT_ROOT, env=env,
        )  # fmt: skip
        swaps, began = [], time.monotonic()
        for version in ("2", "1", "2"):
            time.sleep(2.0)
            registry.promote(version, f"hot swap to v{version} under load", moved_by="tests")
            at = time.monotonic() - began
            swaps.append((round(at, 1), round(wait_for(lambda v=version: champion_of(base) == v, 20, f"champion v{version}"), 2)))
        assert load.wait(timeout=DURATION + 60) == 0
        result = json.loads(out.read_text())
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]

    print(f"\nswaps (promoted at s, switched after s): {swaps}; load: "
          f"{json.dumps({k: result[k] for k in ('requests', 'ok', 'failed', 'achieved_rate', 'latency_ms', 'model_versions', 'timeline')})}")
    assert result["failed"] == 0 and result["ok"] == result["requests"] >= RATE * DURATION * 0.95, result
    assert result["model_versions"].get("1", 0) > 100 and result["model_versions"].get("2", 0) > 100
    assert 'ml_assets_serving_model_swaps_total{role="champion"} 4.0' in metrics  # the first load, then 3 swaps
    assert 'ml_assets_serving_model_info{model_version="2",role="champion"} 1.0' in metrics
    assert "Traceback" not in output, output


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
