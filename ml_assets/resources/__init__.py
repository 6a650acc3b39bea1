"""Resources per environment, decided in one place from environment variables.

`ML_ASSETS_ENV` picks the column: `local` (default; a laptop, data and the SQLite MLflow store
under the project's data folder) or `k8s` (object storage, a landing zone and the MLflow tracking
server, given by environment variables set in the Helm values; no secret lives in code or values
files).
"""

import os

import dagster as dg

from ml_assets.resources.mlflow import MlflowTracking, local_mlflow
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.resources.sources import DataSource, EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import data_dir


def _local_source() -> DataSource:
    """The embedded dataset, unless ML_ASSETS_LANDING_DIR points at a landing zone."""
    landing = os.environ.get("ML_ASSETS_LANDING_DIR")
    return LandingZone(root=landing) if landing else EmbeddedNycflights13()


RESOURCES_BY_ENV = {
    "local": lambda: {
        "storage": DeltaStorage(base_uri=str(data_dir() / "lake")),
        "source": _local_source(),
        "mlflow": local_mlflow(),
        "online_store": OnlineStoreResource(url=os.environ.get("ML_ASSETS_ONLINE_STORE") or None),
    },
    "k8s": lambda: {
        "storage": DeltaStorage(base_uri=dg.EnvVar("ML_ASSETS_LAKE_URI")),
        "source": LandingZone(root=dg.EnvVar("ML_ASSETS_LANDING_DIR")),  # a mounted volume
        "mlflow": MlflowTracking(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
        "online_store": OnlineStoreResource(url=dg.EnvVar("ML_ASSETS_ONLINE_STORE")),
    },
}


def resources_for_env(env: str | None = None) -> dict:
    env = env or os.environ.get("ML_ASSETS_ENV", "local")
    if env not in RESOURCES_BY_ENV:
        raise ValueError(f"ML_ASSETS_ENV={env!r}: expected one of {sorted(RESOURCES_BY_ENV)}")
    return RESOURCES_BY_ENV[env]()
