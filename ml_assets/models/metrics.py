"""Evaluation metrics for a binary risk score, computed with numpy.

ROC AUC, PR AUC (average precision), Brier score, log loss, expected calibration error, a binned
calibration curve, per-slice metrics with the worst-slice gap, and a calibration plot PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.models.dataset import label_vector

HOUR_BANDS = [(0, 4, "00-04"), (5, 9, "05-09"), (10, 13, "10-13"), (14, 17, "14-17"), (18, 23, "18-23")]
SLICE_COLUMNS = ["carrier", "origin", "hour_band", "month"]


def _as_arrays(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} scores")
    return y, p


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    group_ends = np.r_[group_starts[1:], values.size]
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((group_starts + group_ends + 1) / 2.0, group_ends - group_starts)
    return ranks


def roc_auc(y_true, y_score) -> float:
    """Mann-Whitney AUC; NaN when only one class is present."""
    y, p = _as_arrays(y_true, y_score)
    positives = y.sum()
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    rank_sum = _average_ranks(p)[y == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def pr_auc(y_true, y_score) -> float:
    """Average precision: sum over score thresholds of precision × recall increment."""
    y, p = _as_arrays(y_true, y_score)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    threshold_ends = np.r_[np.flatnonzero(p_sorted[1:] != p_sorted[:-1]), y.size - 1]
    true_positives = np.cumsum(y_sorted)[threshold_ends]
    predicted_positives = threshold_ends + 1
    precision = true_positives / predicted_positives
    recall = true_positives / y.sum()
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def brier(y_true, y_score) -> float:
    y, p = _as_arrays(y_true, y_score)
    return float(np.mean((p - y) ** 2))


def log_loss(y_true, y_score) -> float:
    y, p = _as_arrays(y_true, y_score)
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_curve(y_true, y_score, n_bins: int = 10) -> pl.DataFrame:
    """Equal-width probability bins: mean predicted vs observed rate and row count (empty bins dropped)."""
    y, p = _as_arrays(y_true, y_score)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    return pl.DataFrame(
        {
            "bin": np.arange(n_bins)[filled],
            "mean_predicted": predicted[filled] / counts[filled],
            "observed_rate": observed[filled] / counts[filled],
            "count": counts[filled],
        }
    )


def expected_calibration_error(y_true, y_score, n_bins: int = 10) -> float:
    """Row-weighted mean |observed rate - mean predicted| over the calibration bins."""
    curve = calibration_curve(y_true, y_score, n_bins)
    weights = curve["count"].to_numpy() / curve["count"].sum()
    gaps = np.abs(curve["observed_rate"].to_numpy() - curve["mean_predicted"].to_numpy())
    return float(np.sum(weights * gaps))


METRIC_NAMES = ["roc_auc", "pr_auc", "brier", "log_loss", "ece"]  # what classification_metrics returns


def classification_metrics(y_true, y_score) -> dict[str, float]:
    return {
        "roc_auc": roc_auc(y_true, y_score),
        "pr_auc": pr_auc(y_true, y_score),
        "brier": brier(y_true, y_score),
        "log_loss": log_loss(y_true, y_score),
        "ece": expected_calibration_error(y_true, y_score),
    }


def with_hour_band(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `hour_band` from the scheduled hour: 00-04, 05-09, 10-13, 14-17, 18-23."""
    band = pl.lit(None, dtype=pl.String)
    for low, high, name in reversed(HOUR_BANDS):
        band = pl.when(pl.col("sched_hour").is_between(low, high)).then(pl.lit(name)).otherwise(band)
    return frame.with_columns(band.alias("hour_band"))


def slice_metrics(
    frame: pl.DataFrame, y_score, slice_columns: list[str] = SLICE_COLUMNS, min_rows: int = 30
) -> pl.DataFrame:
    """Metrics per value of each slice column (slices with fewer than `min_rows` rows skipped)."""
    scored = with_hour_band(frame).with_columns(
        pl.Series("_score", np.asarray(y_score, dtype=np.float64))
    )
    rows = []
    for column in slice_columns:
        for (value,), group in scored.group_by(column, maintain_order=True):
            if group.height < min_rows:
                continue
            y = label_vector(group)
            p = group["_score"].to_numpy()
            rows.append(
                {
                    "slice": column,
                    "value": str(value),
                    "rows": group.height,
                    "positive_rate": float(y.mean()),
                    "roc_auc": roc_auc(y, p),
                    "brier": brier(y, p),
                }
            )
    schema = {"slice": pl.String, "value": pl.String, "rows": pl.Int64,
              "positive_rate": pl.Float64, "roc_auc": pl.Float64, "brier": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort("slice", "value")


def worst_slice_gaps(slices: pl.DataFrame, overall_roc_auc: float) -> pl.DataFrame:
    """Per slice column: the slice with the lowest ROC AUC and its gap below the overall AUC."""
    return (
        slices.filter(pl.col("roc_auc").is_not_nan())
        .sort("roc_auc")
        .group_by("slice", maintain_order=True)
        .first()
        .select(
            "slice",
            pl.col("value").alias("worst_value"),
            pl.col("roc_auc").alias("worst_roc_auc"),
            (pl.lit(overall_roc_auc) - pl.col("roc_auc")).alias("gap"),
        )
        .sort("slice")
    )


@dataclass(frozen=True)
class Evaluation:
    """Everything measured for one model on one evaluation frame."""

    metrics: dict[str, float]
    calibration: pl.DataFrame
    slices: pl.DataFrame
    worst_slices: pl.DataFrame

    @property
    def worst_slice_gap(self) -> float:
        return float(self.worst_slices["gap"].max()) if self.worst_slices.height else float("nan")


def evaluate(frame: pl.DataFrame, y_score, n_bins: int = 10, min_slice_rows: int = 30) -> Evaluation:
    """Score one model's predictions on a labelled features frame."""
    y = label_vector(frame)
    metrics = classification_metrics(y, y_score)
    slices = slice_metrics(frame, y_score, min_rows=min_slice_rows)
    return Evaluation(
        metrics=metrics,
        calibration=calibration_curve(y, y_score, n_bins),
        slices=slices,
        worst_slices=worst_slice_gaps(slices, metrics["roc_auc"]),
    )


def write_calibration_plot(curves: dict[str, pl.DataFrame], path: Path) -> Path:
    """Reliability diagram (mean predicted vs observed rate) for each named curve, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, curve in curves.items():
        axis.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=name)
    axis.set(xlabel="mean predicted risk", ylabel="observed disruption rate",
             xlim=(0, 1), ylim=(0, 1), title="Calibration")
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
