"""Training layer (weekly): `training_set`, `lgbm_model` and `torch_model`.

A week's models are trained on the daily `flight_features` of the weeks before it. `training_set`
pins that window (the feature table's Delta version and the days) in a manifest row, so both
models, their evaluation and any later retraining read exactly the same rows (time travel).
Each model is logged to MLflow (one run per partition), registered and made the `challenger`.
"""

import os
from datetime import timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from ml_assets.assets.common import data_version, day_range
from ml_assets.assets.weekly import WEEK_COLUMN, WEEKLY, read_days_pinned, read_week_rows
from ml_assets.models.lgbm import LgbmSearchConfig
from ml_assets.models.torch_tabular import TorchTrainConfig
from ml_assets.flights.feature_spec import FEATURES_TABLE
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.storage import DeltaStorage
from ml_assets.run_tags import TRAINING_STEP_TAG

TRAINING_SETS = "training/training_sets"
DEFAULT_WINDOW_WEEKS = 13

# The CPUs a training step pod asks for (ml_assets/k8s/step_pods.py), and its threads there.
POD_TRAINING_THREADS = 2


def training_threads() -> int:
    """Training threads: ML_ASSETS_TRAINING_THREADS, else POD_TRAINING_THREADS or, on a machine with
    fewer cores, all but one, so the daily chain keeps a core while a week trains (one training
    step runs at a time locally). A fixed count per machine keeps LightGBM reproducible."""
    text = os.environ.get("ML_ASSETS_TRAINING_THREADS")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"ML_ASSETS_TRAINING_THREADS={text!r}: expected a whole number of threads >= 1")
        return int(text)
    return max(1, min(POD_TRAINING_THREADS, (os.cpu_count() or 1) - 1))


TRAINING_THREADS = training_threads()
# the local executor runs the steps tagged so one at a time (ml_assets/resources/__init__.py)
TRAINING_STEP_TAGS = {TRAINING_STEP_TAG: "cpu"}

# The network's step pod goes to a GPU node (with the k8s_job_executor each step is its own pod).
# LightGBM stays on CPU nodes: its OpenCL GPU trainer ran the same search 2.2x slower on an H200
# than on 16 CPU threads, with the same ROC AUC (`python -m ml_assets.bench.gpu`), so a GPU node
# would only be wasted on it.
GPU_PLACEMENT_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }
}


class TrainingWindowConfig(dg.Config):
    window_weeks: int = Field(
        DEFAULT_WINDOW_WEEKS,
        ge=1,
        description="Weeks of daily features before the partition's week to train on (lineage "
        f"shows the default, {DEFAULT_WINDOW_WEEKS}).",
    )
    min_rows: int = Field(5000, description="Fewer rows than this fail the partition.")
    min_positives: int = Field(200, description="Fewer disrupted (or on-time) flights fail it.")


@dg.asset(
    group_name="training",
    deps=[
        dg.AssetDep(
            "flight_features",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-DEFAULT_WINDOW_WEEKS, end_offset=-1,
                allow_nonexistent_upstream_partitions=True,
            ),
        )
    ],  # fmt: skip
    kinds={"polars", "deltalake"},
    code_version="1",
    description=(
        "The training window of a week: the daily flight features of the weeks before it, pinned "
        "to the feature table's Delta version (a manifest row per week in training/training_sets)."
    ),
    **WEEKLY,
)
def training_set(context: dg.AssetExecutionContext, config: TrainingWindowConfig, storage: DeltaStorage):
    from ml_assets.flights.feature_spec import LABEL
    from ml_assets.models.dataset import InsufficientTrainingDataError, require_training_rows

    week_start, _ = day_range(context)
    first, last = week_start - timedelta(weeks=config.window_weeks), week_start - timedelta(days=1)
    frame, features_version = read_days_pinned(storage, FEATURES_TABLE, first, last)
    try:
        require_training_rows(frame, config.min_rows, config.min_positives)
    except InsufficientTrainingDataError as error:
        raise dg.Failure(
            f"training window {first}..{last} of week {context.partition_key}: {error}",
            metadata={"rows": frame.height, "window": f"{first}..{last}"},
        ) from error

    manifest = pl.DataFrame(
        {
            "table": [FEATURES_TABLE],
            "table_version": [features_version],
            "first_day": [first],
            "last_day": [last],
            "rows": [frame.height],
            "disruption_rate": [float(frame[LABEL].mean())],
        }
    )
    version = storage.write_key(TRAINING_SETS, manifest, WEEK_COLUMN, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "window": f"{first}..{last}",
            "days": frame["date"].n_unique(),
            "disruption_rate": float(frame[LABEL].mean()),
            "flight_features_version": features_version,
            "dagster/uri": storage.table_uri(TRAINING_SETS),
        },
        data_version=data_version(TRAINING_SETS, version),
    )


def load_training_window(storage: DeltaStorage, week: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """The week's training rows exactly as pinned by `training_set`, and the Delta version read."""
    (manifest,) = read_week_rows(storage, TRAINING_SETS, week, "training_set").iter_rows(named=True)
    frame = storage.scan(
        manifest["table"], manifest["first_day"], manifest["last_day"], version=manifest["table_version"]
    ).collect()
    return frame, {manifest["table"]: manifest["table_version"]}


def log_and_register_challenger(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    registry,
    model,
    frame: pl.DataFrame,
    params: dict,
    data_versions: dict[str, int],
) -> dg.MaterializeResult:
    """One MLflow run for this partition, a new registered version, and the `challenger` alias."""
    from ml_assets.models.tracking import log_training_run

    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_partition": context.partition_key,
        "dagster_asset": context.asset_key.to_user_string(),
    }
    logged = log_training_run(
        model,
        client=registry.client,
        tracking_uri=registry.tracking_uri,
        experiment_name=mlflow.experiment_name,
        sample_frame=frame.head(5),
        params={**params, "training_days": f"{frame['date'].min()}..{frame['date'].max()}"},
        metrics=model.validation_metrics,
        data_versions=data_versions,
        tags=tags,
        run_name=f"{model.KIND}-{context.partition_key}",
        artifact_location=mlflow.artifact_location,
    )
    version = registry.register_version(logged.model_uri, logged.run_id, {**tags, "model_kind": model.KIND})
    registry.set_challenger(
        version, f"{model.KIND} trained for week {context.partition_key}", context.run.run_id,
        moved_by=f"dagster asset {context.asset_key.to_user_string()}",
    )  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "registered_model": registry.model_name,
            "model_version": version,
            "mlflow_run_id": logged.run_id,
            "model_uri": logged.model_uri,
            "mlflow_tracking_uri": registry.tracking_uri,
            "trained_on": dg.MetadataValue.json(data_versions),
            "dagster/row_count": frame.height,
            **model.validation_metrics,
        },
        data_version=dg.DataVersion(f"{registry.model_name}@v{version}"),
    )


# The UI configs take their defaults from the model layer's: each default is written once.
LGBM, TORCH = LgbmSearchConfig(), TorchTrainConfig()


class LgbmTrainingConfig(dg.Config):
    n_trials: int = Field(20, description="Optuna trials (the search budget).")
    timeout_s: float | None = Field(LGBM.timeout_s, description="Optional wall-clock budget of the search.")
    seed: int = LGBM.seed
    num_threads: int = TRAINING_THREADS
    validation_fraction: float = Field(
        LGBM.validation_fraction, description="Latest share of the window to validate on."
    )
    max_boost_rounds: int = LGBM.max_boost_rounds
    early_stopping_rounds: int = LGBM.early_stopping_rounds


@dg.asset(
    group_name="training",
    deps=["training_set"],
    kinds={"lightgbm", "optuna", "mlflow"},
    code_version="1",
    op_tags=TRAINING_STEP_TAGS,
    description=(
        "LightGBM with an Optuna search (pruned, on a time-ordered validation split), refitted on "
        "the week's training window; logged to MLflow, registered and set as `challenger`."
    ),
    **WEEKLY,
)
def lgbm_model(
    context: dg.AssetExecutionContext, config: LgbmTrainingConfig, storage: DeltaStorage, mlflow: MlflowTracking
):
    from ml_assets.models.lgbm import train_lgbm

    registry = mlflow.registry()  # fails fast, before training, when MLflow is unreachable
    frame, data_versions = load_training_window(storage, context.partition_key)
    model = train_lgbm(frame, LgbmSearchConfig(**config.model_dump()), progress=context.log.info)
    params = {**config.model_dump(), **model.params, "best_iteration": model.best_iteration}
    return log_and_register_challenger(context, mlflow, registry, model, frame, params, data_versions)


class TorchTrainingConfig(dg.Config):
    hidden_sizes: list[int] = list(TORCH.hidden_sizes)
    max_embedding_dim: int = TORCH.max_embedding_dim
    dropout: float = TORCH.dropout
    learning_rate: float = TORCH.learning_rate
    weight_decay: float = TORCH.weight_decay
    batch_size: int = TORCH.batch_size
    max_epochs: int = Field(TORCH.max_epochs, description="Upper bound; training stops early on validation loss.")
    patience: int = TORCH.patience
    validation_fraction: float = TORCH.validation_fraction
    min_category_count: int = TORCH.min_category_count
    seed: int = TORCH.seed
    num_threads: int = TRAINING_THREADS


@dg.asset(
    group_name="training",
    deps=["training_set"],
    kinds={"pytorch", "mlflow"},
    code_version="1",
    op_tags=GPU_PLACEMENT_TAGS | TRAINING_STEP_TAGS,
    pool="gpu",  # the instance's `gpu` pool: GPU steps queue instead of overcommitting the GPU nodes
    description=(
        "A tabular network (categorical embeddings, standardised numerics), seeded, early-stopped, "
        "on CUDA when present; logged to MLflow, registered and set as `challenger`."
    ),
    **WEEKLY,
)
def torch_model(
    context: dg.AssetExecutionContext, config: TorchTrainingConfig, storage: DeltaStorage, mlflow: MlflowTracking
):
    from ml_assets.models.torch_tabular import train_torch_tabular

    registry = mlflow.registry()  # fails fast, before training, when MLflow is unreachable
    frame, data_versions = load_training_window(storage, context.partition_key)
    settings = config.model_dump()
    model = train_torch_tabular(
        frame, TorchTrainConfig(**{**settings, "hidden_sizes": tuple(config.hidden_sizes)}), progress=context.log.info
    )
    return log_and_register_challenger(context, mlflow, registry, model, frame, settings, data_versions)


training_assets = [training_set, lgbm_model, torch_model]
