"""Model quality checks: invariance, directional expectations and a minimum AUC.

Each check takes any `predict_proba(frame) -> np.ndarray` and a labelled features frame, and
returns a `QualityCheckResult` whose `details` explain the verdict (they become asset-check
metadata). The promotion gate requires all of them to pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ml_assets.flights.feature_spec import FEATURES, LABEL_COLUMNS
from ml_assets.models.dataset import label_vector
from ml_assets.models.metrics import roc_auc

PredictProba = Callable[[pl.DataFrame], np.ndarray]


@dataclass(frozen=True)
class QualityCheckResult:
    name: str
    passed: bool
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DirectionalExpectation:
    """Applying `changes` to the frame must raise the mean predicted risk by more than `min_increase`.

    A change is a whole scenario: every feature it would move moves together, so a model is not
    asked about a state it can never see (recent delays up while the share of late flights stays).
    """

    name: str
    changes: tuple[pl.Expr, ...]
    min_increase: float = 0.0


def _later(column: str, minutes: float) -> pl.Expr:
    """A mean departure delay `minutes` later; unknown (no departures) stays unknown."""
    return (pl.col(column).cast(pl.Float64) + minutes).alias(column)


DIRECTIONAL_EXPECTATIONS = [
    DirectionalExpectation(
        "lower_visibility_raises_risk",
        ((pl.col("wx_visib").cast(pl.Float64) * 0.1).alias("wx_visib"),),
    ),
    # every departure from the origin in the last hours left an hour later, so all were late
    DirectionalExpectation(
        "recent_origin_delays_raise_risk",
        (
            _later("origin_recent_mean_dep_delay", 60.0),
            _later("origin_last_hour_mean_dep_delay", 60.0),
            _later("carrier_origin_recent_mean_dep_delay", 60.0),
            pl.when(pl.col("origin_recent_late_share").is_not_null())
            .then(1.0)
            .alias("origin_recent_late_share"),
        ),
    ),
]


def reformat_identifiers(frame: pl.DataFrame) -> pl.DataFrame:
    """Change what a model must ignore: `flight_id` case and padding, and the label columns."""
    rng = np.random.default_rng(0)
    return frame.with_columns(
        pl.format("  {} ", pl.col("flight_id").cast(pl.String).str.to_lowercase()).alias("flight_id"),
        pl.Series(LABEL_COLUMNS[0], rng.random(frame.height) < 0.5),
        pl.Series(LABEL_COLUMNS[1], rng.normal(0.0, 60.0, frame.height)),
    )


def check_invariance(
    predict_proba: PredictProba, frame: pl.DataFrame, tolerance: float = 1e-9
) -> QualityCheckResult:
    """Scores must not move when only columns outside FEATURES change."""
    perturbed = reformat_identifiers(frame)
    touched = [column for column in FEATURES if not frame[column].equals(perturbed[column])]
    if touched:
        raise ValueError(f"the invariance perturbation must not change features, changed {touched}")
    shift = np.abs(predict_proba(perturbed) - predict_proba(frame))
    max_shift = float(shift.max()) if shift.size else 0.0
    return QualityCheckResult(
        "invariance_to_identifiers",
        passed=max_shift <= tolerance,
        details={
            "max_abs_score_change": max_shift,
            "rows_changed": int((shift > tolerance).sum()),
            "tolerance": tolerance,
            "perturbation": "flight_id lower-cased and padded; labels randomised",
        },
    )


def check_directional(
    predict_proba: PredictProba, frame: pl.DataFrame, expectation: DirectionalExpectation
) -> QualityCheckResult:
    baseline = float(np.mean(predict_proba(frame)))
    changed = float(np.mean(predict_proba(frame.with_columns(*expectation.changes))))
    increase = changed - baseline
    return QualityCheckResult(
        expectation.name,
        passed=increase > expectation.min_increase,
        details={
            "mean_risk_before": baseline,
            "mean_risk_after": changed,
            "increase": increase,
            "min_increase": expectation.min_increase,
        },
    )


def check_minimum_auc(predict_proba: PredictProba, frame: pl.DataFrame, min_auc: float) -> QualityCheckResult:
    auc = roc_auc(label_vector(frame), predict_proba(frame))
    return QualityCheckResult(
        "minimum_roc_auc",
        passed=bool(auc >= min_auc),
        details={"roc_auc": auc, "min_roc_auc": min_auc, "rows": frame.height},
    )


def run_quality_checks(
    predict_proba: PredictProba,
    frame: pl.DataFrame,
    min_auc: float,
    expectations: list[DirectionalExpectation] = DIRECTIONAL_EXPECTATIONS,
) -> list[QualityCheckResult]:
    unchanged = predict_proba(frame)  # every check compares with these: score the frame once

    def scored(candidate: pl.DataFrame) -> np.ndarray:
        return unchanged if candidate is frame else predict_proba(candidate)

    return [
        check_invariance(scored, frame),
        *(check_directional(scored, frame, expectation) for expectation in expectations),
        check_minimum_auc(scored, frame, min_auc),
    ]


def all_passed(results: list[QualityCheckResult]) -> bool:
    return all(result.passed for result in results)
