"""Builders for the weekly model tests: a lake of synthetic features, a real local MLflow store, runs.

The synthetic features (planted signal, same schema as `flight_features`) cover 2013-03-01 for 60
days, about 130 flights a day: a 6-week window trains in a few seconds.
"""

from pathlib import Path
from urllib.parse import urlparse

import dagster as dg

from ml_assets.definitions import model_assets
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.storage import DeltaStorage
from ml_assets_tests.helpers import mlflow_store
from ml_assets_tests.models.conftest import synthetic_features

WEEK, NEXT_WEEK = "2013-04-15", "2013-04-22"
TRAINING_ASSETS = ["training_set", "lgbm_model", "torch_model"]
ALL_ASSETS = [*TRAINING_ASSETS, "model_evaluation", "champion_promotion"]
SMALL_CONFIG = {
    "training_set": {"window_weeks": 6, "min_rows": 2000, "min_positives": 50},
    "lgbm_model": {"n_trials": 2, "max_boost_rounds": 200, "early_stopping_rounds": 20},
    "torch_model": {"max_epochs": 4, "patience": 2, "num_threads": 1},
    "model_evaluation": {"min_rows": 200},
    "champion_promotion": {"margin": 0.005},
}


def synthetic_lake(folder: Path) -> DeltaStorage:
    storage = DeltaStorage(base_uri=str(folder / "lake"))
    frame = synthetic_features()
    storage.write_days("features/flight_features", frame, frame["date"].min(), frame["date"].max())
    return storage


def local_tracking(folder: Path) -> MlflowTracking:
    return MlflowTracking(
        tracking_uri=mlflow_store(folder / "mlflow" / "mlflow.db"),
        artifact_location=(folder / "mlflow" / "artifacts").as_uri(),
    )


def run_week(
    instance: dg.DagsterInstance,
    week: str,
    storage: DeltaStorage,
    mlflow: MlflowTracking,
    assets: list[str] = ALL_ASSETS,
    **config: dict,
) -> dg.ExecuteInProcessResult:
    """Materialize `assets` of the weekly model graph for one week, SMALL_CONFIG updated by `config`."""
    ops = {name: {"config": SMALL_CONFIG[name] | config.get(name, {})} for name in assets}
    return dg.materialize(
        model_assets,
        selection=assets,
        partition_key=week,
        instance=instance,
        resources={"storage": storage, "mlflow": mlflow},
        run_config={"ops": ops},
        raise_on_error=False,
    )


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Metadata values of each asset the run materialized."""
    return {
        event.asset_key.to_user_string(): {
            key: value.value for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def data_version_of(result: dg.ExecuteInProcessResult, asset: str) -> str:
    """The data version the run recorded for its materialization of `asset`."""
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.tags["dagster/data_version"]


def failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Step key → the error of each failed step (message, traceback and causes)."""
    return {
        event.step_key: event.event_specific_data.error.to_string()
        for event in result.all_events
        if event.is_step_failure
    }


def corrupt_version(mlflow: MlflowTracking, version: str) -> None:
    """Overwrite the learner's files inside a registered version's artifact."""
    registry = mlflow.registry()
    artifact = Path(urlparse(registry.client.get_model_version_download_uri(registry.model_name, version)).path)
    for path in (artifact / "artifacts" / "model_folder").iterdir():
        if path.name != "kind.json":
            path.write_text("corrupted")
