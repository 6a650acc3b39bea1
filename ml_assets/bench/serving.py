"""`ml-assets bench serving`: the online service under fixed loads, against the same model version
behind `mlflow models serve --env-manager local` under the same loads, in the same run.

Needs what `make demo` leaves: the lake (its last day of features is served) and a champion in the
registry. Every server listens on 127.0.0.1 in processes of its own (ours with `--workers`), the
load generator (`load_generator.py`) runs in another, each step is bounded in time, and everything
is stopped at the end. Each run, steps of `duration` seconds:
- `mlflow models serve` on full feature vectors, one per request, at rising rates until one it
  does not sustain (a failed request, under 95 % of the rate achieved, or a p99 over 250 ms);
- one-flight predictions with feature assembly (POST /v1/predict) on the SQLite and the Redis
  store, and our Open Inference Protocol route on full vectors, at the target rates and the highest
  rate mlflow sustained;
- predictions per second at batch 100, closed loop: /v1/predict on both stores, our v2 infer, mlflow;
- CPU per prediction in this process (the service's predict on the SQLite store, one flight and
  batches of 100): the request path alone and with the prediction log's writes.
With `--runs N` every figure is the median of the N runs; the load average is printed beside each.
Targets (the issue's, for a 2-core machine): p99 <= 10 ms at 300 requests/s and <= 25 ms at 500/s
with feature assembly on either store, >= 5,000 predictions/s at batch 100, p99 at least 20x lower
than `mlflow models serve` at the highest rate it sustains.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from ml_assets.settings import PROJECT_ROOT, data_dir

BATCH = 100
_idle_probes: list[tuple[str, bytes]] = []  # (URL, body) of one real request per server, before every step
BATCH_CONNECTIONS = 4
READY_TIMEOUT_S = 180
MLFLOW_RATES = (20, 35, 50, 100, 200, 300, 500)  # climbed until one it does not sustain
TARGET_P99_MS = {300: 10.0, 500: 25.0}
TARGET_BATCH_PREDICTIONS_PER_S = 5000
TARGET_MLFLOW_RATIO = 20
CPU_CALLS = {1: 1500, BATCH: 40}  # in-process predict calls per batch size
SUSTAINED_P99_MS = 250.0  # mlflow's own p99 at a rate it keeps up with is some 30-50 ms here
MIN_REQUESTS = 200  # per open-loop step


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, what: str) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {process.stdout.read()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} was not ready at {url} within {READY_TIMEOUT_S} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _bodies(folder: Path, tracking_uri: str) -> dict[str, Path]:
    """Request bodies from the lake's last day: flight identities, feature vectors, mlflow frames."""
    import polars as pl

    from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, FEATURES_TABLE
    from ml_assets.models.dataset import model_input_frame
    from ml_assets.resources.storage import DeltaStorage
    from ml_assets.serving.realtime import LOCAL
    from ml_assets.serving.warmup import last_materialized_day

    lake = DeltaStorage(base_uri=str(data_dir() / "lake"))
    day = last_materialized_day(lake)
    flights = lake.scan("processed/flights", day, day).collect().sort("flight_id")
    features = lake.scan(FEATURES_TABLE, day, day).collect().sort("flight_id")
    if features.is_empty():
        raise RuntimeError(f"the lake has no flight_features for {day}: run `make demo` first")
    identities = [
        {"carrier": r["carrier"], "flight": r["flight"], "origin": r["origin"], "dest": r["dest"],
         "sched_dep": r["sched_dep_utc"].astimezone(LOCAL).isoformat()} | ({"tailnum": r["tailnum"]} if r["tailnum"] else {})
        for r in flights.iter_rows(named=True)
    ]  # fmt: skip

    def v2(rows: pl.DataFrame) -> dict:
        return {"inputs": [
            {"name": c, "datatype": "BYTES" if c in CATEGORICAL_FEATURES else "FP64", "shape": [rows.height],
             "data": rows.get_column(c).cast(pl.String if c in CATEGORICAL_FEATURES else pl.Float64).to_list()}
            for c in FEATURES
        ]}  # fmt: skip

    def mlflow_frame(rows: pl.DataFrame) -> dict:
        frame = model_input_frame(rows)
        return {"dataframe_split": {"columns": list(frame.columns),
                                    "data": json.loads(frame.to_json(orient="values"))}}  # fmt: skip

    batches = [features.slice(i, BATCH) for i in range(0, features.height - BATCH + 1, BATCH)]
    contents = {
        "predict": [{"flights": [f]} for f in identities],
        "predict_batch": [{"flights": identities[i : i + BATCH]} for i in range(0, len(identities) - BATCH + 1, BATCH)],
        "v2": [v2(features.slice(i, 1)) for i in range(features.height)],
        "v2_batch": [v2(b) for b in batches],
        "mlflow": [mlflow_frame(features.slice(i, 1)) for i in range(features.height)],
        "mlflow_batch": [mlflow_frame(b) for b in batches],
    }
    paths = {}
    for name, bodies in contents.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(b) + "\n" for b in bodies))
    print(f"Serving the lake's last day, {day}: {len(identities)} flights", flush=True)
    return paths


def _wait_idle(url: str, body: bytes, limit_s: float = 90.0) -> None:
    """Wait until the server answers one real request within 100 ms: a server still working off
    the previous step's backlog must not share the CPU with the next step."""
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
            if time.perf_counter() - began < 0.1:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)


def _load(url: str, bodies: Path, rate: float, duration: float, connections: int, folder: Path) -> dict:
    for server, body in _idle_probes:
        _wait_idle(server, body)
    out = folder / f"load-{uuid.uuid4().hex[:8]}.json"
    command = [sys.executable, "-m", "ml_assets.bench.load_generator", "--url", url, "--bodies", str(bodies),
               "--rate", str(rate), "--duration", str(duration), "--connections", str(connections), "--out", str(out)]  # fmt: skip
    load_before = os.getloadavg()[0]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, timeout=duration + 120)
    result = json.loads(out.read_text())
    result.pop("timeline", None)
    result["load_average_before"] = round(load_before, 2)
    return result


def sustained(result: dict) -> bool:
    """The server kept up with an open-loop rate: nothing failed, 95 % of the rate achieved, and a
    p99 within SUSTAINED_P99_MS (a queue that grows through the step ends far beyond it)."""
    p99 = result["latency_ms"].get("p99")
    enough = result["achieved_rate"] >= 0.95 * result["offered_rate"]
    return result["failed"] == 0 and enough and p99 is not None and p99 <= SUSTAINED_P99_MS


def step_seconds(rate: float, duration: float) -> float:
    """A step lasts `duration`, or long enough for MIN_REQUESTS requests at a low rate (a p99 of them)."""
    return max(duration, MIN_REQUESTS / rate) if rate else duration


def run(rates: list[float], duration: float = 3.0, runs: int = 1, workers: int = 2) -> dict:
    from ml_assets.models.registry import CHAMPION, ModelRegistry
    from ml_assets.resources.mlflow import local_mlflow
    from ml_assets.serving.redis_store import RedisOnlineStore

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or local_mlflow().prepared_uri()
    registry = ModelRegistry(tracking_uri, "flight_disruption")
    version = registry.version_for(CHAMPION)
    if version is None:
        raise RuntimeError(f"no champion in the registry at {tracking_uri}: run `make demo` first")
    figures: dict = {"champion_version": version, "rates": rates, "duration_s": duration, "runs": [], "workers": workers,
                     "cpu_count": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "data").mkdir()
        (scratch / "data" / "lake").symlink_to(data_dir() / "lake")
        bodies = _bodies(scratch, tracking_uri)
        unset = ("ML_ASSETS_API_TOKEN", "ML_ASSETS_READ_TOKEN", "ML_ASSETS_RATE_LIMIT", "ML_ASSETS_RATE_LIMIT_BURST", "ML_ASSETS_ONLINE_STORE")
        base_env = {k: v for k, v in os.environ.items() if k not in unset}
        base_env |= {"ML_ASSETS_DATA_DIR": str(scratch / "data"), "MLFLOW_TRACKING_URI": tracking_uri, "ML_ASSETS_FEED_CLOCK": "replay",
                     "PYTHONPATH": str(PROJECT_ROOT), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                     # mlflow starts `uvicorn` by name: this interpreter's
                     "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # fmt: skip
        redis_url = f"redis://127.0.0.1:6379/0?prefix=ml_assets_bench:{uuid.uuid4().hex[:8]}:"
        servers: dict[str, tuple[subprocess.Popen, str]] = {}

        def start(name: str, command: list[str], env: dict, ready_path: str) -> str:
            port = _free_port()
            process = subprocess.Popen(
                [*command, "--port", str(port)], cwd=PROJECT_ROOT, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base + ready_path, process, name)
            servers[name] = (process, base)
            return base

        mlflow_command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/flight_disruption/{version}",
                          "--env-manager", "local", "-h", "127.0.0.1", "--workers", "1"]  # fmt: skip

        def mlflow_steps(path: Path, rates: list[float], connections: int) -> list[dict]:
            """One `mlflow models serve` for a ladder of steps, stopped after the first it does not
            sustain (or the last): an overloaded one works off its backlog long after a step (its
            requests wait in a thread pool), which would weigh on the next step."""
            base = start("mlflow", mlflow_command, base_env, "/ping")
            results = []
            try:
                _load(base + "/invocations", path, 20, 2, 16, scratch)  # warm up
                for rate in rates:
                    results.append(_load(base + "/invocations", path, rate, step_seconds(rate, duration), connections, scratch))
                    if rate and not sustained(results[-1]):
                        break
                return results
            finally:
                _stop(servers.pop("mlflow")[0])

        try:
            serve = [sys.executable, "-m", "ml_assets.cli", "serve", "--warm-from-lake", "--workers", str(workers)]
            ours = start("ml-assets serve (SQLite store)", serve, base_env, "/v2/health/ready")
            ours_redis = start("ml-assets serve (Redis store)", serve, base_env | {"ML_ASSETS_ONLINE_STORE": redis_url},
                               "/v2/health/ready")  # fmt: skip
            targets = {
                "predict, SQLite store": (ours + "/v1/predict", bodies["predict"]),
                "predict, Redis store": (ours_redis + "/v1/predict", bodies["predict"]),
                "feature vector, ml-assets v2 infer": (ours + "/v2/models/flight_disruption/infer", bodies["v2"]),
            }
            batches = {
                "predict, SQLite store": (ours + "/v1/predict", bodies["predict_batch"]),
                "predict, Redis store": (ours_redis + "/v1/predict", bodies["predict_batch"]),
                "feature vectors, ml-assets v2 infer": (ours + "/v2/models/flight_disruption/infer", bodies["v2_batch"]),
            }
            for url, path in targets.values():  # warm our servers up; each step starts once they are idle
                _idle_probes.append((url, path.read_text().split("\n", 1)[0].encode()))
                _load(url, path, 50, 2, 16, scratch)
            for number in range(1, runs + 1):
                figures["runs"].append(_one_run(number, rates, duration, targets, batches, bodies, mlflow_steps, scratch))
        finally:
            _idle_probes.clear()
            for process, _ in servers.values():
                _stop(process)
            RedisOnlineStore(redis_url).delete_everything()
    figures["median"] = _medians(figures["runs"])
    figures["comparison"] = _comparison(figures["median"], figures["runs"], rates)
    print(f"\nMedians of {runs} run{'s' * (runs > 1)} (load average 1 min at each run's start: "
          f"{', '.join(str(r['load_average'][0]) for r in figures['runs'])}; {os.cpu_count()} CPUs)")  # fmt: skip
    print("\n".join(figures["comparison"]["lines"]))
    return figures


def _one_run(number, rates, duration, targets, batches, bodies, mlflow_steps, scratch) -> dict:
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"\nRun {number}: load average {load[0]} {load[1]} {load[2]}", flush=True)
    figures: dict = {"load_average": load, "steps": {}, "batch": {}, "mlflow_sustained_rate": None}
    header = f"  {'':<38}{'rate/s':>7}{'achieved':>10}{'p50':>9}{'p95':>9}{'p99':>9}{'failed':>8}"
    print(f"One request at a time per flight, {duration:g} s per step (latency from when each request was due, ms)\n"
          + header)  # fmt: skip
    name = "feature vector, mlflow models serve"
    for rate, result in zip(MLFLOW_RATES, mlflow_steps(bodies["mlflow"], list(MLFLOW_RATES), 64)):
        figures["steps"].setdefault(name, {})[str(rate)] = result
        print(_line(name, result), flush=True)
        if sustained(result):
            figures["mlflow_sustained_rate"] = rate
    for rate in sorted({*map(int, rates), *([figures["mlflow_sustained_rate"]] if figures["mlflow_sustained_rate"] else [])}):
        for name, (url, path) in targets.items():
            result = _load(url, path, rate, step_seconds(rate, duration), 64, scratch)
            figures["steps"].setdefault(name, {})[str(rate)] = result
            print(_line(name, result), flush=True)
    print(f"Batches of {BATCH}, closed loop ({BATCH_CONNECTIONS} connections): predictions/s")
    for name, (url, path) in [*batches.items(), ("feature vectors, mlflow models serve", (None, bodies["mlflow_batch"]))]:
        if url is None:
            (result,) = mlflow_steps(path, [0], BATCH_CONNECTIONS)
        else:
            result = _load(url, path, 0, duration, BATCH_CONNECTIONS, scratch)
        result["predictions_per_s"] = round(result["achieved_rate"] * BATCH, 1)
        figures["batch"][name] = result
        print(f"  {name:<38}{result['predictions_per_s']:>10.0f}  (p99 {result['latency_ms'].get('p99', 0):.1f} ms, "
              f"{result['failed']} failed)", flush=True)  # fmt: skip
    figures["cpu_us_per_prediction"] = _cpu_per_prediction(scratch / "data", bodies)
    cpu = figures["cpu_us_per_prediction"]
    print("CPU per prediction in process, µs (request path / with the prediction log): "
          + ", ".join(f"batch {b}: {v['request_path']:.0f} / {v['with_log']:.0f}" for b, v in cpu.items()), flush=True)
    return figures


def _cpu_per_prediction(data: Path, bodies: dict[str, Path]) -> dict:
    """The service's predict in this process on the SQLite store the server warmed: CPU µs per
    prediction on the request path (this thread) and with the log writer's work (this process)."""
    import threading

    from ml_assets.serving.schemas import predict_request_model
    from ml_assets.serving.service import ServingService, ServingSettings
    from ml_assets.serving.store import open_store

    request = predict_request_model(10_000)
    one = [request.model_validate_json(line).flights for line in bodies["predict"].read_text().splitlines()]
    batch = [request.model_validate_json(line).flights for line in bodies["predict_batch"].read_text().splitlines()]
    settings = replace(ServingSettings.from_env(), data_dir=data, store_url=None)
    service = ServingService(settings, store=open_store(None, data))
    service.start()
    figures = {}
    try:
        for size, flights in ((1, one), (BATCH, batch)):
            calls = CPU_CALLS[size]
            for i in range(min(calls, 50)):
                service.predict(flights[i % len(flights)])
            while service.log_writer.pending:
                threading.Event().wait(0.05)
            thread_began, process_began = time.thread_time(), time.process_time()
            for i in range(calls):
                service.predict(flights[i % len(flights)])
            thread_cpu = time.thread_time() - thread_began
            while service.log_writer.pending:
                threading.Event().wait(0.05)
            process_cpu = time.process_time() - process_began
            predictions = calls * size
            figures[str(size)] = {"request_path": round(thread_cpu / predictions * 1e6, 1),
                                  "with_log": round(process_cpu / predictions * 1e6, 1)}  # fmt: skip
    finally:
        service.stop()
    return figures


def _medians(runs: list[dict]) -> dict:
    """Each figure's median over the runs (steps, batches, CPU); the rates mlflow sustained as they were."""
    from statistics import median

    def merged(parts: list):
        if all(isinstance(p, dict) for p in parts):
            keys = [k for k in parts[0] if all(k in p for p in parts)]
            return {k: merged([p[k] for p in parts]) for k in keys}
        if all(isinstance(p, int | float) and not isinstance(p, bool) for p in parts):
            return round(median(parts), 3)
        return parts

    medians = merged([{k: r[k] for k in ("steps", "batch", "cpu_us_per_prediction")} for r in runs])
    medians["mlflow_sustained_rate"] = [r["mlflow_sustained_rate"] for r in runs]
    medians["load_average"] = [r["load_average"] for r in runs]
    return medians


def _line(name: str, result: dict) -> str:
    latency = result["latency_ms"]
    return (f"  {name:<38}{result['offered_rate'] or 'max':>7}{result['achieved_rate']:>10.1f}"
            f"{latency.get('p50', float('nan')):>9.2f}{latency.get('p95', float('nan')):>9.2f}"
            f"{latency.get('p99', float('nan')):>9.2f}{result['failed']:>8}")  # fmt: skip


def _p99(steps: dict, name: str, rate) -> float | None:
    return steps.get(name, {}).get(str(rate), {}).get("latency_ms", {}).get("p99")


def _comparison(medians: dict, runs: list[dict], rates: list[float]) -> dict:
    """The targets against the median figures, one line each."""
    from statistics import median

    steps, lines, checks = medians["steps"], [], {}
    for rate in map(int, rates):
        for store in ("SQLite", "Redis"):
            p99, target = _p99(steps, f"predict, {store} store", rate), TARGET_P99_MS.get(rate)
            if p99 is not None:
                met = target is not None and p99 <= target
                checks[f"p99_{store.lower()}_{rate}"] = {"p99_ms": p99, "target_ms": target, "met": met}
                lines.append(f"p99 at {rate}/s, one flight with feature assembly, {store}: {p99:.2f} ms"
                             + (f" (target <= {target:g}: {'met' if met else 'missed'})" if target else ""))  # fmt: skip
    for name, result in medians["batch"].items():
        if "ml-assets" in name or "predict" in name:
            per_s = result["predictions_per_s"]
            met = per_s >= TARGET_BATCH_PREDICTIONS_PER_S
            checks[f"batch_{name}"] = {"predictions_per_s": per_s, "met": met}
            lines.append(f"batch {BATCH}, {name}: {per_s:.0f} predictions/s (target >= {TARGET_BATCH_PREDICTIONS_PER_S}: "
                         f"{'met' if met else 'missed'})")  # fmt: skip
    ratios: dict[str, list[float]] = {}
    for run in runs:  # each run against mlflow at the highest rate it sustained in that run
        rate = run["mlflow_sustained_rate"]
        theirs = _p99(run["steps"], "feature vector, mlflow models serve", rate) if rate else None
        for name in ("predict, SQLite store", "predict, Redis store", "feature vector, ml-assets v2 infer"):
            ours = _p99(run["steps"], name, rate) if rate else None
            if theirs and ours:
                ratios.setdefault(name, []).append(theirs / ours)
    rates_used = ", ".join(str(run["mlflow_sustained_rate"]) for run in runs)
    for name, values in ratios.items():
        ratio = median(values)
        met = len(values) == len(runs) and ratio >= TARGET_MLFLOW_RATIO
        checks[f"mlflow_ratio_{name}"] = {"mlflow_sustained_rates": rates_used, "ratios": [round(v, 1) for v in values],
                                          "median": round(ratio, 1), "met": met}  # fmt: skip
        lines.append(f"mlflow p99 over {name} p99 at the highest rate mlflow sustained ({rates_used}/s): median "
                     f"{ratio:.1f}x (target >= {TARGET_MLFLOW_RATIO}x: {'met' if met else 'missed'})")  # fmt: skip
    if not ratios:
        lines.append(f"mlflow models serve sustained none of {', '.join(map(str, MLFLOW_RATES))} requests/s")
    return {"checks": checks, "lines": lines}
