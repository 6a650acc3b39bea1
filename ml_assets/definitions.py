"""The `ml_assets` code location: every layer's assets, checks and resources in one place."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)

from ml_assets.assets.evaluation import evaluation_assets  # noqa: E402
from ml_assets.assets.features import flight_features  # noqa: E402
from ml_assets.assets.processed import processed_assets  # noqa: E402
from ml_assets.assets.raw import raw_assets  # noqa: E402
from ml_assets.assets.serving import serving_assets  # noqa: E402
from ml_assets.assets.training import training_assets  # noqa: E402
from ml_assets.freshness import partition_freshness, with_freshness  # noqa: E402
from ml_assets.resources import resources_for_env  # noqa: E402
from ml_assets.sensors import landing_zone_sensor  # noqa: E402

data_assets = [*raw_assets, *processed_assets, flight_features]
daily_assets = [a for a in data_assets if a.partitions_def is not None]
static_assets = [a for a in data_assets if a.partitions_def is None]
model_assets = [*training_assets, *evaluation_assets]
freshness_checks, freshness_sensor = partition_freshness(daily_assets)

defs = dg.Definitions(
    assets=[*data_assets, *model_assets, *serving_assets],
    asset_checks=freshness_checks,
    sensors=[freshness_sensor, landing_zone_sensor],
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
            - dg.AssetSelection.checks(*freshness_checks),  # evaluated by their sensor
            description="Daily raw → processed → features for a day range, in one run.",
        ),
        dg.define_asset_job(
            "weekly_models",
            selection=dg.AssetSelection.assets(*model_assets),  # weekly: the partitions come with them
            description="A week's training set, LightGBM and torch models, evaluation and promotion gate.",
        ),
    ],
    resources=resources_for_env(),
).map_asset_specs(func=with_freshness)
