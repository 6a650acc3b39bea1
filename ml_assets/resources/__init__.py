"""Resources and executor per environment, decided in one place from environment variables.

`ML_ASSETS_ENV` picks the column: `local` (default; a laptop, data and the SQLite MLflow store
under the project's data folder, steps in subprocesses of the run) or `k8s` (object storage, a
landing zone and the MLflow tracking server, given by environment variables set in the Helm
values and deploy/; no secret lives in code or values files; one pod per step).
"""

import os

import dagster as dg

from ml_assets.resources.mlflow import MlflowTracking, local_mlflow
from ml_assets.resources.notifier import Notifier
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.resources.sources import DataSource, EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import data_dir


def _local_source() -> DataSource:
    """The embedded dataset, unless ML_ASSETS_LANDING_DIR points at a landing zone."""
    landing = os.environ.get("ML_ASSETS_LANDING_DIR")
    return LandingZone(root=landing) if landing else EmbeddedNycflights13()


def _notifier() -> Notifier:
    """The alert webhook from ML_ASSETS_ALERT_WEBHOOK (read at run time), else the log."""
    configured = "ML_ASSETS_ALERT_WEBHOOK" in os.environ
    return Notifier(webhook_url=dg.EnvVar("ML_ASSETS_ALERT_WEBHOOK") if configured else None)


RESOURCES_BY_ENV = {
    "local": lambda: {
        "storage": DeltaStorage(base_uri=str(data_dir() / "lake")),
        "source": _local_source(),
        "mlflow": local_mlflow(),
        "notifier": _notifier(),
        "online_store": OnlineStoreResource(url=os.environ.get("ML_ASSETS_ONLINE_STORE") or None),
    },
    "k8s": lambda: {
        "storage": DeltaStorage(base_uri=dg.EnvVar("ML_ASSETS_LAKE_URI")),
        "source": LandingZone(root=dg.EnvVar("ML_ASSETS_LANDING_DIR")),  # a mounted volume
        "mlflow": MlflowTracking(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
        "notifier": _notifier(),
        "online_store": OnlineStoreResource(url=dg.EnvVar("ML_ASSETS_ONLINE_STORE")),
    },
}


def _k8s_executor(definitions: list) -> dg.ExecutorDefinition:
    from ml_assets.k8s.executor import step_pod_executor  # imports dagster_k8s: only on Kubernetes

    return step_pod_executor(definitions)


def _local_executor(definitions: list) -> dg.ExecutorDefinition:
    """Each step in a subprocess of the run (Dagster's default), but one training step at a time:
    two searches side by side on a laptop's cores each take twice as long and starve the daily chain."""
    from ml_assets.run_tags import TRAINING_STEP_TAG

    limits = [{"key": TRAINING_STEP_TAG, "limit": 1}]
    return dg.multi_or_in_process_executor.configured({"multiprocess": {"tag_concurrency_limits": limits}})


EXECUTOR_BY_ENV = {
    "local": _local_executor,
    "k8s": _k8s_executor,  # one pod per step, sized per asset (ml_assets/k8s/step_pods.py)
}


def _env(env: str | None) -> str:
    env = env or os.environ.get("ML_ASSETS_ENV", "local")
    if env not in RESOURCES_BY_ENV:
        raise ValueError(f"ML_ASSETS_ENV={env!r}: expected one of {sorted(RESOURCES_BY_ENV)}")
    return env


def resources_for_env(env: str | None = None) -> dict:
    return RESOURCES_BY_ENV[_env(env)]()


def executor_for_env(definitions: list, env: str | None = None) -> dg.ExecutorDefinition | None:
    """The executor for the asset and check `definitions` of the code location (None: Dagster's)."""
    return EXECUTOR_BY_ENV[_env(env)](definitions)
