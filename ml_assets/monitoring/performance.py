"""Live performance: the batch predictions scored against the labels once they are complete.

A day's realised metrics (per model version that scored it), the rolling view over the days
before it, and the verdict against the model's own out-of-time evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from ml_assets.flights.feature_spec import LABEL
from ml_assets.models.metrics import classification_metrics
from ml_assets.monitoring import thresholds

LIVE_TABLE = "monitoring/live_performance"


def labelled(predictions: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    """The predictions with the realised label of their flight."""
    return predictions.join(features.select("flight_id", LABEL), on="flight_id", how="inner")


def metrics_of(rows: pl.DataFrame) -> dict[str, float | int | None]:
    """ROC AUC, PR AUC, Brier, log loss, calibration error, rows and rates of labelled rows
    (the metrics are None when a class is missing)."""
    y = rows.get_column(LABEL).cast(pl.Int8).to_numpy()
    scores = rows.get_column("score").to_numpy()
    both_classes = 0 < y.sum() < len(y)
    measured = classification_metrics(y, scores) if both_classes else {}
    return {
        "rows": rows.height,
        "disruption_rate": float(y.mean()) if len(y) else None,
        "mean_score": float(scores.mean()) if len(scores) else None,
        **{name: measured.get(name) for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece")},
    }


def rolling_days(day: date) -> tuple[date, date]:
    """The first and last day of `day`'s rolling window: the day and the ROLLING_DAYS - 1 before it."""
    return day - timedelta(days=thresholds.ROLLING_DAYS - 1), day


def day_metrics(rows: pl.DataFrame, day: date) -> pl.DataFrame:
    """One row per model version that scored `day` (by version): the day's metrics and the rolling
    metrics of that version over `day`'s rolling window. `rows`: labelled predictions covering it."""
    window = rows.filter(pl.col("date").is_between(*rolling_days(day)))
    day_rows = rows.filter(pl.col("date") == day)
    metrics = []
    for version in sorted(day_rows.get_column("model_version").unique(), key=int):
        rolling = window.filter(pl.col("model_version") == version)
        metrics.append(
            {"date": day, "model_version": version}
            | metrics_of(day_rows.filter(pl.col("model_version") == version))
            | {f"rolling_{k}": v for k, v in metrics_of(rolling).items()}
            | {"rolling_days": rolling.get_column("date").n_unique()}
        )
    return pl.DataFrame(metrics)


@dataclass(frozen=True)
class Degradation:
    degraded: bool | None  # None: no verdict (too few labelled rows or no evaluation to compare)
    rolling_roc_auc: float | None
    evaluated_roc_auc: float | None
    relative_drop: float | None
    reason: str


def degradation(rolling_roc_auc: float | None, rolling_rows: int, evaluated_roc_auc: float | None) -> Degradation:
    """Degraded when the rolling ROC AUC is more than MAX_RELATIVE_ROC_AUC_DROP below the ROC AUC
    the model reached in its own out-of-time evaluation."""
    if evaluated_roc_auc is None:
        return Degradation(None, rolling_roc_auc, None, None, "the model has no out-of-time evaluation to compare with")
    if rolling_roc_auc is None or rolling_rows < thresholds.MIN_LABELLED_ROWS:
        return Degradation(None, rolling_roc_auc, evaluated_roc_auc, None,
                           f"{rolling_rows} labelled rows in the rolling window, fewer than {thresholds.MIN_LABELLED_ROWS}")  # fmt: skip
    drop = (evaluated_roc_auc - rolling_roc_auc) / evaluated_roc_auc
    degraded = drop > thresholds.MAX_RELATIVE_ROC_AUC_DROP
    verdict = "more" if degraded else "not more"
    return Degradation(
        degraded, rolling_roc_auc, evaluated_roc_auc, drop,
        f"rolling ROC AUC {rolling_roc_auc:.4f} is {drop:+.1%} below the evaluation's {evaluated_roc_auc:.4f}: "
        f"{verdict} than the allowed {thresholds.MAX_RELATIVE_ROC_AUC_DROP:.0%}",
    )  # fmt: skip


def evaluated_roc_auc(evaluations: pl.DataFrame, version: str) -> float | None:
    """The ROC AUC of `version` in its own week's out-of-time evaluation (as a candidate or the
    challenger), from the `evaluation/model_evaluations` rows."""
    own = evaluations.filter(
        (pl.col("model_version") == version) & pl.col("role").is_in(["candidate", "challenger"])
    ).sort("week")
    return float(own.get_column("roc_auc")[0]) if own.height else None
