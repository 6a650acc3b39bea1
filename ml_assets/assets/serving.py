"""Serving layer (daily): `online_features`, pushed to the online store for the coming day, and
`served_predictions`, the service's prediction log moved into the lake. (`batch_predictions`
lives in `predictions.py`.)"""

from datetime import timedelta

import dagster as dg

from ml_assets.assets.common import DAILY, data_version, day_range
from ml_assets.dates import days_between
from ml_assets.flights.feature_spec import LABEL_LAG_DAYS
from ml_assets.flights.features import FLIGHT_DAYS_BEFORE
from ml_assets.resources.online_store import OnlineStoreResource
from ml_assets.resources.storage import DeltaStorage

ONLINE_FEATURES = "serving/online_features"
SERVED_PREDICTIONS = "serving/served_predictions"
LOG_RETENTION_DAYS = 30  # the prediction log keeps this many days before the newest day moved


@dg.asset(
    group_name="serving",
    deps=[
        # complete days only: the history window ends LABEL_LAG_DAYS + 1 days before the day
        dg.AssetDep("flights", partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-FLIGHT_DAYS_BEFORE, end_offset=-(LABEL_LAG_DAYS + 1),
            allow_nonexistent_upstream_partitions=True,
        )),
        "planes", "airlines", "airports",
    ],  # fmt: skip
    kinds={"polars", "deltalake", "redis"},
    code_version="1",
    description=(
        "The features that change once a day, for the day: calendar, aircraft, 28-day disruption rates by "
        "route, carrier, origin-hour, destination-hour and flight number, route distances, computed by the "
        "offline feature functions from completed days, pushed to the online store keyed by entity (and "
        "kept in the lake). The service adds the real-time features from the event feed."
    ),
    **DAILY,
)
def online_features(context: dg.AssetExecutionContext, storage: DeltaStorage, online_store: OnlineStoreResource):
    import json
    from datetime import datetime, timezone

    import polars as pl

    from ml_assets.serving.daily_features import daily_rows_from_lake

    start, end = day_range(context)
    store = online_store.open_store()
    frames, versions = [], {}
    try:
        for day in days_between(start, end):
            rows, versions = daily_rows_from_lake(storage, day)
            store.write_daily(day, rows, datetime.now(timezone.utc))
            frames.append(pl.DataFrame(
                {"date": [day] * len(rows), "key": list(rows), "values": [json.dumps(v) for v in rows.values()]},
                schema={"date": pl.Date, "key": pl.String, "values": pl.String},
            ).with_columns(kind=pl.col("key").str.split("/").list.first()))  # fmt: skip
    finally:
        store.close()
    frame = pl.concat(frames)
    version = storage.write_days(ONLINE_FEATURES, frame, start, end)
    by_kind = frame.group_by("kind").len().sort("kind")
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "entities_by_kind": dg.MetadataValue.json(dict(by_kind.iter_rows())),
            "online_store": store.url,
            "input_table_versions": dg.MetadataValue.json(versions),
        },
        data_version=data_version(ONLINE_FEATURES, version),
    )


@dg.asset(
    group_name="serving",
    deps=[dg.AssetDep("online_features", partition_mapping=dg.TimeWindowPartitionMapping())],
    kinds={"deltalake", "redis"},
    code_version="1",
    description=(
        "Every prediction the online service served for the day's flights (request id, time, flight, model "
        "version, role, score, features, latency), moved from its prediction log into the lake: live "
        "performance once labels land, and training/serving skew against the batch predictions."
    ),
    **DAILY,
)
def served_predictions(context: dg.AssetExecutionContext, storage: DeltaStorage, online_store: OnlineStoreResource):
    import polars as pl

    from ml_assets.serving.served import served_frame

    start, end = day_range(context)
    log = online_store.open_prediction_log()
    try:
        frame = served_frame([r for day in days_between(start, end) for r in log.read_day(day)])
        version = storage.write_days(SERVED_PREDICTIONS, frame, start, end)
        pruned = log.prune(end - timedelta(days=LOG_RETENTION_DAYS))
    finally:
        log.close()
    by_role = frame.group_by("role", "model_version").len().sort("role", "model_version")
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "by_role_and_version": dg.MetadataValue.json({f"{r} v{v}": n for r, v, n in by_role.iter_rows()}),
            "mean_latency_ms": frame.get_column("latency_ms").mean() if frame.height else None,
            "prediction_log": log.url,
            "log_records_pruned": pruned,
            "flights_served": frame.filter(pl.col("flight_key").is_not_null()).get_column("flight_key").n_unique(),
        },
        data_version=data_version(SERVED_PREDICTIONS, version),
    )


serving_assets = [online_features, served_predictions]
