"""A few replayed days end to end, in-process: files land, the landing-zone sensor runs the day's
chain (data layers, predictions by the champion, drift checks) in one run, the automation's
requests run in turn (as the daemon would launch them), and a day later live performance."""

from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from ml_assets.definitions import defs
from ml_assets.replay import day_files
from ml_assets.resources.notifier import Notifier
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.resources.sources import LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import run_in_order
from ml_assets.sensors import landing_zone_sensor
from ml_assets_tests.helpers import run_days, write_landing_zone
from ml_assets_tests.training_runs import local_tracking

HISTORY = (date(2013, 1, 1), date(2013, 3, 10))
WEEK = "2013-03-04"  # trained on the 6 weeks before, evaluated on Mar 4..10: the first champion
REPLAYED = [date(2013, 3, 11), date(2013, 3, 12), date(2013, 3, 13)]
WEEKLY_CONFIG = {
    "training_set": {"config": {"window_weeks": 6}},
    "lgbm_model": {"config": {"n_trials": 2, "max_boost_rounds": 200, "early_stopping_rounds": 20}},
    "torch_model": {"config": {"max_epochs": 3, "patience": 1, "num_threads": 1}},
}


def run_automation(instance, resources, cursor, run_config) -> tuple[list[str], object]:
    """One automation tick, then its requests run (each partition's assets and checks in one run,
    as the daemon launches them); returns what ran."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    by_partition: dict[str | None, list] = {}
    for evaluated in result.results:
        for partition in evaluated.true_subset.expensively_compute_partition_keys():
            by_partition.setdefault(partition, []).append(evaluated.key)
    ran = []
    for partition, keys in sorted(by_partition.items(), key=lambda item: str(item[0])):
        assets = [k for k in keys if isinstance(k, dg.AssetKey)]
        selection = dg.AssetSelection.assets(*assets) | dg.AssetSelection.checks(*[k for k in keys if isinstance(k, dg.AssetCheckKey)])
        if not assets:
            selection = dg.AssetSelection.checks(*keys)
        materialized = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=selection, partition_key=partition, instance=instance,
            resources=resources, run_config={"ops": {k: v for k, v in run_config.items() if dg.AssetKey(k) in assets}},
            raise_on_error=False,
        )  # fmt: skip
        assert materialized.success, f"automation run of {keys} for {partition} failed"
        ran += [f"{k.to_user_string() if isinstance(k, dg.AssetKey) else k.name}@{partition}" for k in keys]
    return ran, result.cursor


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("replay")
    landing = write_landing_zone(folder / "landing", HISTORY[0], HISTORY[1])
    storage = DeltaStorage(base_uri=str(folder / "lake"))
    resources = {
        "storage": storage, "source": LandingZone(root=str(landing)), "mlflow": local_tracking(folder),
        "online_store": OnlineStoreResource(url=None),  # the serving assets' (no automation runs them here)
        "notifier": Notifier(),  # the drift checks alert through it (to the log)
    }  # fmt: skip
    ran_by_day, chain_by_day = {}, {}
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv("ML_ASSETS_DATA_DIR", str(folder))
        assert run_days(instance, *HISTORY, resources).success
        weekly = {"partition_key": WEEK, "resources": resources, "run_config": {"ops": WEEKLY_CONFIG}}
        assert all(r.success for r in run_in_order(instance, [("weekly_models", weekly)]))
        # the history's files were run above: the sensor and the automation start from here
        sensor_cursor = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)).cursor
        _, automation_cursor = run_automation(instance, resources, None, WEEKLY_CONFIG)
        for day in REPLAYED:
            for dataset, frame in day_files(day, []).items():
                frame.write_csv(landing / dataset / f"{day}.csv")
            context = dg.build_sensor_context(instance=instance, cursor=sensor_cursor, resources=resources, definitions=defs)
            sensed = landing_zone_sensor(context)
            sensor_cursor = sensed.cursor
            assert [r.partition_key for r in sensed.run_requests] == [str(day)]
            (chain,) = run_in_order(instance, [(landing_zone_sensor.job_name, {"resources": resources, "partition_key": str(day)})])
            assert chain.success
            chain_by_day[day] = {e.asset_key.to_user_string() for e in chain.get_asset_materialization_events()} | {
                e.check_name for e in chain.get_asset_check_evaluations()
            }  # fmt: skip
            ran = []
            for _ in range(3):  # a request can make the next one ready (predictions, then checks)
                new, automation_cursor = run_automation(instance, resources, automation_cursor, WEEKLY_CONFIG)
                ran += new
            ran_by_day[day] = ran
        yield ran_by_day, chain_by_day, storage


def test_each_replayed_day_is_scored_checked_in_the_sensors_run_and_measured_a_day_later(replayed):
    ran_by_day, chain_by_day, storage = replayed
    for number, day in enumerate(REPLAYED):
        assert {"raw_flights", "flights", "flight_features", "batch_predictions", "feature_drift", "score_drift"} <= chain_by_day[day]
        ran = ran_by_day[day]
        assert [r.split("@")[0] for r in ran] == (["live_performance"] if number else [])  # nothing else left to do
        if number:  # the previous day's labels are complete once this day has landed
            assert f"live_performance@{REPLAYED[number - 1]}" in ran
    predictions = storage.scan("serving/batch_predictions").collect()
    assert set(predictions["date"]) == set(REPLAYED)
    assert predictions.group_by("date").agg(pl.col("model_version").n_unique())["model_version"].to_list() == [1, 1, 1]
    drift = storage.scan("monitoring/feature_drift").collect()
    assert set(drift["date"]) == set(REPLAYED)


def test_nothing_runs_twice_and_no_week_trains_early(replayed):
    ran_by_day, _, _ = replayed
    every = [run for ran in ran_by_day.values() for run in ran]
    assert len(every) == len(set(every))
    assert not any(r.split("@")[0] in ("training_set", "lgbm_model", "torch_model") for r in every)  # Mar 17 not in
