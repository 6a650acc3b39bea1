"""MLflow as a resource: the tracking store, the experiment and the registered model.

Locally the store is a SQLite file with file artifacts under `data_dir()/mlflow`; in Kubernetes
`tracking_uri` points at the MLflow tracking server (which holds the artifact location itself).
mlflow is imported only when a method is called, so the code location loads fast.
"""

from pathlib import Path
from urllib.parse import urlparse

import dagster as dg

from ml_assets.settings import data_dir


class MlflowTracking(dg.ConfigurableResource):
    tracking_uri: str
    experiment_name: str = "flight_disruption"
    registered_model: str = "flight_disruption"
    artifact_location: str | None = None  # None: the tracking server's default

    def prepared_uri(self) -> str:
        """The tracking URI, with the folder of a local SQLite store created first."""
        parsed = urlparse(self.tracking_uri)
        if parsed.scheme == "sqlite":
            Path(parsed.path).parent.mkdir(parents=True, exist_ok=True)
        return self.tracking_uri

    def registry(self):
        """The model registry, once MLflow has answered (else `MlflowUnavailableError`)."""
        from ml_assets.models.registry import ModelRegistry

        registry = ModelRegistry(self.prepared_uri(), self.registered_model)
        registry.client  # connecting probes the store
        return registry


def local_mlflow() -> MlflowTracking:
    folder = data_dir() / "mlflow"
    return MlflowTracking(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=(folder / "artifacts").as_uri(),
    )
