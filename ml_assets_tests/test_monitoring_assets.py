"""The monitoring loop through Dagster on the synthetic lake with a real local MLflow store: batch
predictions by the champion, its drift reference computed once, drift checks quiet on stable days
and failing on a shifted day, live performance and its degradation check."""

from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from ml_assets.assets.monitoring import FEATURE_DRIFT_TABLE, feature_drift, score_drift
from ml_assets.assets.predictions import PREDICTIONS_TABLE
from ml_assets.definitions import defs
from ml_assets.flights.feature_spec import FEATURES, FEATURES_TABLE, LABEL
from ml_assets.models.registry import CHAMPION
from ml_assets.monitoring.reference import MONITORED_FEATURES
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.resources.sources import EmbeddedNycflights13
from ml_assets.resources.notifier import Notifier
from ml_assets.runs import range_tags
from ml_assets_tests.helpers import webhook_receiver
from ml_assets_tests.training_runs import WEEK, local_tracking, run_week, synthetic_lake

STABLE_DAYS = [date(2013, 4, 15) + timedelta(days=n) for n in range(5)]  # the week after the window
SHIFTED_DAY = date(2013, 4, 22)
CORRECTED_DAY = date(2013, 4, 10)  # in the champion's training window
FLIPPED_DAYS = [date(2013, 4, 23) + timedelta(days=n) for n in range(7)]  # labels turned over
LOOP = [
    dg.AssetSelection.assets("batch_predictions", "drift_reference", "live_performance"),
    dg.AssetSelection.checks(feature_drift, score_drift),
]


def run(instance, resources, selection, partition_key=None) -> dg.ExecuteInProcessResult:
    assets = [*defs.assets, *defs.asset_checks]
    return dg.materialize(assets, selection=selection, partition_key=partition_key, instance=instance,
                          resources=resources, raise_on_error=False)  # fmt: skip


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


class Loop:
    def __init__(self, folder, webhook_url: str):
        self.storage, self.mlflow = synthetic_lake(folder), local_tracking(folder)
        self.resources = {
            "storage": self.storage, "mlflow": self.mlflow, "source": EmbeddedNycflights13(),
            "notifier": Notifier(webhook_url=webhook_url),
            "online_store": OnlineStoreResource(url=None),  # required by the graph's serving assets, unused here
        }  # fmt: skip
        features = self.storage.scan(FEATURES_TABLE).collect()
        shifted = features.filter(pl.col("date") == SHIFTED_DAY).with_columns(
            pl.col("wx_visib") * 0.1, pl.col("origin_recent_mean_dep_delay") + 90, pl.col("sched_hour") + 6
        )  # a foggy, congested day with the schedule moved: far outside the window
        flipped = features.filter(pl.col("date").is_in(FLIPPED_DAYS)).with_columns(~pl.col(LABEL))
        self.storage.write_days(FEATURES_TABLE, shifted, SHIFTED_DAY, SHIFTED_DAY)
        self.storage.write_days(FEATURES_TABLE, flipped, FLIPPED_DAYS[0], FLIPPED_DAYS[-1])
        with dg.DagsterInstance.ephemeral() as instance:
            self.no_champion = run(instance, self.resources, "batch_predictions", str(STABLE_DAYS[0]))
            self.week = run_week(instance, WEEK, self.storage, self.mlflow)
            # a window day corrected after training: the reference reads the rows the champion learnt from
            corrected = features.filter(pl.col("date") == CORRECTED_DAY).with_columns(wx_visib=pl.lit(-1.0))
            self.storage.write_days(FEATURES_TABLE, corrected, CORRECTED_DAY, CORRECTED_DAY)
            self.reference = run(instance, self.resources, "drift_reference")
            self.reference_again = run(instance, self.resources, "drift_reference")
            selection = LOOP[0] - dg.AssetSelection.assets("drift_reference") | LOOP[1]
            self.days = {day: run(instance, self.resources, selection, str(day)) for day in [*STABLE_DAYS, SHIFTED_DAY, *FLIPPED_DAYS]}
            # both drift checks again over a range, as in a multi-day run of flight_features
            self.ranged = dg.materialize(
                [*defs.assets, *defs.asset_checks], selection=LOOP[1], instance=instance, resources=self.resources,
                tags=range_tags(SHIFTED_DAY, FLIPPED_DAYS[0]), raise_on_error=False,
            )  # fmt: skip
            self.ranged_records = {
                check: {r.partition: r.status.value for r in instance.event_log_storage.get_asset_check_execution_history(check.check_key, limit=10)
                        if r.run_id == self.ranged.run_id}
                for check in (feature_drift, score_drift)
            }  # fmt: skip


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Loop:
    folder = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as patch, webhook_receiver() as (url, received):
        patch.setenv("ML_ASSETS_DATA_DIR", str(folder))  # the drift reports
        loop = Loop(folder, url)
        loop.alerts = received
        yield loop


def test_without_a_champion_batch_predictions_skip_with_the_reason(loop):
    assert loop.no_champion.success
    assert materialized(loop.no_champion) == {}
    (observation,) = [e for e in loop.no_champion.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert "has no champion yet" in observation.asset_observation_data.asset_observation.metadata["skipped"].value


def test_the_champion_scores_every_flight_of_the_day_with_its_version(loop):
    champion = loop.mlflow.registry().version_for(CHAMPION)
    day = STABLE_DAYS[0]
    predictions = loop.storage.scan(PREDICTIONS_TABLE, day, day).collect()
    features = loop.storage.scan(FEATURES_TABLE, day, day).collect()

    assert sorted(predictions["flight_id"]) == sorted(features["flight_id"])
    assert set(predictions["model_version"]) == {champion}
    assert predictions["score"].is_between(0, 1).all() and predictions["score"].n_unique() > 10
    metadata = materialized(loop.days[day])["batch_predictions"]
    assert metadata["model_version"] == champion and metadata["scored_flights"] == features.height
    assert "| 0.0–0.1 |" in metadata["score_histogram"]


def test_the_reference_is_computed_once_per_version(loop):
    first = materialized(loop.reference)["drift_reference"]
    again = materialized(loop.reference_again)["drift_reference"]

    assert first["computed_now"] is True and again["computed_now"] is False
    assert first["model_version"] == again["model_version"] == loop.mlflow.registry().version_for(CHAMPION)
    assert first["training_window"].startswith("2013-03-04..2013-04-14")
    stored = loop.storage.scan("monitoring/drift_reference").collect()  # the lake's layout
    calibration = loop.storage.scan("monitoring/drift_calibration").collect()
    assert set(stored["model_version"]) == {first["model_version"]} and stored.height == first["reference_rows"]
    assert stored.height == 5_000  # a sample of the window's ~5,500 flights, the size the drift timings assume
    assert set(calibration["model_version"]) == {first["model_version"]}
    assert set(calibration["column"]) == {*MONITORED_FEATURES, "score"}
    assert stored["date"].min() >= date(2013, 3, 4) and stored["date"].max() <= date(2013, 4, 14)
    assert stored.filter(pl.col("date") == CORRECTED_DAY).height > 50 and (stored["wx_visib"] != -1.0).all()


def test_calendar_features_are_never_monitored_for_drift():
    # constant within a day: a single day would always drift on them
    calendar = {"weekday", "is_holiday", "days_to_holiday"}
    assert calendar <= set(FEATURES) and set(MONITORED_FEATURES) == set(FEATURES) - calendar


def test_drift_checks_stay_quiet_on_stable_days(loop):
    for day in STABLE_DAYS:
        results = checks(loop.days[day])
        assert results["feature_drift"].passed, (day, results["feature_drift"].metadata["drifted_columns"])
        assert results["score_drift"].passed, day


def test_a_shifted_day_fails_feature_drift_with_error_and_names_the_columns(loop):
    result = checks(loop.days[SHIFTED_DAY])["feature_drift"]

    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert {"wx_visib", "origin_recent_mean_dep_delay", "sched_hour"} <= set(result.metadata["drifted_columns"].value)
    assert "| wx_visib | **yes** |" in result.metadata["results"].value
    report = result.metadata["evidently_report_path"].value
    assert report.endswith(f"drift/{SHIFTED_DAY}/feature_drift.html") and "<html" in open(report).read()[:2000].lower()
    stored = loop.storage.scan(FEATURE_DRIFT_TABLE, SHIFTED_DAY, SHIFTED_DAY).collect()
    assert set(stored.filter(pl.col("drifted"))["column"]) == set(result.metadata["drifted_columns"].value)
    assert loop.days[SHIFTED_DAY].success  # drift never blocks the predictions


def test_live_performance_measures_the_day_and_flags_a_degraded_week(loop):
    stable = materialized(loop.days[STABLE_DAYS[-1]])["live_performance"]
    assert 0.6 < stable["roc_auc"] < 1.0 and stable["evaluated_roc_auc"] > 0.6
    stored = loop.storage.scan("monitoring/live_performance", STABLE_DAYS[-1], STABLE_DAYS[-1]).collect()
    assert stored.get_column("roc_auc").to_list() == [stable["roc_auc"]]
    assert checks(loop.days[STABLE_DAYS[-1]])["performance_degradation"].passed

    degraded = checks(loop.days[FLIPPED_DAYS[-1]])["performance_degradation"]
    assert not degraded.passed and degraded.severity == dg.AssetCheckSeverity.ERROR
    assert degraded.metadata["rolling_roc_auc"].value < 0.5
    assert "below the evaluation's" in degraded.metadata["reason"].value


def test_a_ranged_run_checks_each_day_on_its_own_partition(loop):
    assert loop.ranged.success
    days = (SHIFTED_DAY, FLIPPED_DAYS[0])
    by_day = {(e.check_name, e.partition): e for e in loop.ranged.get_asset_check_evaluations()}
    assert set(by_day) == {(c, str(d)) for c in ("feature_drift", "score_drift") for d in days}
    assert not by_day[("feature_drift", str(SHIFTED_DAY))].passed and by_day[("feature_drift", str(FLIPPED_DAYS[0]))].passed
    # recorded per partition, each against its day's materialization
    assert loop.ranged_records == {
        check: {str(d): "SUCCEEDED" if by_day[(check.check_key.name, str(d))].passed else "FAILED" for d in days}
        for check in (feature_drift, score_drift)
    }
    assert loop.ranged_records[feature_drift] == {str(SHIFTED_DAY): "FAILED", str(FLIPPED_DAYS[0]): "SUCCEEDED"}
    # tied to the day's own predictions (the synthetic lake's features were never materialized in Dagster)
    targets = {d: by_day[("score_drift", str(d))].target_materialization_data.run_id for d in days}
    assert targets == {d: loop.days[d].run_id for d in days}


def test_a_drift_failure_alerts_from_the_check_once_and_marks_the_result(loop):
    drift = [a for a in loop.alerts if a["check"] == "feature_drift"]
    assert [(a["partition"], a["severity"], a["run_id"]) for a in drift] == [(str(SHIFTED_DAY), "ERROR", loop.days[SHIFTED_DAY].run_id)]
    assert "wx_visib" in drift[0]["error"]
    assert checks(loop.days[SHIFTED_DAY])["feature_drift"].metadata["alert_sent"].value is True
    ranged = {(e.check_name, e.partition): e for e in loop.ranged.get_asset_check_evaluations()}
    assert "alert_sent" not in ranged[("feature_drift", str(SHIFTED_DAY))].metadata  # failing still: no second alert
