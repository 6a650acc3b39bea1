"""The one scoring path: a registry alias or version → the learner loaded from its native files.

Batch predictions, the online service and the evaluation all load models here. The learner's own
files (LightGBM's text model, torch weights only) are read from the registered version's
`model_folder` artifact by `pyfunc.load_model_folder`: nothing is unpickled, and the loaded model
scores polars frames (or, in the service, arrays) directly instead of through the pyfunc wrapper.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

MODEL_FOLDER_ARTIFACT = "artifacts/model_folder"  # inside the logged pyfunc model


@dataclass(frozen=True)
class ScoringModel:
    """A registered version, loaded and ready to score."""

    model_name: str
    version: str
    kind: str
    model: object  # LgbmModel | TorchTabularModel

    @property
    def name(self) -> str:
        return f"{self.model_name} v{self.version}"

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """Probability of disruption per row of a `flight_features` frame (1-D float64)."""
        return np.asarray(self.model.predict_proba(frame), dtype=np.float64)

    def predict_vectors(self, categorical: Sequence[Sequence[str | None]], numeric: np.ndarray) -> np.ndarray:
        """The same probabilities without a frame (the online service's path): per row the raw
        values of CATEGORICAL_FEATURES and a (rows, NUMERIC_FEATURES) float64 matrix, NaN = missing."""
        codes = self.model.vocabulary.encode(categorical)
        return np.asarray(self.model.predict_encoded(codes, numeric), dtype=np.float64)


def load_scoring_model(registry, alias_or_version: str) -> ScoringModel:
    """The version behind an alias (`champion`) or a version number, loaded from its files.

    Raises LookupError when the alias points nowhere.
    """
    import mlflow.artifacts

    from ml_assets.models.pyfunc import load_model_folder

    version = alias_or_version if str(alias_or_version).isdigit() else registry.version_for(alias_or_version)
    if version is None:
        raise LookupError(f"{registry.model_name} has no version with alias {alias_or_version}")
    uri = registry.client.get_model_version_download_uri(registry.model_name, version)
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/{MODEL_FOLDER_ARTIFACT}", dst_path=folder
        )
        model = load_model_folder(Path(local))  # the learner reads its files into memory
    return ScoringModel(registry.model_name, str(version), model.KIND, model)
