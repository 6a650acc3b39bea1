"""Serving layer (batch): `batch_predictions`, the champion's score for every flight of a day.

The champion is resolved from the registry alias when the run starts and loaded through the one
scoring path (`models.scoring`), the same as the evaluation and the online service. Every row
carries the model version that scored it; rescoring after a promotion is a re-materialization.
"""

import dagster as dg

from ml_assets.assets.common import DAILY_ONE_PER_RUN, data_version, day_range
from ml_assets.flights.feature_spec import FEATURES_TABLE
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.storage import DeltaStorage

PREDICTIONS_TABLE = "serving/batch_predictions"
IDENTITY_COLUMNS = ["flight_id", "date", "sched_dep_utc", "prediction_time_utc", "carrier", "origin", "dest"]


@dg.asset(
    group_name="serving",
    deps=[
        "flight_features",
        # lineage only: the champion in force when the day is scored is the latest promotion's
        dg.AssetDep("champion_promotion", partition_mapping=dg.LastPartitionMapping()),
    ],
    kinds={"mlflow", "deltalake"},
    code_version="1",
    output_required=False,  # no champion yet: skipped with the reason, not failed
    description=(
        "The champion's disruption risk for every flight of the day, scored from flight_features "
        "(the model version on every row). Skipped, with the reason, while there is no champion."
    ),
    **DAILY_ONE_PER_RUN,
)
def batch_predictions(context: dg.AssetExecutionContext, storage: DeltaStorage, mlflow: MlflowTracking):
    from ml_assets.metadata import table_metadata
    from ml_assets.models.registry import CHAMPION
    from ml_assets.models.scoring import load_scoring_model
    from ml_assets.monitoring.predictions import score_days, score_summary

    start, end = day_range(context)
    registry = mlflow.registry()
    if registry.version_for(CHAMPION) is None:
        reason = f"{registry.model_name} has no champion yet: nothing scores {start}..{end} (promote a model first)"
        context.log.warning(f"batch_predictions skipped: {reason}")
        yield dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped": reason})
        return
    champion = load_scoring_model(registry, CHAMPION)
    features_version = storage.version(FEATURES_TABLE)
    features = storage.scan(FEATURES_TABLE, start, end, version=features_version).collect()
    predictions = score_days(features, champion, IDENTITY_COLUMNS)
    summary = score_summary(predictions)
    version = storage.write_days(PREDICTIONS_TABLE, predictions, start, end)
    context.log.info(f"{PREDICTIONS_TABLE}: {predictions.height} flights scored by {champion.name}, version {version}")
    yield dg.MaterializeResult(
        metadata=table_metadata(predictions, storage.table_uri(PREDICTIONS_TABLE), version)
        | summary
        | {
            "score_histogram": dg.MetadataValue.md(summary.get("score_histogram", "no flights")),
            "model_version": champion.version,
            "model_kind": champion.kind,
            "scored_from": dg.MetadataValue.json({FEATURES_TABLE: features_version}),
        },
        data_version=data_version(PREDICTIONS_TABLE, version),
    )
