"""`ml-assets bench pipeline`: raw → features through Dagster against a bare polars script.

Both sides run the same transforms (ingest, validate with quarantine and quality gates, build
features) over the same days into fresh Delta lakes; Dagster runs them as one single-run
backfill against a SQLite instance like the UI's. Repetitions alternate the two sides and the
figures are medians, so machine noise hits both alike. Also measures how long the code
location takes to load, against a bare `import dagster`.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def bare_pipeline(lake: str, start: date, end: date) -> None:
    """The same transforms as the raw, processed and features assets, in one process."""
    import holidays

    from ml_assets.dates import days_between
    from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS
    from ml_assets.flights.features import (
        FLIGHT_DAYS_BEFORE,
        WEATHER_DAYS_BEFORE,
        build_flight_features,
    )
    from ml_assets.flights.quality_gates import QUALITY_GATES
    from ml_assets.flights.schemas import TABLES
    from ml_assets.quality.gates import evaluate_gates
    from ml_assets.quality.validation import validate_rows
    from ml_assets.resources.sources import EmbeddedNycflights13
    from ml_assets.resources.storage import DeltaStorage

    source, storage = EmbeddedNycflights13(), DeltaStorage(base_uri=lake)
    for dataset in DAILY_DATASETS + STATIC_DATASETS:
        days = (start, end) if dataset in DAILY_DATASETS else None
        raw = source.read_days(dataset, start, end) if days else source.read_table(dataset)
        storage.write(f"raw/{dataset}", raw, days)
    for dataset in DAILY_DATASETS + STATIC_DATASETS:
        rules, days = TABLES[dataset], (start, end) if dataset in DAILY_DATASETS else None
        raw = storage.scan(f"raw/{dataset}", *(days or ())).collect()
        result = validate_rows(raw, rules.schema, rules.key, rules.derive, keep=["date"] if days else [])
        storage.write(f"quarantine/{dataset}", result.quarantine, days)
        storage.write(f"processed/{dataset}", result.clean, days)
        evaluate_gates(
            result, rules.schema, rules.key, QUALITY_GATES[dataset], days_between(start, end) if days else None
        )
    flights = storage.scan(
        "processed/flights", start - timedelta(days=FLIGHT_DAYS_BEFORE), end
    ).collect()
    weather = storage.scan(
        "processed/weather", start - timedelta(days=WEATHER_DAYS_BEFORE), end
    ).collect()
    planes = storage.scan("processed/planes").collect()
    public_holidays = sorted(holidays.US(years=range(start.year - 1, end.year + 2)))
    features = build_flight_features(flights, weather, planes, public_holidays, start, end)
    storage.write_days("features/flight_features", features, start, end)


def dagster_pipeline(lake: str, instance_dir: str | None, start: date, end: date) -> int:
    """The data jobs for start..end against a SQLite instance in `instance_dir` (like the UI's),
    or an in-memory one when None; returns how many event-log entries the runs wrote."""
    import dagster as dg

    from ml_assets.resources.sources import EmbeddedNycflights13
    from ml_assets.resources.storage import DeltaStorage
    from ml_assets.runs import run_data_layers

    if instance_dir is None:
        instance = dg.DagsterInstance.ephemeral()
    else:
        Path(instance_dir).mkdir(parents=True, exist_ok=True)
        (Path(instance_dir) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = dg.DagsterInstance.local_temp(instance_dir)
    with instance:
        resources = {"storage": DeltaStorage(base_uri=lake), "source": EmbeddedNycflights13()}
        results = run_data_layers(instance, start, end, resources, log_level="WARNING")
        for result in results:
            if not result.success:
                raise RuntimeError(f"the Dagster run {result.run_id} failed")
        return sum(len(instance.all_logs(result.run_id)) for result in results)


def load_seconds(statement: str, repeat: int) -> float:
    """Median wall time of a fresh interpreter running `statement`."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(start: date, end: date, repeat: int) -> dict:
    days = (end - start).days + 1
    sides = {
        "bare polars": lambda scratch: bare_pipeline(f"{scratch}/lake", start, end),
        "dagster, SQLite instance": lambda scratch: dagster_pipeline(
            f"{scratch}/lake", f"{scratch}/instance", start, end
        ),
        "dagster, in-memory instance": lambda scratch: dagster_pipeline(
            f"{scratch}/lake", None, start, end
        ),
    }
    times: dict[str, list[float]] = {side: [] for side in sides}
    events = 0
    print(f"bench pipeline: raw → features, {days} days ({start}..{end}), {repeat} repetitions")
    with tempfile.TemporaryDirectory() as scratch:  # warm-up: imports and the source cache
        bare_pipeline(f"{scratch}/bare", start, start + timedelta(days=1))
        dagster_pipeline(f"{scratch}/lake", f"{scratch}/instance", start, start)
    for rep in range(repeat):
        for side, pipeline in sides.items():
            with tempfile.TemporaryDirectory() as scratch:
                began = time.perf_counter()
                events = pipeline(scratch) or events
                times[side].append(time.perf_counter() - began)
        print(f"  rep {rep + 1}: " + ", ".join(f"{s} {t[-1]:.2f} s" for s, t in times.items()))
    medians = {side: statistics.median(t) for side, t in times.items()}
    bare = medians["bare polars"]
    load = load_seconds("import ml_assets.definitions", repeat=5)
    baseline_load = load_seconds("import dagster", repeat=5)
    for side, median in medians.items():
        print(f"median {side + ':':<29}{median:6.2f} s   ratio to bare {median / bare:5.2f}")
    print(f"event-log entries per run set:     {events}  (planned + materialized per asset-day)")
    print("target: ratio <= 1.5 for the SQLite instance the UI uses")
    print(f"code location load: {load:.2f} s (target <= 2 s; bare `import dagster`: {baseline_load:.2f} s)")
    return {
        "days": days,
        "median_s": {side: round(m, 2) for side, m in medians.items()},
        "ratio_to_bare": {side: round(m / bare, 2) for side, m in medians.items()},
        "event_log_entries": events,
        "code_location_load_s": round(load, 2),
        "import_dagster_s": round(baseline_load, 2),
    }
