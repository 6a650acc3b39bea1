"""Monitoring layer: the champion's drift reference, daily drift checks, live performance.

- `drift_reference` computes the reference of the champion once per version (its training
  window's features and scores, and their calibration) and stores it.
- `feature_drift` (on `flight_features`) and `score_drift` (on `batch_predictions`) are daily
  checks against the reference of the version that scored the day. They warn or fail with ERROR
  severity and alert; they never block the day's predictions.
- `live_performance` scores the batch predictions once the day's labels are complete (the next
  day's delivery), with a rolling week, and its `performance_degradation` check compares that
  with the model's own out-of-time evaluation.
Thresholds: `ml_assets.monitoring.thresholds`.
"""

from datetime import date

import dagster as dg
import polars as pl

from ml_assets.assets.common import DAILY_ONE_PER_RUN, check_results_by_day, data_version, day_range
from ml_assets.assets.evaluation import EVALUATIONS
from ml_assets.assets.predictions import PREDICTIONS_TABLE
from ml_assets.automation import check_follows_upstream
from ml_assets.dates import days_between
from ml_assets.flights.feature_spec import FEATURES_TABLE, LABEL_LAG_DAYS
from ml_assets.partitions import daily_partitions
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.notifier import Notifier
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import OWNER, data_dir

FEATURE_DRIFT_TABLE = "monitoring/feature_drift"
SCORE_DRIFT_TABLE = "monitoring/score_drift"


@dg.asset(
    group_name="monitoring",
    deps=["champion_promotion"],
    kinds={"evidently", "deltalake"},
    code_version="1",
    owners=[OWNER],
    output_required=False,  # no champion: nothing to compute
    description=(
        "The drift reference of the champion: a sample of its training window with its scores, and "
        "each monitored column's day-to-day range over that window. Computed once per model version."
    ),
)
def drift_reference(context: dg.AssetExecutionContext, storage: DeltaStorage, mlflow: MlflowTracking):
    from ml_assets.metadata import markdown_table
    from ml_assets.models.registry import CHAMPION
    from ml_assets.monitoring.reference import REFERENCE_TABLE, ensure_reference, training_window

    registry = mlflow.registry()
    version = registry.version_for(CHAMPION)
    if version is None:
        context.log.warning("drift_reference skipped: there is no champion yet")
        return
    reference, computed = ensure_reference(storage, registry, version)
    window = training_window(registry, version)
    context.log.info(f"drift reference of v{version}: {'computed now' if computed else 'already stored, reused'}")
    calibration = reference.calibration.sort("window_max", descending=True).select("column", "statistic", "window_max")
    yield dg.MaterializeResult(
        metadata={
            "model_version": version,
            "computed_now": computed,
            "training_window": f"{window.first}..{window.last} ({window.table}@{window.table_version})",
            "reference_rows": reference.rows.height,
            "calibration": dg.MetadataValue.md(markdown_table(calibration)),
            "dagster/uri": storage.table_uri(REFERENCE_TABLE),
        },
        data_version=dg.DataVersion(f"drift_reference@v{version}"),
    )


def _scored_versions(storage: DeltaStorage, day: date) -> list[str]:
    if not storage.exists(PREDICTIONS_TABLE):
        return []
    versions = storage.scan(PREDICTIONS_TABLE, day, day).select("model_version").unique().collect()
    return sorted(versions.get_column("model_version").to_list(), key=int)


def _recent_scores(storage: DeltaStorage, table: str, day: date, version: str) -> pl.DataFrame:
    """Earlier days' drift scores against the same reference (the seasonal band)."""
    from ml_assets.monitoring.drift import recent_days

    if not storage.exists(table):
        return pl.DataFrame(schema={"date": pl.Date, "column": pl.String, "value": pl.Float64})
    recent = storage.scan(table, *recent_days(day)).filter(pl.col("model_version") == version)
    return recent.select("date", "column", "value").collect()


def alert_new_failures(
    context: dg.AssetCheckExecutionContext, notifier: Notifier, asset: str, results: dict[date, list[dg.AssetCheckResult]]
) -> dict[date, list[dg.AssetCheckResult]]:
    """Alert from the check itself, at once, on each day that starts failing (its previous result
    passed, or it had none), and mark the result so the alert sensor does not send it again."""
    from dagster._core.event_api import PartitionKeyFilter

    from ml_assets.monitoring.alerts import ALERT_SENT, check_failure_alert

    def failed_before(result: dg.AssetCheckResult, day: date) -> bool:
        key = dg.AssetCheckKey(dg.AssetKey(asset), result.check_name)
        history = context.instance.event_log_storage.get_asset_check_execution_history(
            key, limit=5, partition_filter=PartitionKeyFilter(key=day.isoformat())
        )
        earlier = [r for r in history if r.run_id != context.run.run_id and r.evaluation is not None]
        return bool(earlier) and not earlier[0].evaluation.passed

    marked = {}
    for day, day_results in results.items():
        marked[day] = []
        for result in day_results:
            if not result.passed and not failed_before(result, day):
                alert = check_failure_alert(asset, result.check_name, str(day), result.severity.value, result.metadata, context.run.run_id)
                result = result.with_metadata({**result.metadata, ALERT_SENT: notifier.send(alert)})
            marked[day].append(result)
    return marked


def drift_check(
    storage: DeltaStorage,
    mlflow: MlflowTracking,
    day: date,
    current: pl.DataFrame,
    columns: list[str],
    severity_of,
    table: str,
    check_name: str,
) -> dg.AssetCheckResult:
    """The shared body of the drift checks: the day's `current` rows against the reference of
    the version that scored the day; results stored in `table`, Evidently's report saved."""
    from ml_assets.monitoring.drift import check_day, drift_table_markdown, write_html_report
    from ml_assets.monitoring.reference import CATEGORICAL, ensure_reference

    versions = _scored_versions(storage, day)
    if not versions:
        return dg.AssetCheckResult(
            check_name=check_name, passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"reason": f"{day} has no batch predictions: materialize batch_predictions for {day} first"},
        )  # fmt: skip
    version = versions[-1]
    reference, _ = ensure_reference(storage, mlflow.registry(), version)
    recent = _recent_scores(storage, table, day, version)
    judged, severity = check_day(reference, current, columns, recent, severity_of)
    storage.write_days(table, judged.with_columns(date=pl.lit(day), model_version=pl.lit(version)), day, day)
    report = write_html_report(
        reference.rows, current, judged, CATEGORICAL, data_dir() / "reports" / "drift" / str(day) / f"{check_name}.html"
    )
    drifted = judged.filter(pl.col("drifted")).get_column("column").to_list()
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=severity is None,
        severity=dg.AssetCheckSeverity.ERROR if severity == "ERROR" else dg.AssetCheckSeverity.WARN,
        metadata={
            "model_version": version,
            "drifted_columns": dg.MetadataValue.json(drifted),
            "drifted_share": len(drifted) / max(1, judged.filter(pl.col("value").is_not_null()).height),
            "max_ratio": judged.get_column("ratio").max(),
            "results": dg.MetadataValue.md(drift_table_markdown(judged)),
            "evidently_report": dg.MetadataValue.url(report.as_uri()),
            "evidently_report_path": dg.MetadataValue.path(str(report)),
        },
    )


@dg.asset_check(
    asset="flight_features",
    name="feature_drift",
    partitions_def=daily_partitions,
    additional_deps=["batch_predictions", "drift_reference"],
    automation_condition=check_follows_upstream(),
    description=(
        "The day's features against the champion's reference (Evidently: Wasserstein and KS for "
        "numeric columns, PSI for all), calibrated for seasonality; WARN on a drifted feature, "
        "ERROR on several. Never blocks the predictions."
    ),
)
def feature_drift(context: dg.AssetCheckExecutionContext, storage: DeltaStorage, mlflow: MlflowTracking, notifier: Notifier):
    from ml_assets.monitoring.drift import feature_severity
    from ml_assets.monitoring.reference import MONITORED_FEATURES

    results = {}
    for day in days_between(*day_range(context)):  # one day, or each day of a ranged run of flight_features
        current = storage.scan(FEATURES_TABLE, day, day).collect()
        results[day] = [drift_check(
            storage, mlflow, day, current, MONITORED_FEATURES, feature_severity, FEATURE_DRIFT_TABLE, "feature_drift"
        )]  # fmt: skip
    yield from check_results_by_day(context, alert_new_failures(context, notifier, "flight_features", results))


@dg.asset_check(
    asset="batch_predictions",
    name="score_drift",
    partitions_def=daily_partitions,
    additional_deps=["drift_reference"],
    automation_condition=check_follows_upstream(),
    description=(
        "The day's score distribution against the scores of the champion's training window "
        "(Evidently: Wasserstein, KS and PSI), calibrated for seasonality; ERROR when it drifts."
    ),
)
def score_drift(context: dg.AssetCheckExecutionContext, storage: DeltaStorage, mlflow: MlflowTracking, notifier: Notifier):
    from ml_assets.monitoring.drift import score_severity
    from ml_assets.monitoring.reference import SCORE

    results = {}
    for day in days_between(*day_range(context)):
        current = storage.scan(PREDICTIONS_TABLE, day, day).collect() if storage.exists(PREDICTIONS_TABLE) else pl.DataFrame()
        results[day] = [drift_check(storage, mlflow, day, current, [SCORE], score_severity, SCORE_DRIFT_TABLE, "score_drift")]
    yield from check_results_by_day(context, alert_new_failures(context, notifier, "batch_predictions", results))


def _labels_complete() -> dg.TimeWindowPartitionMapping:
    """The day's outcomes are complete once the delivery LABEL_LAG_DAYS later has landed."""
    return dg.TimeWindowPartitionMapping(
        start_offset=LABEL_LAG_DAYS, end_offset=LABEL_LAG_DAYS, allow_nonexistent_upstream_partitions=True
    )


@dg.asset(
    group_name="monitoring",
    deps=[
        "batch_predictions",
        "flight_features",  # the labels
        dg.AssetDep("flights", partition_mapping=_labels_complete()),
    ],
    kinds={"polars", "deltalake"},
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec(
            "performance_degradation", asset="live_performance",
            description="The rolling week's ROC AUC is not more than 5 % (relative) below the model's own out-of-time evaluation.",
        )
    ],  # fmt: skip
    description=(
        "Realised ROC AUC, PR AUC, Brier, log loss and calibration error of the day's batch "
        "predictions once its labels are complete (the next day's delivery), per model version, "
        "with the rolling week."
    ),
    **DAILY_ONE_PER_RUN,
)
def live_performance(context: dg.AssetExecutionContext, storage: DeltaStorage):
    from ml_assets.metadata import markdown_table
    from ml_assets.monitoring import thresholds
    from ml_assets.monitoring.performance import (
        LIVE_TABLE, day_metrics, degradation, evaluated_roc_auc, labelled, rolling_days,
    )  # fmt: skip

    start, end = day_range(context)
    first, _ = rolling_days(start)
    rows = labelled(
        storage.scan(PREDICTIONS_TABLE, first, end).collect(), storage.scan(FEATURES_TABLE, first, end).collect()
    )
    if rows.filter(pl.col("date").is_between(start, end)).is_empty():
        raise dg.Failure(f"no batch predictions with labels for {start}..{end}: materialize batch_predictions first")
    evaluations = storage.scan(EVALUATIONS).collect() if storage.exists(EVALUATIONS) else pl.DataFrame()
    days = rows.filter(pl.col("date").is_between(start, end)).get_column("date").unique().sort()
    daily = pl.concat([day_metrics(rows, day) for day in days], how="diagonal_relaxed")
    version = storage.write_days(LIVE_TABLE, daily, start, end)
    latest = daily.sort("date", "model_version").row(-1, named=True)
    expected = evaluated_roc_auc(evaluations, latest["model_version"]) if evaluations.height else None
    verdict = degradation(latest["rolling_roc_auc"], latest["rolling_rows"], expected)
    context.log.info(f"live performance {start}..{end}: {verdict.reason}")
    return dg.MaterializeResult(
        metadata={
            "model_version": latest["model_version"],
            "roc_auc": latest["roc_auc"],
            "rolling_roc_auc": latest["rolling_roc_auc"],
            "evaluated_roc_auc": expected,
            "verdict": verdict.reason,
            "days": dg.MetadataValue.md(markdown_table(daily.select(
                "date", "model_version", "rows", "roc_auc", "pr_auc", "brier", "ece", "rolling_days", "rolling_roc_auc"
            ))),  # fmt: skip
            "dagster/uri": storage.table_uri(LIVE_TABLE),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="performance_degradation",
                passed=verdict.degraded is not True,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "reason": verdict.reason,
                    "rolling_roc_auc": verdict.rolling_roc_auc,
                    "evaluated_roc_auc": verdict.evaluated_roc_auc,
                    "relative_drop": verdict.relative_drop,
                    "max_relative_drop": thresholds.MAX_RELATIVE_ROC_AUC_DROP,
                    "model_version": latest["model_version"],
                },
            )
        ],
        data_version=data_version(LIVE_TABLE, version),
    )


monitoring_assets = [drift_reference, live_performance]
monitoring_checks = [feature_drift, score_drift]
