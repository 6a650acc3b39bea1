"""The code file MLflow logs as the pyfunc model ("models from code"): the model is this file plus
its `model_folder` artifact, so nothing is pickled when a model is logged or loaded."""

from mlflow.models import set_model

from ml_assets.models.pyfunc import FlightRiskModel

set_model(FlightRiskModel())
