"""The MLflow pyfunc wrapper shared by every learner, and saving/loading a model folder.

A model folder holds the learner's own files plus `kind.json` naming its class, so one wrapper
serves LightGBM and torch alike. The wrapper takes the pandas frame of
`dataset.model_input_frame` and returns the disruption probability per row.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml_assets.models.dataset import features_from_model_input


def _model_classes() -> dict:
    from ml_assets.models.lgbm import LgbmModel
    from ml_assets.models.torch_tabular import TorchTabularModel

    return {cls.KIND: cls for cls in (LgbmModel, TorchTabularModel)}


def save_model_folder(model, directory: Path) -> Path:
    model.save(directory)
    (directory / "kind.json").write_text(json.dumps({"kind": model.KIND}))
    return directory


def load_model_folder(directory: Path):
    kind = json.loads((directory / "kind.json").read_text())["kind"]
    return _model_classes()[kind].load(directory)


class FlightRiskModel(mlflow.pyfunc.PythonModel):
    """Serves a model folder logged as the `model_folder` artifact."""

    def load_context(self, context) -> None:
        self.model = load_model_folder(Path(context.artifacts["model_folder"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.model.predict_proba(features_from_model_input(model_input))
