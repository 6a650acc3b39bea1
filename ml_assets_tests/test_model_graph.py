"""The weekly model graph as declared: lineage, weekly partitions aligned with the daily ones, the
training window mapping, blocking quality checks, the MLflow resource per environment, and a code
location that loads without the heavy libraries."""

import os
import subprocess
import sys

import dagster as dg

from ml_assets.definitions import defs
from ml_assets.partitions import daily_partitions, weekly_partitions
from ml_assets.resources import resources_for_env
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.settings import PROJECT_ROOT

MODEL_LINEAGE = {
    "training_set": {"flight_features"},
    "lgbm_model": {"training_set"},
    "torch_model": {"training_set"},
    "model_evaluation": {"training_set", "lgbm_model", "torch_model", "flight_features"},
    "champion_promotion": {"model_evaluation"},
}


def daily_keys_for_week(asset: str, upstream: str, week: str) -> list[str]:
    mapping = defs.resolve_assets_def(asset).get_partition_mapping(dg.AssetKey(upstream))
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        weekly_partitions.subset_with_partition_keys([week]), weekly_partitions, daily_partitions
    )
    return sorted(result.partitions_subset.get_partition_keys())


def test_model_lineage_and_groups():
    graph = defs.resolve_asset_graph()
    lineage = {key: {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys} for key in MODEL_LINEAGE}

    assert lineage == MODEL_LINEAGE
    assert {k: graph.get(dg.AssetKey(k)).group_name for k in MODEL_LINEAGE} == {
        "training_set": "training", "lgbm_model": "training", "torch_model": "training",
        "model_evaluation": "evaluation", "champion_promotion": "evaluation",
    }  # fmt: skip
    assert all(graph.get(dg.AssetKey(k)).partitions_def == weekly_partitions for k in MODEL_LINEAGE)


def test_weeks_are_seven_whole_new_york_days_from_monday():
    keys = weekly_partitions.get_partition_keys()
    window = weekly_partitions.time_window_for_partition_key("2013-04-15")

    assert (keys[0], keys[-1], len(keys)) == ("2013-01-07", "2013-12-23", 51)
    assert weekly_partitions.timezone == daily_partitions.timezone == "America/New_York"
    assert (window.start.isoweekday(), (window.end - window.start).days) == (1, 7)


def test_the_training_set_reads_the_13_weeks_before_its_week_and_evaluation_the_week_itself():
    training = daily_keys_for_week("training_set", "flight_features", "2013-04-15")
    evaluation = daily_keys_for_week("model_evaluation", "flight_features", "2013-04-15")

    assert (len(training), training[0], training[-1]) == (91, "2013-01-14", "2013-04-14")
    assert (len(evaluation), evaluation[0], evaluation[-1]) == (7, "2013-04-15", "2013-04-21")


def test_the_model_quality_checks_are_blocking():
    specs = {spec.name: spec.blocking for spec in defs.resolve_assets_def("model_evaluation").check_specs}

    assert specs == dict.fromkeys(
        ["invariance_to_identifiers", "lower_visibility_raises_risk", "recent_origin_delays_raise_risk", "minimum_roc_auc"],
        True,
    )


def test_weekly_models_job_runs_the_model_graph_by_week():
    job = defs.resolve_job_def("weekly_models")

    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == set(MODEL_LINEAGE)
    assert job.partitions_def == weekly_partitions


def test_local_mlflow_is_a_sqlite_store_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_ASSETS_DATA_DIR", str(tmp_path))

    tracking = resources_for_env("local")["mlflow"]

    assert tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert tracking.artifact_location == (tmp_path / "mlflow" / "artifacts").as_uri()
    assert not (tmp_path / "mlflow").exists()  # created on first use, not when loading


def test_k8s_mlflow_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.ml.svc:5000")

    with dg.build_resources({"mlflow": resources_for_env("k8s")["mlflow"]}) as built:
        assert isinstance(built.mlflow, MlflowTracking)
        assert built.mlflow.tracking_uri == "http://mlflow.ml.svc:5000"
        assert built.mlflow.artifact_location is None  # the tracking server's


def test_loading_the_code_location_imports_no_heavy_library():
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    heavy = ["mlflow", "torch", "lightgbm", "sklearn", "optuna", "matplotlib"]
    code = f"import sys, ml_assets.definitions; print([m for m in {heavy!r} if m in sys.modules])"

    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert done.stdout.strip() == "[]", done.stderr
