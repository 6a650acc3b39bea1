"""The serving assets: `online_features` pushes a real day's daily features to the online store
(and the lake); `served_predictions` moves the service's prediction log into the lake."""

import json
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from ml_assets.assets.serving import ONLINE_FEATURES, SERVED_PREDICTIONS, serving_assets
from ml_assets.definitions import defs
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.serving.daily_features import daily_rows_from_lake
from ml_assets.serving.prediction_log import SqlitePredictionLog
from ml_assets_tests.serving.conftest import PARITY_DAY


def test_the_serving_assets_are_daily_in_their_group_and_read_complete_days():
    graph = defs.resolve_asset_graph()
    for key in ("online_features", "served_predictions"):
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == "serving" and node.partitions_def is not None and node.freshness_policy is not None
    features = defs.resolve_assets_def("online_features")
    flights = features.get_partition_mapping(dg.AssetKey("flights"))
    assert (flights.start_offset, flights.end_offset) == (-29, -2)  # 28 history days, outcomes in
    assert {k.to_user_string() for k in features.dependency_keys} == {"flights", "planes", "airlines", "airports"}
    served = defs.resolve_assets_def("served_predictions")
    assert {k.to_user_string() for k in served.dependency_keys} == {"online_features"}


def test_online_features_pushes_the_days_rows_to_the_store_and_the_lake(real_lake, tmp_path):
    resource = OnlineStoreResource(data_dir=str(tmp_path))

    result = dg.materialize(
        serving_assets, selection=["online_features"], partition_key=str(PARITY_DAY),
        resources={"storage": real_lake, "online_store": resource},
    )  # fmt: skip

    assert result.success
    expected, _ = daily_rows_from_lake(real_lake, PARITY_DAY)
    store = resource.open_store()
    keys = list(expected)
    assert store.read_daily(PARITY_DAY, keys) == [expected[k] for k in keys]
    assert list(store.status().daily) == [PARITY_DAY]
    lake = real_lake.scan(ONLINE_FEATURES).collect()
    assert lake.height == len(expected) and set(lake.get_column("date")) == {PARITY_DAY}
    row = lake.filter(pl.col("key") == "calendar").row(0, named=True)
    assert json.loads(row["values"]) == expected["calendar"] and row["kind"] == "calendar"
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["rows"].value == len(expected) and metadata["entities_by_kind"].value["flight_number"] > 1000


def record(day: str, request_id: str, role: str = "champion") -> dict:
    return {
        "request_id": request_id, "served_at": "2026-01-05T10:00:00.123456+00:00", "date": day,
        "flight_key": f"{day}/AA3/JFK", "prediction_time": f"{day}T15:00:00+00:00", "model_version": "4",
        "role": role, "score": 0.25, "latency_ms": 1.5, "features": '{"carrier": "AA"}',
    }  # fmt: skip


def test_served_predictions_moves_a_day_of_the_log_into_the_lake(real_lake, tmp_path):
    resource = OnlineStoreResource(data_dir=str(tmp_path))
    log = resource.open_prediction_log()
    assert isinstance(log, SqlitePredictionLog)
    old = str(PARITY_DAY - timedelta(days=40))
    log.append([record(str(PARITY_DAY), "a"), record(str(PARITY_DAY), "b", "shadow"),
                record(str(PARITY_DAY + timedelta(days=1)), "c"), record(old, "d")])  # fmt: skip

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            serving_assets, selection=["served_predictions"], partition_key=str(PARITY_DAY),
            resources={"storage": real_lake, "online_store": resource},
        )  # fmt: skip

    first, again = run(), run()

    assert first.success and again.success
    table = real_lake.scan(SERVED_PREDICTIONS).collect().sort("request_id")
    assert table.get_column("request_id").to_list() == ["a", "b"]  # that day only, once after a re-run
    assert table.get_column("date").to_list() == [PARITY_DAY, PARITY_DAY]
    assert table.schema["served_at"] == pl.Datetime("us", "UTC") and table.get_column("role").to_list() == ["champion", "shadow"]
    assert log.read_day(date.fromisoformat(old)) == []  # older than the log keeps
    assert [r["request_id"] for r in log.read_day(PARITY_DAY + timedelta(days=1))] == ["c"]
    metadata = first.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["rows"].value == 2 and metadata["by_role_and_version"].value == {"champion v4": 1, "shadow v4": 1}


@pytest.mark.parametrize("env", ["local", "k8s"])
def test_both_environments_configure_the_online_store(monkeypatch, env):
    from ml_assets.resources import resources_for_env

    monkeypatch.setenv("ML_ASSETS_ONLINE_STORE", "redis://redis.serving:6379/0")
    monkeypatch.setenv("ML_ASSETS_LAKE_URI", "s3://lake")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    with dg.build_resources({"online_store": resources_for_env(env)["online_store"]}) as built:
        assert built.online_store.url == "redis://redis.serving:6379/0"
