"""Sensors: the landing zone triggers the day's chain; monitoring results request retraining;
failed runs and failed checks alert.

The monitoring sensors read the asset check results recorded since their cursor, so a check that
runs in any job, from automation or by hand, is seen exactly once.
"""

import hashlib
import json
from datetime import date

import dagster as dg

from ml_assets.flights.contracts import DAILY_DATASETS
from ml_assets.partitions import daily_partitions, weekly_partitions
from ml_assets.resources.notifier import Notifier
from ml_assets.resources.sources import DataSource, LandingZone
from ml_assets.run_tags import LANDING_ZONE_RUN_TAGS, trigger_tags

Files = dict[str, tuple[date, int, int]]  # path → (day, modification time in ns, size)
# The steps whose failure the step itself alerted on (`step_failure_alert`), on the run.
ALERTED_STEPS_TAG = "ml_assets/alerted_steps"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hashes(files: Files, known: dict[str, list]) -> dict[str, str]:
    """sha256 of each file's bytes; a file whose time and size are unchanged since `known`
    (path → [mtime, size, sha256]) keeps its hash without being read again."""
    hashes = {}
    for path, (_, modified, size) in files.items():
        seen = known.get(path)
        hashes[path] = seen[2] if seen and seen[:2] == [modified, size] else file_sha256(path)
    return hashes


def day_digests(files_by_dataset: dict[str, Files], hashes: dict[str, str]) -> dict[date, str]:
    """Days with a delivery of every daily dataset → a digest of the set of their files'
    contents: a redelivery with new bytes changes it, a copy or a touched file does not."""
    contents: dict[date, dict[str, set[str]]] = {}
    for dataset, files in files_by_dataset.items():
        for path, (day, _, _) in files.items():
            contents.setdefault(day, {}).setdefault(dataset, set()).add(hashes[path])
    return {
        day: hashlib.sha256(json.dumps({d: sorted(h) for d, h in by_dataset.items()}, sort_keys=True).encode()).hexdigest()
        for day, by_dataset in sorted(contents.items())
        if set(by_dataset) == set(files_by_dataset)
    }


def chain_selection(job: dg.JobDefinition) -> tuple[list[dg.AssetKey], list[dg.AssetCheckKey]]:
    """The assets and checks a job runs, named: a run of a job by name records no selection, and
    automation then cannot tell that it executed a check with its inputs (it would run it again)."""
    assets = job.asset_layer.selected_asset_keys
    checks = [k for k in job.asset_layer.asset_graph.asset_check_keys if k.asset_key in assets]
    return sorted(assets), sorted(checks)


@dg.sensor(
    job_name="daily_chain",
    minimum_interval_seconds=5,  # a tick stats the files and hashes only new or changed ones
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone (ML_ASSETS_LANDING_DIR) and runs the day's whole chain, raw → "
        "processed → features → batch predictions → drift checks, in one run once every daily "
        "dataset has been delivered; a delivery with new content runs the day again, the same "
        "content (a copy, a touched file) never twice."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, source: DataSource):
    if not isinstance(source, LandingZone):
        return dg.SkipReason("the source is the embedded dataset: nothing lands")
    cursor = json.loads(context.cursor) if context.cursor else {}
    files = {dataset: source.daily_files(dataset) for dataset in DAILY_DATASETS}
    every_file = {path: stat for dataset_files in files.values() for path, stat in dataset_files.items()}
    hashes = content_hashes(every_file, cursor.get("files", {}))
    requested = cursor.get("days", {})
    partitions = set(daily_partitions.get_partition_keys())
    new = {
        day.isoformat(): digest
        for day, digest in day_digests(files, hashes).items()
        if day.isoformat() in partitions and requested.get(day.isoformat()) != digest
    }
    assets, checks = chain_selection(context.repository_def.get_job(landing_zone_sensor.job_name))
    requests = [
        # the run key also keeps Dagster from launching the same content twice; the explicit
        # selection lets automation see that this run executed the day's checks too
        dg.RunRequest(
            partition_key=day, run_key=f"{day}@{digest[:16]}", tags=LANDING_ZONE_RUN_TAGS,
            asset_selection=assets, asset_check_keys=checks,
        )
        for day, digest in new.items()
    ]  # fmt: skip
    seen = {path: [modified, size, hashes[path]] for path, (_, modified, size) in every_file.items()}
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"files": seen, "days": requested | new}))


# Check executions read per query; a tick pages back to the oldest one it still has to look at.
HISTORY_PAGE = 500


def _executions_back_to(storage, key, oldest: int) -> list:
    """A check's execution records, newest first, back to (at least) the record id `oldest`."""
    records, cursor = [], None
    while True:
        page = storage.get_asset_check_execution_history(key, limit=HISTORY_PAGE, cursor=cursor)
        records += page
        if len(page) < HISTORY_PAGE or page[-1].id <= oldest:
            return records
        cursor = page[-1].id


def new_check_results(context: dg.SensorEvaluationContext, seen: dict[str, dict]) -> list:
    """The check results (passed or failed) recorded since the last call, oldest first. A check's
    record is created when it is planned and completed later under the same id, so `seen` (check key
    → {"after": highest id seen, "pending": ids still planned}) keeps the planned ones to look at
    again; it is updated in place."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    storage = context.instance.event_log_storage
    found = []
    for key in context.repository_def.asset_graph.asset_check_keys:
        state = seen.get(key.to_user_string(), {"after": 0, "pending": []})
        pending = set(state["pending"])
        records = [
            r for r in _executions_back_to(storage, key, min([state["after"], *pending]))
            if r.id > state["after"] or r.id in pending
        ]
        found += [r for r in records if r.status in done and r.evaluation is not None]
        still_planned = {r.id for r in records if r.status == AssetCheckExecutionRecordStatus.PLANNED}
        seen[key.to_user_string()] = {
            "after": max([state["after"], *(r.id for r in records)]),
            "pending": sorted(still_planned),
        }
    return sorted(found, key=lambda record: record.id)


def _where(record) -> dict:
    return {"asset": record.key.asset_key.to_user_string(), "check": record.key.name, "partition": record.partition}


def _root_cause(error) -> str:
    """The innermost error's message: what the code raised, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _reason(evaluation) -> str:
    from ml_assets.monitoring.alerts import check_reason

    return check_reason(evaluation.metadata)


def _step_alerted(instance: dg.DagsterInstance, record) -> bool:
    """Whether the step that evaluated the check (its asset's) alerted on its own failure already
    (a failed blocking gate fails its step, whose hook alerts)."""
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    return bool(run) and record.key.asset_key.to_user_string() in run.tags.get(ALERTED_STEPS_TAG, "").split(",")


@dg.sensor(
    minimum_interval_seconds=10,  # a few indexed queries a tick
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (ML_ASSETS_ALERT_WEBHOOK, or the log) when an asset check starts failing: drift, "
    "performance degradation, quality gates, freshness. Once per check and partition until it passes again; "
    "a failure the check alerted on itself (the drift checks do) is not sent again.",
)
def check_failure_alerts(context: dg.SensorEvaluationContext, notifier: Notifier):
    from ml_assets.monitoring.alerts import ALERT_SENT, check_failure_alert

    cursor = json.loads(context.cursor) if context.cursor else None
    seen = (cursor or {}).get("seen", {})
    results = new_check_results(context, seen)
    if cursor is None:  # first evaluation: start from now, do not replay the history
        return dg.SensorResult(cursor=json.dumps({"seen": seen, "failing": []}))
    failing = set(cursor.get("failing", []))
    sent = 0
    for record in results:
        where, evaluation = _where(record), record.evaluation
        state = f"{where['asset']}:{where['check']}:{where['partition']}"
        if evaluation.passed:
            failing.discard(state)
        elif state not in failing:
            failing.add(state)
            sent_by_check = ALERT_SENT in evaluation.metadata and evaluation.metadata[ALERT_SENT].value
            if not sent_by_check and not _step_alerted(context.instance, record):  # the safety net
                sent += notifier.send(check_failure_alert(
                    where["asset"], where["check"], where["partition"], evaluation.severity.value, evaluation.metadata, record.run_id
                ))  # fmt: skip
    return dg.SensorResult(
        skip_reason=None if sent else "no check started failing",
        cursor=json.dumps({"seen": seen, "failing": sorted(failing)}),
    )


@dg.failure_hook(required_resource_keys={"notifier"})
def step_failure_alert(context: dg.HookContext) -> None:
    """Alert from the failed step itself (a blocking quality gate, a refused input, an error), at
    once, and note it on the run so `run_failure_alerts` does not send it again."""
    from ml_assets.monitoring.alerts import Alert

    run = context.instance.get_run_by_id(context.run_id)
    tags = run.tags if run else {}
    error = str(context.op_exception).strip() if context.op_exception else "the step failed"
    context.resources.notifier.send(Alert(
        "run_failure", f"step {context.step_key} of {context.job_name} failed", run_id=context.run_id,
        job=context.job_name, step=context.step_key, partition=_partition(tags), severity="ERROR", error=error[:1500],
    ))  # fmt: skip
    alerted = {s for s in tags.get(ALERTED_STEPS_TAG, "").split(",") if s} | {context.step_key}
    context.instance.add_run_tags(context.run_id, {ALERTED_STEPS_TAG: ",".join(sorted(alerted))})


def _partition(tags) -> str | None:
    return tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags else None
    )  # fmt: skip


@dg.run_failure_sensor(
    name="run_failure_alerts",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (ML_ASSETS_ALERT_WEBHOOK, or the log) with the run, job, failed steps, partition and error; "
    "the safety net for steps that did not alert themselves (the daily chain's do).",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, notifier: Notifier):
    from ml_assets.monitoring.alerts import Alert

    run = context.dagster_run
    steps = context.get_step_failure_events()
    alerted = set(run.tags.get(ALERTED_STEPS_TAG, "").split(","))
    if steps and {e.step_key for e in steps} <= alerted:
        return  # every failed step alerted on itself already
    # Dagster gives a failed run the error of its first failed step, or of what stopped it before
    # any step (a resource that did not start); a run the run monitoring failed has a message only
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    error = _root_cause(run_error) if run_error else context.failure_event.message
    partition = _partition(run.tags)
    notifier.send(Alert(
        "run_failure", f"run of {run.job_name} failed", run_id=run.run_id, job=run.job_name,
        step=", ".join(e.step_key for e in steps) or None, partition=partition, severity="ERROR",
        error=error[:1500],
    ))  # fmt: skip


def weeks_in_training(instance: dg.DagsterInstance) -> set[str]:
    """The weeks whose training_set a queued or running run materializes (an automation run, or a
    run of a job that trains)."""
    waiting_or_running = [
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    ]  # fmt: skip
    runs = instance.get_runs(dg.RunsFilter(statuses=waiting_or_running))
    training_set = dg.AssetKey("training_set")
    return {
        run.tags["dagster/partition"] for run in runs
        if "dagster/partition" in run.tags
        and (training_set in (run.asset_selection or ()) or run.job_name in ("weekly_models", "retrain_models"))
    }  # fmt: skip


@dg.sensor(
    job_name="retrain_models",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="An ERROR drift result or degraded live performance retrains the models of the latest "
    "complete week, once per week and not within the cooldown (thresholds in ml_assets.monitoring).",
)
def retraining_sensor(context: dg.SensorEvaluationContext, notifier: Notifier):
    from ml_assets.assets.training import DEFAULT_WINDOW_WEEKS
    from ml_assets.monitoring.alerts import Alert
    from ml_assets.monitoring.retraining import TRIGGERS, Signal, decide, latest_complete_week

    cursor = json.loads(context.cursor) if context.cursor else {}
    seen = cursor.get("seen", {})
    signals = [
        Signal(date.fromisoformat(r.partition), r.key.asset_key.to_user_string(), r.key.name, _reason(r.evaluation))
        for r in new_check_results(context, seen)
        if not r.evaluation.passed and r.evaluation.severity == dg.AssetCheckSeverity.ERROR and r.partition
        and (r.key.asset_key.to_user_string(), r.key.name) in TRIGGERS
    ]  # fmt: skip
    present = {date.fromisoformat(p) for p in context.instance.get_materialized_partitions(dg.AssetKey("flight_features"))}
    week = latest_complete_week(weekly_partitions.get_partition_keys(), present, DEFAULT_WINDOW_WEEKS) if signals else None
    requested = set(cursor.get("requested_weeks", []))
    last_day = cursor.get("last_request_day")
    busy = weeks_in_training(context.instance) if week else set()
    request, why = decide(signals, week, requested, date.fromisoformat(last_day) if last_day else None, busy)
    if week in busy:  # that run is the retraining: later signals of the week ask for nothing more
        requested.add(week)
    if request:
        requested.add(request.week)
        last_day = request.signal.day.isoformat()
        notifier.send(Alert("retraining", f"retraining the models of week {request.week}", partition=request.week, error=request.reason))
    new_cursor = json.dumps({"seen": seen, "requested_weeks": sorted(requested), "last_request_day": last_day})
    if not request:
        return dg.SensorResult(skip_reason=why, cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            partition_key=request.week, run_key=f"retrain:{request.week}",
            tags={**trigger_tags("monitoring"), "ml_assets/retrain_reason": request.reason},
        )],  # fmt: skip
        cursor=new_cursor,
    )
