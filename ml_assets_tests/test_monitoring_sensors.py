"""The monitoring sensors with `build_sensor_context` against a real instance: alerts through the
notifier (a webhook on a local HTTP server), retraining requests with cooldown and de-duplication."""

import json
from datetime import date, timedelta

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.partitions import daily_partitions
from ml_assets.monitoring.retraining import Signal, decide, latest_complete_week
from ml_assets.resources.notifier import Notifier
from ml_assets.sensors import check_failure_alerts, retraining_sensor, run_failure_alerts, step_failure_alert
from ml_assets_tests.helpers import record_run, webhook_receiver


@pytest.fixture
def webhook():
    """A webhook on 127.0.0.1 that records the JSON bodies posted to it."""
    with webhook_receiver() as (url, received):
        yield url, received


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


class Sensor:
    """Evaluations of one sensor, its cursor carried from tick to tick."""

    def __init__(self, sensor, instance, url: str):
        self.sensor, self.instance, self.cursor = sensor, instance, None
        self.resources = {"notifier": Notifier(webhook_url=url)}

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=defs, resources=self.resources
        )
        result = self.sensor(context)
        self.cursor = result.cursor
        return result


def alert_run_failure(instance, url: str, run) -> None:
    """Evaluate run_failure_alerts on the failure event the instance recorded for `run`."""
    (record,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=instance.get_run_by_id(run.run_id),
        resources={"notifier": Notifier(webhook_url=url)},
    ).for_run_failure()  # fmt: skip
    run_failure_alerts(context)


def test_the_notifier_posts_the_alert_as_json(webhook):
    from ml_assets.monitoring.alerts import Alert

    url, received = webhook
    alert = Alert("check_failure", "check feature_drift failed on flight_features", run_id="r1",
                  asset="flight_features", check="feature_drift", partition="2013-10-10", severity="ERROR",
                  error="['wx_visib']")  # fmt: skip

    assert Notifier(webhook_url=url).send(alert)
    (body,) = received
    assert body["partition"] == "2013-10-10" and body["check"] == "feature_drift" and body["run_id"] == "r1"
    assert body["text"].startswith("[ml_assets ERROR] check feature_drift failed on flight_features")
    assert "partition 2013-10-10" in body["text"] and "['wx_visib']" in body["text"]


def test_an_unreachable_webhook_is_logged_not_raised(caplog):
    from ml_assets.monitoring.alerts import Alert

    assert not Notifier(webhook_url="http://127.0.0.1:9/hook", timeout_s=1).send(Alert("run_failure", "boom"))
    assert "alert webhook failed" in caplog.text and "boom" in caplog.text


def test_a_check_alerts_once_when_it_starts_failing_and_again_after_it_recovered(instance, webhook):
    url, received = webhook
    sensor = Sensor(check_failure_alerts, instance, url)
    day = date(2013, 10, 10)
    record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]})
    sensor.tick()  # the first tick starts from now: history is not replayed
    assert received == []

    run_id = record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]})
    record_run(instance, ["flight_features"], [day + timedelta(days=1)], passing={"flight_features": ["feature_drift"]})
    sensor.tick()
    (alert,) = received
    assert (alert["asset"], alert["check"], alert["partition"], alert["run_id"]) == ("flight_features", "feature_drift", str(day), run_id)
    assert alert["error"] == f"feature_drift failed on {day}"

    record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]})
    sensor.tick()
    assert len(received) == 1  # still failing: no new alert

    record_run(instance, ["flight_features"], [day], passing={"flight_features": ["feature_drift"]})
    record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]})
    sensor.tick()
    assert len(received) == 2  # it recovered, then failed again

    record_run(instance, ["flight_features"], [day], passing={"flight_features": ["feature_drift"]})
    sensor.tick()
    sensor.tick()  # nothing new since: the results seen are not judged again
    assert len(received) == 2


def test_a_failed_step_of_the_daily_chain_alerts_at_once_and_the_sensor_does_not_repeat_it(instance, webhook):
    url, received = webhook

    gate = dg.AssetCheckSpec("quarantine_rate", asset="weather", blocking=True)

    @dg.asset(hooks={step_failure_alert}, check_specs=[gate])
    def weather():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=False, metadata={"reason": "41 % of the rows break in_range(0, 10)"})])

    checks = Sensor(check_failure_alerts, instance, url)
    checks.tick()
    result = dg.materialize([weather], instance=instance, resources={"notifier": Notifier(webhook_url=url)}, raise_on_error=False)
    (alert,) = received  # sent by the step, before the run had even finished
    assert (alert["kind"], alert["step"], alert["run_id"]) == ("run_failure", "weather", result.run_id)
    assert "blocking asset check failed" in alert["error"] and "quarantine_rate" in alert["error"]

    alert_run_failure(instance, url, result.dagster_run)
    checks.tick()
    assert len(received) == 1  # the safety nets see the step alerted: no second alert of the run nor the gate


def test_each_failed_step_of_a_partitioned_run_alerts_with_its_job_partition_and_error(instance, webhook):
    url, received = webhook
    daily = dg.DailyPartitionsDefinition(start_date="2013-10-01")

    @dg.asset(hooks={step_failure_alert}, partitions_def=daily)
    def weather():
        raise ValueError("visibility out of range " + "x" * 2000)

    @dg.asset(hooks={step_failure_alert}, partitions_def=daily)
    def flights():
        raise ValueError("rows cut off")

    result = dg.materialize(
        [weather, flights], instance=instance, partition_key="2013-10-10",
        resources={"notifier": Notifier(webhook_url=url)}, raise_on_error=False,
    )  # fmt: skip
    by_step = {alert["step"]: alert for alert in received}
    assert sorted(by_step) == ["flights", "weather"]
    alert = by_step["weather"]
    assert (alert["job"], alert["partition"], alert["severity"]) == ("__ephemeral_asset_job__", "2013-10-10", "ERROR")
    assert alert["text"].startswith("[ml_assets ERROR] step weather of __ephemeral_asset_job__ failed (job __ephemeral_asset_job__, run ")
    assert alert["error"].startswith("visibility out of range") and len(alert["error"]) == 1500
    assert instance.get_run_by_id(result.run_id).tags["ml_assets/alerted_steps"] == "flights,weather"

    alert_run_failure(instance, url, result.dagster_run)
    assert len(received) == 2  # every failed step alerted itself: the run's safety net sends nothing


def test_a_check_that_alerted_itself_is_not_alerted_again_by_the_sensor(instance, webhook):
    url, received = webhook
    sensor = Sensor(check_failure_alerts, instance, url)
    sensor.tick()
    day = date(2013, 10, 10)
    record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]}, metadata={"alert_sent": True})
    record_run(instance, ["batch_predictions"], [day], failing={"batch_predictions": ["score_drift"]})
    sensor.tick()
    assert [a["check"] for a in received] == ["score_drift"]


def alerts_after_two_checks_failed(instance, url: str) -> Sensor:
    """The alerting sensor past its first tick, then feature_drift and score_drift failing on one day."""
    sensor = Sensor(check_failure_alerts, instance, url)
    sensor.tick()
    day = date(2013, 10, 10)
    record_run(instance, ["flight_features"], [day], failing={"flight_features": ["feature_drift"]})
    record_run(instance, ["batch_predictions"], [day], failing={"batch_predictions": ["score_drift"]})
    return sensor


def test_the_alerts_of_one_tick_are_sent_oldest_first(instance, webhook):
    url, received = webhook
    sensor = alerts_after_two_checks_failed(instance, url)
    sensor.tick()
    assert [alert["check"] for alert in received] == ["feature_drift", "score_drift"]
    first = received[0]
    assert (first["kind"], first["severity"], first["asset"]) == ("check_failure", "ERROR", "flight_features")
    assert first["text"].startswith("[ml_assets ERROR] check feature_drift failed on flight_features (")


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"short_days": "| 2013-10-10 | 12 |", "breaches": "{}"}, "| 2013-10-10 | 12 |"),
        ({"breaches": "{'tailnum': 0.5}"}, "{'tailnum': 0.5}"),
        ({"rows": 12}, ""),
        ({"reason": "x" * 1500}, "x" * 1000),
    ],
)
def test_a_failed_check_alerts_with_the_first_of_its_explaining_metadata(instance, webhook, metadata, error):
    url, received = webhook
    sensor = Sensor(check_failure_alerts, instance, url)
    sensor.tick()
    record_run(instance, ["flight_features"], [date(2013, 10, 10)], failing={"flight_features": ["feature_drift"]},
               metadata=metadata)  # fmt: skip
    sensor.tick()
    (alert,) = received
    assert alert["check"] == "feature_drift" and (alert["error"] or "") == error


def test_a_cursor_without_failing_states_reads_as_nothing_failing(instance, webhook):
    """A cursor written before the failing states were kept (only `seen`) still works."""
    url, received = webhook
    sensor = Sensor(check_failure_alerts, instance, url)
    sensor.cursor = json.dumps({"seen": {}})
    record_run(instance, ["flight_features"], [date(2013, 10, 10)], failing={"flight_features": ["feature_drift"]})
    sensor.tick()
    assert [alert["check"] for alert in received] == ["feature_drift"]
    assert json.loads(sensor.cursor)["failing"] == ["flight_features:feature_drift:2013-10-10"]


@pytest.mark.parametrize(
    ("partition_tags", "partition"),
    [
        ({"dagster/partition": "2013-01-02"}, "2013-01-02"),
        ({"dagster/asset_partition_range_start": "2013-01-02", "dagster/asset_partition_range_end": "2013-01-04"},
         "2013-01-02..2013-01-04"),
        ({}, None),
    ],
)  # fmt: skip
def test_a_failed_run_alerts_with_its_job_step_partition_and_error(instance, webhook, partition_tags, partition):
    url, received = webhook

    steps = ["broken", "also_broken"]
    unreadable = {step: f"the {step} file of 2013-01-02 is unreadable: " + "x" * 2000 for step in steps}

    @dg.asset
    def broken():
        raise ValueError(unreadable["broken"])

    @dg.asset
    def also_broken():
        raise ValueError(unreadable["also_broken"])

    result = dg.materialize([broken, also_broken], instance=instance, tags=partition_tags, raise_on_error=False)
    alert_run_failure(instance, url, result.dagster_run)

    (alert,) = received
    assert (alert["kind"], alert["run_id"], alert["partition"]) == ("run_failure", result.run_id, partition)
    first, second = alert["step"].split(", ")
    assert {first, second} == {"also_broken", "broken"}
    assert alert["job"] == result.dagster_run.job_name and alert["severity"] == "ERROR"
    assert alert["text"].startswith(f"[ml_assets ERROR] run of {alert['job']} failed (")
    assert alert["error"] == f"ValueError: {unreadable[first]}"[:1500]  # the first step's own error, cut


def test_a_run_that_fails_before_any_step_alerts_with_the_cause(instance, webhook):
    url, received = webhook

    class Warehouse(dg.ConfigurableResource):
        def setup_for_execution(self, context):
            raise ConnectionError("the warehouse at 127.0.0.1:9 refused the connection")

    @dg.asset
    def needs_the_warehouse(warehouse: Warehouse):
        return 1

    result = dg.materialize(
        [needs_the_warehouse], instance=instance, resources={"warehouse": Warehouse()}, raise_on_error=False
    )
    alert_run_failure(instance, url, result.dagster_run)

    (alert,) = received
    assert alert["step"] is None
    assert alert["error"] == "ConnectionError: the warehouse at 127.0.0.1:9 refused the connection"


def test_a_run_failed_by_the_run_monitoring_alerts_with_its_message(instance, webhook):
    """The run monitoring fails a run whose worker is gone (an evicted pod) with a message only."""
    url, received = webhook

    @dg.asset
    def lost():
        return 1

    run = dg.materialize([lost], instance=instance).dagster_run
    instance.report_run_failed(run, "the run worker pod ml-assets-run-1 was evicted")
    alert_run_failure(instance, url, run)

    (alert,) = received
    assert alert["run_id"] == run.run_id and alert["step"] is None
    assert alert["error"] == "the run worker pod ml-assets-run-1 was evicted"


# --- retraining --------------------------------------------------------------------------------


def signal(day: date) -> Signal:
    return Signal(day, "flight_features", "feature_drift", "['wx_visib', 'wx_visib_delta_3h']")


def test_retraining_waits_for_the_cooldown_and_asks_once_per_week():
    first, why = decide([signal(date(2013, 10, 10))], "2013-10-07", set(), None)
    assert first is not None and first.week == "2013-10-07" and "feature_drift on flight_features 2013-10-10" in first.reason

    again, why = decide([signal(date(2013, 10, 11))], "2013-10-07", {"2013-10-07"}, date(2013, 10, 10))
    assert again is None and "already retrained" in why
    cooling, why = decide([signal(date(2013, 10, 12))], "2013-10-14", {"2013-10-07"}, date(2013, 10, 10))
    assert cooling is None and "cooldown" in why
    after, _ = decide([signal(date(2013, 10, 13))], "2013-10-14", {"2013-10-07"}, date(2013, 10, 10))
    assert after is not None and after.week == "2013-10-14"
    assert decide([], "2013-10-14", set(), None)[0] is None


def test_retraining_answers_the_newest_of_its_signals():
    days = [date(2013, 10, 11), date(2013, 10, 13), date(2013, 10, 12)]
    request, _ = decide([signal(day) for day in days], "2013-10-07", set(), None)
    assert request.signal.day == date(2013, 10, 13)


def test_a_retraining_reason_names_the_check_and_is_cut_at_500_characters():
    long = Signal(date(2013, 10, 10), "flight_features", "feature_drift", "x" * 600)
    request, _ = decide([long], "2013-10-07", set(), None)
    assert request.reason.startswith("feature_drift on flight_features 2013-10-10: xxx")
    assert len(request.reason) == 500


def test_the_training_window_is_exactly_the_weeks_before_the_monday():
    monday = date(2013, 10, 7)
    two_weeks = {monday - timedelta(days=n) for n in range(1, 15)}
    assert latest_complete_week([str(monday)], two_weeks, window_weeks=2) == str(monday)
    assert latest_complete_week([str(monday)], two_weeks - {monday - timedelta(days=14)}, window_weeks=2) is None


def test_every_retraining_trigger_is_a_check_of_the_code_location():
    from ml_assets.monitoring.retraining import TRIGGERS

    checks = {(key.asset_key.to_user_string(), key.name) for key in defs.resolve_asset_graph().asset_check_keys}
    assert TRIGGERS <= checks


def test_the_latest_complete_week_is_the_latest_whose_whole_window_is_present():
    weeks = ["2013-09-30", "2013-10-07", "2013-10-14"]
    present = {date(2013, 7, 1) + timedelta(days=n) for n in range(104)}  # Jul 1 .. Oct 12

    assert latest_complete_week(weeks, present, 13) == "2013-10-07"  # its window ends Sunday Oct 6
    assert latest_complete_week(weeks, present - {date(2013, 8, 1)}, 13) is None
    assert latest_complete_week(weeks, present | {date(2013, 10, 13)}, 13) == "2013-10-14"


def test_the_retraining_sensor_requests_the_week_once_with_the_reason_as_a_tag(instance, webhook):
    url, received = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], [date(2013, 7, 1) + timedelta(days=n) for n in range(102)])  # to Oct 10
    assert sensor.tick().run_requests == []

    drift_day = date(2013, 10, 10)
    record_run(instance, ["batch_predictions"], [drift_day], failing={"batch_predictions": ["score_drift"]})
    (request,) = sensor.tick().run_requests
    assert request.partition_key == "2013-10-07" and request.run_key == "retrain:2013-10-07"
    assert request.tags["ml_assets/retrain_reason"] == f"score_drift on batch_predictions {drift_day}: score_drift failed on {drift_day}"
    assert [a["kind"] for a in received] == ["retraining"]

    record_run(instance, ["live_performance"], [drift_day + timedelta(days=1)], failing={"live_performance": ["performance_degradation"]})
    record_run(instance, ["flight_features"], [drift_day + timedelta(days=1)], failing={"flight_features": ["rows_per_day"]})
    assert sensor.tick().run_requests == []  # the same week, and not a retraining signal


UP_TO_OCT_10 = [date(2013, 7, 1) + timedelta(days=n) for n in range(102)]


@pytest.mark.parametrize(
    ("checks", "severity"),
    [
        ({"passing": {"batch_predictions": ["score_drift"]}}, "ERROR"),
        ({"failing": {"batch_predictions": ["score_drift"]}}, "WARN"),
        ({"failing": {"flight_features": ["rows_per_day"]}}, "ERROR"),
    ],
    ids=["passed", "warned", "not-a-trigger"],
)
def test_only_a_failed_error_of_a_trigger_check_asks_for_retraining(instance, webhook, checks, severity):
    url, _ = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], UP_TO_OCT_10)
    record_run(instance, list(next(iter(checks.values()))), [date(2013, 10, 10)], severity=severity, **checks)
    assert sensor.tick().run_requests == []


def test_a_week_is_retrained_once_even_after_the_cooldown(instance, webhook):
    url, _ = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], UP_TO_OCT_10)
    record_run(instance, ["batch_predictions"], [date(2013, 10, 10)], failing={"batch_predictions": ["score_drift"]})
    (request,) = sensor.tick().run_requests
    assert request.partition_key == "2013-10-07"

    record_run(instance, ["batch_predictions"], [date(2013, 10, 20)], failing={"batch_predictions": ["score_drift"]})
    assert sensor.tick().run_requests == []  # 2013-10-07 is still the latest complete week


def test_the_sensor_waits_for_the_cooldown_between_requests_and_alerts_each(instance, webhook):
    url, received = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], UP_TO_OCT_10)
    record_run(instance, ["batch_predictions"], [date(2013, 10, 10)], failing={"batch_predictions": ["score_drift"]})
    (first,) = sensor.tick().run_requests
    assert (first.partition_key, first.tags["ml_assets/trigger"]) == ("2013-10-07", "monitoring")

    record_run(instance, ["flight_features"], [date(2013, 10, 11), date(2013, 10, 12), date(2013, 10, 13)])
    record_run(instance, ["batch_predictions"], [date(2013, 10, 12)], failing={"batch_predictions": ["score_drift"]})
    assert sensor.tick().run_requests == []  # two days after the last request: cooling down
    assert sensor.tick().run_requests == []  # and nothing new since
    record_run(instance, ["batch_predictions"], [date(2013, 10, 13)], failing={"batch_predictions": ["score_drift"]})
    (second,) = sensor.tick().run_requests
    assert second.partition_key == "2013-10-14"

    assert [(a["kind"], a["partition"]) for a in received] == [("retraining", "2013-10-07"), ("retraining", "2013-10-14")]
    assert received[0]["error"] == first.tags["ml_assets/retrain_reason"]
    assert received[0]["text"].startswith("[ml_assets retraining] retraining the models of week 2013-10-07 (")


def test_a_signal_seen_before_any_week_was_complete_is_not_acted_on_later(instance, webhook):
    url, _ = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    drift_day = date(2013, 10, 10)
    record_run(instance, ["batch_predictions"], [drift_day], failing={"batch_predictions": ["score_drift"]})
    assert sensor.tick().run_requests == []  # no week has its whole training window yet

    record_run(instance, ["flight_features"], UP_TO_OCT_10)
    assert sensor.tick().run_requests == []


def test_a_check_seen_while_still_planned_is_judged_once_it_completes(instance, webhook):
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
    from dagster._core.events import DagsterEvent, DagsterEventType

    url, received = webhook
    alerts, retraining = Sensor(check_failure_alerts, instance, url), Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], [date(2013, 7, 1) + timedelta(days=n) for n in range(102)])  # to Oct 10
    alerts.tick(), retraining.tick()
    day = date(2013, 10, 10)
    run_id = record_run(instance, ["flight_features"], [day])
    planned = AssetCheckEvaluationPlanned(
        asset_key=dg.AssetKey("flight_features"), check_name="feature_drift",
        partitions_subset=daily_partitions.subset_with_partition_keys([str(day)]).to_serializable_subset(),
    )  # fmt: skip
    event = DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, "__RUNLESS__", event_specific_data=planned)
    instance.report_dagster_event(event, run_id=run_id)
    assert alerts.tick().skip_reason and retraining.tick().run_requests == []  # still running

    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("flight_features"), check_name="feature_drift", passed=False, partition=str(day),
        severity=dg.AssetCheckSeverity.ERROR, metadata={"drifted_columns": ["sched_hour", "origin_hour_hist_flights"]},
    )  # fmt: skip
    event = DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION.value, "__RUNLESS__", event_specific_data=evaluation)
    instance.report_dagster_event(event, run_id=run_id)

    alerts.tick()
    assert [(a["check"], a["partition"]) for a in received] == [("feature_drift", str(day))]
    (request,) = retraining.tick().run_requests
    assert request.partition_key == "2013-10-07" and "sched_hour" in request.tags["ml_assets/retrain_reason"]


def running(instance, job_name: str, week: str, asset_selection=None) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=job_name, tags={"dagster/partition": week}, asset_selection=asset_selection,
                        status=dg.DagsterRunStatus.STARTED)  # fmt: skip
    return instance.add_run(run)


@pytest.mark.parametrize(
    ("job_name", "asset_selection"),
    [("__ASSET_JOB", frozenset({dg.AssetKey("training_set"), dg.AssetKey("lgbm_model")})), ("weekly_models", None),
     ("retrain_models", None)],  # fmt: skip
)
def test_a_week_already_being_trained_is_not_trained_twice(instance, webhook, job_name, asset_selection):
    url, received = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], [date(2013, 7, 1) + timedelta(days=n) for n in range(102)])  # to Oct 10
    sensor.tick()
    running(instance, "__ASSET_JOB", "2013-09-30", frozenset({dg.AssetKey("training_set")}))  # another week
    running(instance, "daily_monitoring", "2013-10-07")  # not a training run
    training = running(instance, job_name, "2013-10-07", asset_selection)

    record_run(instance, ["flight_features"], [date(2013, 10, 10)], failing={"flight_features": ["feature_drift"]})
    result = sensor.tick()
    assert result.run_requests == [] and "being trained" in result.skip_reason.skip_message and received == []

    instance.handle_run_event(training.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, job_name))
    record_run(instance, ["flight_features"], [date(2013, 10, 11)], failing={"flight_features": ["feature_drift"]})
    assert sensor.tick().run_requests == []  # that run was the week's retraining


def test_a_finished_training_run_or_a_run_that_does_not_train_does_not_hold_the_retraining(instance, webhook):
    url, _ = webhook
    sensor = Sensor(retraining_sensor, instance, url)
    record_run(instance, ["flight_features"], [date(2013, 7, 1) + timedelta(days=n) for n in range(102)])  # to Oct 10
    sensor.tick()
    running(instance, "daily_monitoring", "2013-10-07")  # runs now, trains nothing
    finished = running(instance, "weekly_models", "2013-10-07")
    instance.handle_run_event(finished.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, "weekly_models"))

    record_run(instance, ["flight_features"], [date(2013, 10, 10)], failing={"flight_features": ["feature_drift"]})
    assert [r.partition_key for r in sensor.tick().run_requests] == ["2013-10-07"]


def test_a_tick_whose_last_alert_could_not_be_delivered_still_reports_the_one_sent(instance, webhook):
    """The tick is not a skip when any alert went out, even if a later one failed to deliver."""
    url, received = webhook
    sensor = alerts_after_two_checks_failed(instance, url)
    delivered = []

    class FirstOnly(Notifier):
        def send(self, alert) -> bool:
            delivered.append(alert.check)
            return len(delivered) == 1

    sensor.resources = {"notifier": FirstOnly(webhook_url=url)}
    result = sensor.tick()
    assert delivered == ["feature_drift", "score_drift"]
    assert result.skip_reason is None


def test_more_check_results_in_one_tick_than_a_history_page_holds_are_all_alerted(instance, webhook, monkeypatch):
    """A backfill can record more results of one check between two ticks than one query returns:
    the sensor pages back to the last one it saw (a page of 2 here stands for 500)."""
    import ml_assets.sensors

    monkeypatch.setattr(ml_assets.sensors, "HISTORY_PAGE", 2)
    url, received = webhook
    sensor = Sensor(check_failure_alerts, instance, url)
    sensor.tick()
    days = [date(2013, 10, 10) + timedelta(days=n) for n in range(5)]
    record_run(instance, ["flight_features"], days, failing={"flight_features": ["feature_drift"]})
    sensor.tick()
    assert [alert["partition"] for alert in received] == [str(day) for day in days]
    sensor.tick()
    assert len(received) == 5


def test_paging_back_through_a_checks_history_returns_each_new_result_once(instance, monkeypatch):
    """Seven results of a check read in pages of 3 (standing for 500): none skipped, none repeated."""
    import ml_assets.sensors
    from ml_assets.sensors import new_check_results

    monkeypatch.setattr(ml_assets.sensors, "HISTORY_PAGE", 3)
    context, seen = dg.build_sensor_context(instance=instance, definitions=defs), {}
    assert new_check_results(context, seen) == []
    days = [date(2013, 10, 10) + timedelta(days=n) for n in range(7)]
    record_run(instance, ["flight_features"], days, failing={"flight_features": ["feature_drift"]})

    drift = [r for r in new_check_results(context, seen) if r.key.name == "feature_drift"]

    assert [r.partition for r in drift] == [str(day) for day in days]
    assert len({r.id for r in drift}) == 7
    assert new_check_results(context, seen) == []
