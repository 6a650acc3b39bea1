"""Running the jobs in-process: the data layers for a day range (one run, or runs of at most
`ML_ASSETS_PARTITIONS_PER_RUN` days), and the weekly models for chosen weeks."""

import os
from datetime import date, timedelta

import dagster as dg

from ml_assets.run_tags import WEEKLY_WORKLOAD, WORKLOAD_TAG
from ml_assets.settings import PARTITIONS_PER_RUN, dagster_home

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


# The local instance: no telemetry; a laptop runs three runs at a time, the rest queue, and of
# those at most one of the weekly chain (its searches take the cores), so the daily chain always
# has its slots.
INSTANCE_CONFIG = f"""telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 3
    tag_concurrency_limits:
      - key: {WORKLOAD_TAG}
        value: {WEEKLY_WORKLOAD[WORKLOAD_TAG]}
        limit: 1
"""
# what earlier versions wrote: replaced, since nobody edited it (any other content is left alone)
EARLIER_INSTANCE_CONFIGS = ["telemetry:\n  enabled: false\nconcurrency:\n  runs:\n    max_concurrent_runs: 3\n"]


def ensure_dagster_home() -> str:
    """Point DAGSTER_HOME at the instance the UI reads (creating the project's own if unset), with
    the project's instance config unless the folder has a config of its own."""
    home = dagster_home().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() in EARLIER_INSTANCE_CONFIGS:
        config.write_text(INSTANCE_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def run_ranges(start: date, end: date, days_per_run: int | None) -> list[tuple[date, date]]:
    """start..end cut into consecutive ranges of at most `days_per_run` days (None: one range),
    oldest first: each run finds the days before it already materialized."""
    if days_per_run is None:
        return [(start, end)]
    ranges, first = [], start
    while first <= end:
        last = min(first + timedelta(days=days_per_run - 1), end)
        ranges.append((first, last))
        first = last + timedelta(days=1)
    return ranges


def run_in_order(
    instance: dg.DagsterInstance, runs: list[tuple[str, dict]], log_level: str = "INFO"
) -> list[dg.ExecuteInProcessResult]:
    """Execute (job name, `execute_in_process` arguments) one after the other in-process;
    stops after a failed run."""
    from ml_assets.definitions import defs

    results = []
    for job_name, arguments in runs:
        config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **arguments.get("run_config", {})}
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            run_config=config,
            raise_on_error=False,
            **{name: value for name, value in arguments.items() if name != "run_config"},
        )
        results.append(result)
        if not result.success:
            break
    return results


def run_data_layers(
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    resources: dict | None = None,
    log_level: str = "INFO",
    days_per_run: int | None = PARTITIONS_PER_RUN,
) -> list[dg.ExecuteInProcessResult]:
    """Run the `dimensions` job, then the `data_layers` job for start..end in one run (or in runs
    of at most `days_per_run` days, oldest first); stops after a failed run. `resources`
    overrides the environment's (the benchmark writes to a scratch lake)."""
    runs = [("dimensions", {"resources": resources})] + [
        ("data_layers", {"resources": resources, "tags": range_tags(first, last)})
        for first, last in run_ranges(start, end, days_per_run)
    ]
    return run_in_order(instance, runs, log_level)


def model_weeks(start: date, end: date, count: int, window_weeks: int) -> list[str]:
    """The last `count` weekly partitions (Monday keys) whose training window (`window_weeks`
    before the week) and evaluation week both lie within start..end, oldest first."""
    from ml_assets.partitions import weekly_partitions

    weeks = []
    for key in reversed(weekly_partitions.get_partition_keys()):
        monday = date.fromisoformat(key)
        if monday + timedelta(days=6) <= end and monday - timedelta(weeks=window_weeks) >= start:
            weeks.insert(0, key)
        if len(weeks) == count:
            break
    return weeks


def run_weekly_models(
    instance: dg.DagsterInstance, weeks: list[str], log_level: str = "INFO"
) -> list[dg.ExecuteInProcessResult]:
    """Run the `weekly_models` job for each week in order; stops after a failed run."""
    return run_in_order(instance, [("weekly_models", {"partition_key": week}) for week in weeks], log_level)
