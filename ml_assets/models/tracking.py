"""Log one training run to MLflow: params, metrics, feature list, data versions, tags and the model.

The model is logged as a pyfunc (`pyfunc.FlightRiskModel`) with its signature and an input
example. `pip_requirements` are given explicitly: inferring them costs about 10 s per model.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import polars as pl

from ml_assets.flights.feature_spec import FEATURES
from ml_assets.models.dataset import model_input_frame

MODEL_ARTIFACT_NAME = "model"
REQUIREMENTS_BY_KIND = {
    "lightgbm": ["lightgbm"],
    "torch_tabular": ["torch"],
}


class MlflowUnavailableError(RuntimeError):
    """The MLflow tracking server or registry cannot be reached; nothing was changed."""


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str


def mlflow_client(tracking_uri: str):
    """A client for `tracking_uri` (also the registry), after checking that it answers."""
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one log line, not a bar per file
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise MlflowUnavailableError(f"MLflow at {tracking_uri} is unreachable: {error}") from error
    return client


def pip_requirements(kind: str) -> list[str]:
    packages = ["mlflow", "numpy", "pandas", "polars", "pyarrow", *REQUIREMENTS_BY_KIND[kind]]
    return [f"{package}=={version(package).split('+')[0]}" for package in packages]


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """The id of the named experiment, created (with its artifact location) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def log_training_run(
    model,
    *,
    tracking_uri: str,
    experiment_name: str,
    sample_frame: pl.DataFrame,
    params: dict,
    metrics: dict[str, float],
    data_versions: dict[str, int],
    tags: dict[str, str],
    run_name: str | None = None,
    artifact_location: str | None = None,
    client=None,
) -> LoggedModel:
    """One MLflow run with everything needed to audit or retrain the model.

    `sample_frame`: a few feature rows for the input example and signature.
    `data_versions`: Delta table versions the model was trained on, e.g. {"features/flight_features": 12}.
    `tags`: e.g. the Dagster run id and partition key.
    `client`: an `MlflowClient` for `tracking_uri` already checked (else one is made and checked).
    """
    import mlflow
    from mlflow.models import infer_signature

    from ml_assets.models import pyfunc
    from ml_assets.models.pyfunc import save_model_folder

    client = client or mlflow_client(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    example = model_input_frame(sample_frame)
    signature = infer_signature(example, model.predict_proba(sample_frame))
    with mlflow.start_run(
        experiment_id=experiment_id(client, experiment_name, artifact_location), run_name=run_name
    ) as run:
        mlflow.set_tags({**tags, "model_kind": model.KIND})
        mlflow.log_params({**params, **{f"data_version.{table}": v for table, v in data_versions.items()}})
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"features": FEATURES, "data_versions": data_versions}, "features.json")
        with tempfile.TemporaryDirectory() as folder:
            model_folder = save_model_folder(model, Path(folder) / "model_folder")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT_NAME,
                python_model=str(Path(pyfunc.__file__).with_name("pyfunc_model.py")),
                artifacts={"model_folder": str(model_folder)},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(model.KIND),
            )
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri)
