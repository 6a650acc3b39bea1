"""Baselines every model must beat: a historical disruption rate and a logistic regression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES
from ml_assets.models.dataset import label_vector

# most specific first: carrier × origin-hour, then origin-hour, then carrier, then overall
RATE_LEVELS = (("carrier", "origin", "sched_hour"), ("origin", "sched_hour"), ("carrier",))


@dataclass(frozen=True)
class RateBaseline:
    """The training-window disruption rate of the most specific group with enough flights.

    Each level is a table of group rates (groups with fewer than `min_group_rows` flights left out);
    a flight takes the first level that knows its group, else the overall rate.
    """

    overall_rate: float
    levels: tuple[tuple[tuple[str, ...], pl.DataFrame], ...]

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        rates = np.full(frame.height, np.nan)
        for columns, level_rates in self.levels:
            level = frame.select(columns).join(
                level_rates, on=list(columns), how="left", maintain_order="left"
            )
            rates = np.where(np.isnan(rates), level["_rate"].to_numpy().astype(np.float64), rates)
        return np.where(np.isnan(rates), self.overall_rate, rates)


def fit_rate_baseline(
    frame: pl.DataFrame, levels: tuple[tuple[str, ...], ...] = RATE_LEVELS, min_group_rows: int = 30
) -> RateBaseline:
    """Rates from the training window; `levels=()` gives the overall rate alone."""
    fitted = tuple(
        (
            columns,
            frame.group_by(columns)
            .agg(pl.col(LABEL).cast(pl.Float64).mean().alias("_rate"), pl.len().alias("_rows"))
            .filter(pl.col("_rows") >= min_group_rows)
            .drop("_rows"),
        )
        for columns in levels
    )
    return RateBaseline(float(frame[LABEL].cast(pl.Float64).mean()), fitted)


@dataclass(frozen=True)
class LogisticBaseline:
    """An sklearn pipeline: one-hot categoricals; median-imputed (with indicators), scaled numerics."""

    pipeline: object

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(_sklearn_frame(frame))[:, 1].astype(np.float64)


def _sklearn_frame(frame: pl.DataFrame):
    return frame.select(
        *(pl.col(column).cast(pl.String).fill_null("unknown") for column in CATEGORICAL_FEATURES),
        *(pl.col(column).cast(pl.Float64) for column in NUMERIC_FEATURES),
    ).to_pandas()


def fit_logistic_baseline(frame: pl.DataFrame, max_iter: int = 1000) -> LogisticBaseline:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    preprocess = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                NUMERIC_FEATURES,
            ),
        ]
    )
    pipeline = make_pipeline(preprocess, LogisticRegression(max_iter=max_iter))
    pipeline.fit(_sklearn_frame(frame), label_vector(frame))
    return LogisticBaseline(pipeline)
