"""The `ml_assets` code location: every layer's assets, checks and resources in one place."""

import warnings

import dagster as dg

from ml_assets.assets.evaluation import evaluation_assets
from ml_assets.assets.features import flight_features
from ml_assets.assets.monitoring import monitoring_assets, monitoring_checks
from ml_assets.assets.predictions import batch_predictions
from ml_assets.assets.processed import processed_assets
from ml_assets.assets.raw import raw_assets
from ml_assets.assets.serving import serving_assets
from ml_assets.assets.training import training_assets
from ml_assets.automation import automation_sensor, weekly_automation_sensor, with_automation
from ml_assets.freshness import partition_freshness, with_freshness
from ml_assets.resources import executor_for_env, resources_for_env
from ml_assets.run_tags import WEEKLY_WORKLOAD
from ml_assets.sensors import (
    check_failure_alerts,
    landing_zone_sensor,
    retraining_sensor,
    run_failure_alerts,
    step_failure_alert,
)

# `daily_chain` mixes the data layers' single-run backfill policy with the monitoring assets'
# one-day-per-run: Dagster warns and takes one day per run, which is what the chain is for.
warnings.filterwarnings("ignore", message="Asset job daily_chain materializes assets with varying BackfillPolicies")

data_assets = [*raw_assets, *processed_assets, flight_features]
daily_assets = [a for a in data_assets if a.partitions_def is not None]
static_assets = [a for a in data_assets if a.partitions_def is None]
model_assets = [*training_assets, *evaluation_assets]
loop_assets = [batch_predictions, *monitoring_assets]
freshness_checks, freshness_sensor = partition_freshness(daily_assets)

defs = dg.Definitions(
    assets=[*data_assets, *model_assets, *loop_assets, *serving_assets],
    asset_checks=[*freshness_checks, *monitoring_checks],
    sensors=[
        freshness_sensor, landing_zone_sensor, automation_sensor, weekly_automation_sensor,
        retraining_sensor, check_failure_alerts, run_failure_alerts,
    ],  # fmt: skip
    jobs=[
        # Dimensions run on their own: in a ranged run Dagster would plan them once per day.
        dg.define_asset_job(
            "dimensions",
            selection=dg.AssetSelection.assets(*static_assets),
            description="The unpartitioned dimension tables (planes, airports, airlines).",
        ),
        dg.define_asset_job(
            "data_layers",
            selection=dg.AssetSelection.assets(*daily_assets)
            - dg.AssetSelection.checks(*freshness_checks)  # evaluated by their sensor
            - dg.AssetSelection.checks(*monitoring_checks),  # need the day's predictions
            description="Daily raw → processed → features for a day range, in one run.",
        ),
        dg.define_asset_job(
            "daily_chain",
            hooks={step_failure_alert},  # a failed step alerts at once
            selection=dg.AssetSelection.assets(*daily_assets, batch_predictions)  # with their checks, drift included
            - dg.AssetSelection.checks(*freshness_checks),
            description="A landed day end to end in one run: raw → processed → features → batch predictions "
            "→ drift checks (the landing-zone sensor's job).",
        ),
        dg.define_asset_job(
            "daily_monitoring",
            selection=dg.AssetSelection.assets("batch_predictions", "live_performance")
            | dg.AssetSelection.checks(*monitoring_checks),
            description="A day's batch predictions by the champion, its drift checks and live performance "
            "(rescoring after a promotion is a re-run of this job).",
        ),
        dg.define_asset_job(
            "retrain_models",
            selection=dg.AssetSelection.assets(*training_assets),
            tags=WEEKLY_WORKLOAD,
            description="A week's training set and models again (monitoring asked); evaluation and "
            "promotion follow by automation once the week's days are in.",
        ),
        dg.define_asset_job(
            "weekly_models",
            selection=dg.AssetSelection.assets(*model_assets),  # weekly: the partitions come with them
            tags=WEEKLY_WORKLOAD,
            description="A week's training set, LightGBM and torch models, evaluation and promotion gate.",
        ),
    ],
    resources=resources_for_env(),
).map_asset_specs(func=lambda spec: with_automation(with_freshness(spec)))
# The executor comes last, from every asset and check above (k8s: one pod per step, sized per step).
defs = dg.Definitions.merge(defs, dg.Definitions(executor=executor_for_env(defs.resolve_asset_graph().assets_defs)))
