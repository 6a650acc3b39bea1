"""The local instance's run queue (the dagster.yaml that `ensure_dagster_home` writes), judged by
Dagster's own queue daemon: one run of the weekly chain at a time, the daily chain beside it; and
within a run, one training step at a time (the local executor)."""

import uuid

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from ml_assets.definitions import defs
from ml_assets.run_tags import AUTOMATION_RUN_TAGS, TRAINING_STEP_TAG, WEEKLY_AUTOMATION_RUN_TAGS, WEEKLY_WORKLOAD
from ml_assets.runs import EARLIER_INSTANCE_CONFIGS, INSTANCE_CONFIG, ensure_dagster_home


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = ensure_dagster_home()
    with dg.DagsterInstance.from_config(home) as instance:
        yield instance


def queue(instance, job: str, tags: dict) -> str:
    """A run of `job` waiting in the queue, as a sensor or the UI submits one."""
    run_id = str(uuid.uuid4())
    location = RegisteredCodeLocationOrigin("ml_assets.definitions")
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job)
    instance.add_run(dg.DagsterRun(
        job_name=job, run_id=run_id, status=dg.DagsterRunStatus.QUEUED, tags=tags, remote_job_origin=origin
    ))  # fmt: skip
    return run_id


def dequeued(instance) -> set[str]:
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    return {run.run_id for run in daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)}  # noqa: SLF001


def test_the_queue_holds_a_second_training_run_apart_and_lets_the_daily_chain_through(instance):
    weekly = queue(instance, "weekly_models", WEEKLY_WORKLOAD | {"dagster/partition": "2013-10-07"})
    retrain = queue(instance, "retrain_models", WEEKLY_WORKLOAD | {"dagster/partition": "2013-10-14"})
    daily = queue(instance, "data_layers", AUTOMATION_RUN_TAGS)

    assert dequeued(instance) == {weekly, daily}  # the older of the two training runs only

    instance.handle_run_event(weekly, dg.DagsterEvent("PIPELINE_START", "weekly_models"))  # it runs
    assert instance.get_run_by_id(weekly).status == dg.DagsterRunStatus.STARTED
    assert retrain not in dequeued(instance)


def test_the_weekly_chain_carries_the_workload_tag_whatever_starts_it():
    assert defs.resolve_job_def("weekly_models").tags == WEEKLY_WORKLOAD
    assert defs.resolve_job_def("retrain_models").tags == WEEKLY_WORKLOAD
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["weekly_automation"].run_tags == WEEKLY_AUTOMATION_RUN_TAGS
    weekly_targets = sensors["weekly_automation"].asset_selection.resolve(defs.resolve_asset_graph())
    assert {k.to_user_string() for k in weekly_targets} == {
        "training_set", "lgbm_model", "torch_model", "model_evaluation", "champion_promotion",
    }  # fmt: skip
    daily_targets = sensors["automation"].asset_selection.resolve(defs.resolve_asset_graph())
    assert not daily_targets & weekly_targets


def test_one_training_step_at_a_time_in_a_run():
    executor = defs.resolve_job_def("weekly_models").executor_def
    config = executor.config_schema.resolve_config({}).value["config"]
    assert config["multiprocess"]["tag_concurrency_limits"] == [{"key": TRAINING_STEP_TAG, "limit": 1}]
    graph = defs.resolve_asset_graph()
    tagged = {k.to_user_string() for k in graph.get_all_asset_keys() if TRAINING_STEP_TAG in (graph.get(k).assets_def.op.tags or {})}
    assert tagged == {"lgbm_model", "torch_model"}


def test_an_earlier_project_config_is_replaced_and_one_of_your_own_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    config = tmp_path / "dagster.yaml"
    config.write_text(EARLIER_INSTANCE_CONFIGS[0])
    ensure_dagster_home()
    assert config.read_text() == INSTANCE_CONFIG
    config.write_text("telemetry:\n  enabled: false\n")
    ensure_dagster_home()
    assert config.read_text() == "telemetry:\n  enabled: false\n"
