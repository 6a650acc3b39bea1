"""`python -m ml_assets.bench.step_memory`: peak memory of every step, as a step pod runs it.

With the k8s_job_executor each step is a pod that loads the code location and executes that one
step. Here each step runs the same way in a fresh process (`execute_in_process` of the job with
only that asset selected, over the run's day range or week), and its peak resident memory
(`ru_maxrss`) is read when it ends. A process that only loads the code location gives the
baseline every pod pays.

Volume: flights are delivered through a landing zone (parquet, one file per day) at 1x and at
10x 2013's flights per day; the copies of a flight get their own flight numbers, so they are
distinct flights to every rule and feature. Run size: the data layers run over 365 days (one
single-run backfill, the local default) and over 31 and 92 days (ML_ASSETS_PARTITIONS_PER_RUN);
the days before a measured run are materialized first, as the previous runs of a backfill would
have. The weekly steps train on a 13-week window; at 10x the search and the epochs are cut (they
repeat work on the same data: memory does not grow with them).

The figures feed the pod sizes in ml_assets/k8s/step_pods.py (tested against
deploy/measurements/step-memory.json).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

DATA_STEPS = ["raw_planes", "planes", "raw_flights", "raw_weather", "flights", "weather", "flight_features"]
WEEKLY_STEPS = ["training_set", "lgbm_model", "torch_model", "model_evaluation", "champion_promotion"]
FLIGHT_NUMBER_STRIDE = 10_000  # 2013's flight numbers stay below it; copy k adds k * stride


@dataclass(frozen=True)
class Scenario:
    name: str
    factor: int
    first: date  # the measured run's days
    last: date
    warmup_days: int = 30  # days before `first` materialized beforehand (the features' history)
    week: str | None = None  # weekly steps measured on this week, if any
    weekly_config: dict | None = None


SCENARIOS = [
    Scenario("1x-365d", 1, date(2013, 1, 1), date(2013, 12, 31), warmup_days=0, week="2013-12-16"),
    Scenario("1x-31d", 1, date(2013, 3, 1), date(2013, 3, 31)),
    Scenario("10x-31d", 10, date(2013, 3, 1), date(2013, 3, 31)),
    Scenario(
        "10x-92d", 10, date(2013, 3, 1), date(2013, 5, 31), week="2013-05-20",
        weekly_config={"lgbm_model": {"n_trials": 2}, "torch_model": {"max_epochs": 1}},
    ),
]  # fmt: skip


def write_landing_zone(root: Path, first: date, last: date, factor: int) -> dict[date, int]:
    """The embedded data for first..last as daily parquet drops with `factor` copies of every
    flight (distinct flight numbers); weather and the dimensions as they are. Returns the flights
    written per day."""
    import polars as pl

    from ml_assets.dates import days_between
    from ml_assets.flights.contracts import RAW_COLUMNS
    from ml_assets.resources.sources import EmbeddedNycflights13

    source = EmbeddedNycflights13()
    flights = source.read_days("flights", first, last)
    copies = [
        flights.with_columns(
            flight=(pl.col("flight").cast(pl.Int64) + copy * FLIGHT_NUMBER_STRIDE).cast(pl.String)
        )
        for copy in range(factor)
    ]
    frames = {"flights": pl.concat(copies), "weather": source.read_days("weather", first, last)}
    for dataset, frame in frames.items():
        (root / dataset).mkdir(parents=True, exist_ok=True)
        for day in days_between(first, last):  # a day without rows is an empty file (2013-12-31 weather)
            rows = frame.filter(pl.col("date") == day).select(RAW_COLUMNS[dataset])
            rows.write_parquet(root / dataset / f"{day}.parquet")
    for dataset in ("planes", "airports", "airlines"):
        source.read_table(dataset).select(RAW_COLUMNS[dataset]).write_parquet(root / f"{dataset}.parquet")
    return dict(frames["flights"].group_by("date").len().iter_rows())


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the measurement needs Linux")


def run_step(job: str, asset: str | None, first: str, last: str, run_config: dict) -> dict:
    """In this (fresh) process: execute `asset` of `job` over first..last (a weekly job: the week
    `first`), or every asset of the job when `asset` is "all", or nothing when None; report the
    peak memory of the process."""
    import dagster as dg

    from ml_assets.definitions import defs
    from ml_assets.runs import range_tags

    began = time.perf_counter()
    success = True
    if asset is not None:
        job_def = defs.resolve_job_def(job)
        if job == "weekly_models":
            arguments = {"partition_key": first}
        elif job == "data_layers":
            arguments = {"tags": range_tags(date.fromisoformat(first), date.fromisoformat(last))}
        else:  # unpartitioned dimensions
            arguments = {}
        with dg.DagsterInstance.ephemeral() as instance:
            result = job_def.execute_in_process(
                instance=instance,
                asset_selection=None if asset == "all" else [dg.AssetKey(asset)],
                run_config=run_config,
                raise_on_error=False,
                **arguments,
            )
        success = result.success
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "seconds": round(time.perf_counter() - began, 1),
        "success": success,
    }


def _child(env: dict, job: str, asset: str | None, first: date, last: date, run_config: dict) -> dict:
    arguments = json.dumps([job, asset, first.isoformat(), last.isoformat(), run_config])
    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.bench.step_memory", "--child", arguments],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{job}/{asset} {first}..{last} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if not report["success"]:
        raise RuntimeError(f"{job}/{asset} {first}..{last}: the run failed:\n{done.stderr[-3000:]}")
    return report


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def measure(scenario: Scenario, scratch: Path) -> dict:
    """Peak memory of each step of `scenario` (and of the bare code location), in fresh processes."""
    folder = scratch / scenario.name
    warmup_first = scenario.first - timedelta(days=scenario.warmup_days)
    flights_by_day = write_landing_zone(folder / "landing", warmup_first, scenario.last, scenario.factor)
    env = os.environ | {
        "ML_ASSETS_ENV": "local",
        "ML_ASSETS_DATA_DIR": str(folder / "data"),
        "ML_ASSETS_LANDING_DIR": str(folder / "landing"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ML_ASSETS_PARTITIONS_PER_RUN", None)
    baseline = _child(env, "data_layers", None, scenario.first, scenario.last, QUIET)
    if scenario.warmup_days:
        _child(env, "dimensions", "all", warmup_first, warmup_first, QUIET)
        _child(env, "data_layers", "all", warmup_first, scenario.first - timedelta(days=1), QUIET)
    steps = {}

    def step(job: str, asset: str, first: date, last: date, run_config: dict) -> None:
        steps[asset] = report = _child(env, job, asset, first, last, run_config)
        print(f"  {scenario.name:<9} {asset:<18} {_mib(report['peak_rss_bytes']):>7.0f} MiB {report['seconds']:>7.1f} s", flush=True)

    for asset in DATA_STEPS:
        job = "dimensions" if asset in ("raw_planes", "planes") else "data_layers"
        step(job, asset, scenario.first, scenario.last, QUIET)
    if scenario.week:
        week = date.fromisoformat(scenario.week)
        config = {**QUIET, "ops": {a: {"config": c} for a, c in (scenario.weekly_config or {}).items()}}
        for asset in WEEKLY_STEPS:
            step("weekly_models", asset, week, week, config)
    return {
        "factor": scenario.factor,
        "days_per_run": (scenario.last - scenario.first).days + 1,
        "range": f"{scenario.first}..{scenario.last}",
        "flights_in_run": sum(n for day, n in flights_by_day.items() if scenario.first <= day <= scenario.last),
        "week": scenario.week,
        "weekly_config": scenario.weekly_config,
        "baseline_peak_rss_bytes": baseline["peak_rss_bytes"],
        "steps": steps,
    }


def _mib(value: int) -> float:
    return value / 2**20


def run(names: list[str], scratch: str | None) -> dict:
    chosen = [s for s in SCENARIOS if s.name in names]
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        figures = {}
        for scenario in chosen:
            print(f"{scenario.name}: {scenario.factor}x flights, run {scenario.first}..{scenario.last}", flush=True)
            figures[scenario.name] = measure(scenario, Path(folder))
    print(summary(figures))
    return figures


def summary(figures: dict) -> str:
    names = list(figures)
    steps = list(dict.fromkeys(step for f in figures.values() for step in f["steps"]))
    lines = ["\npeak memory per step, MiB (fresh process; baseline = loading the code location)",
             f"{'step':<20}" + "".join(f"{n:>10}" for n in names)]  # fmt: skip
    lines.append(f"{'baseline':<20}" + "".join(f"{_mib(figures[n]['baseline_peak_rss_bytes']):>10.0f}" for n in names))
    for step in steps:
        cells = [figures[n]["steps"].get(step) for n in names]
        lines.append(f"{step:<20}" + "".join(f"{_mib(c['peak_rss_bytes']):>10.0f}" if c else f"{'-':>10}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--scratch", help="folder for the temporary landing zones and lakes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job, asset, first, last, run_config = json.loads(args.child)
        print(json.dumps(run_step(job, asset, first, last, run_config)))
        return 0
    figures = run(args.scenarios.split(","), args.scratch)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
