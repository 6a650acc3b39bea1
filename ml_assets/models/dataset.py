"""Turn a `flight_features` frame into model inputs.

The frame contract lives in `ml_assets.flights.feature_spec`. Every learner goes through the same
steps: a time-ordered train/validation split, a category vocabulary fitted on the training rows
(unseen categories become `unknown`), and numeric features as float64 with nulls as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES

UNKNOWN = "unknown"
TIME_COLUMN = "sched_dep_utc"


class InsufficientTrainingDataError(ValueError):
    """The training window is empty or too small to fit a model."""


def require_training_rows(frame: pl.DataFrame, min_rows: int, min_positives: int = 1) -> None:
    """Fail with the reason when the window cannot train a model (both classes needed)."""
    positives = int(frame[LABEL].sum()) if frame.height else 0
    negatives = frame.height - positives
    if frame.height < min_rows:
        raise InsufficientTrainingDataError(
            f"training window has {frame.height} rows, fewer than the {min_rows} required"
        )
    if positives < min_positives or negatives < min_positives:
        raise InsufficientTrainingDataError(
            f"training window has {positives} disrupted and {negatives} on-time flights; "
            f"at least {min_positives} of each are required"
        )


def split_by_time(
    frame: pl.DataFrame, validation_fraction: float, time_column: str = TIME_COLUMN
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split into (train, validation): validation is the latest `validation_fraction` of rows.

    The cut is a timestamp, so every validation flight departs at or after every training flight.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    ordered = frame.sort(time_column)
    cut_index = int(ordered.height * (1.0 - validation_fraction))
    if cut_index <= 0 or cut_index >= ordered.height:
        raise InsufficientTrainingDataError(
            f"{ordered.height} rows cannot be split {1 - validation_fraction:.0%}/"
            f"{validation_fraction:.0%} into train and validation"
        )
    cut_time = ordered[time_column][cut_index]
    train = ordered.filter(pl.col(time_column) < cut_time)
    validation = ordered.filter(pl.col(time_column) >= cut_time)
    if train.height == 0:
        raise InsufficientTrainingDataError(f"all rows share the first {time_column} {cut_time}")
    return train, validation


@dataclass(frozen=True)
class CategoryVocabulary:
    """Known values per categorical column; index 0 is always `unknown`."""

    categories: dict[str, list[str]]

    @classmethod
    def fit(
        cls, frame: pl.DataFrame, columns: list[str] = CATEGORICAL_FEATURES, min_count: int = 1
    ) -> CategoryVocabulary:
        """Keep the values seen at least `min_count` times; rarer ones encode as `unknown`."""
        categories = {}
        for column in columns:
            counts = frame[column].drop_nulls().value_counts()
            frequent = counts.filter(pl.col("count") >= min_count)[column].to_list()
            categories[column] = [UNKNOWN, *sorted(set(frequent) - {UNKNOWN})]
        return cls(categories)

    def normalised(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The categorical columns with values outside the vocabulary (or null) as `unknown`."""
        return frame.select(
            pl.when(pl.col(column).is_in(known))
            .then(pl.col(column))
            .otherwise(pl.lit(UNKNOWN))
            .alias(column)
            for column, known in self.categories.items()
        )

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Integer codes, shape (rows, categorical columns); `unknown` is 0."""
        normalised = self.normalised(frame)
        columns = [
            normalised[column].replace_strict(known, list(range(len(known))), return_dtype=pl.Int64)
            for column, known in self.categories.items()
        ]
        return np.column_stack([column.to_numpy() for column in columns]).astype(np.int64)

    @cached_property
    def _index(self) -> list[dict[str, int]]:
        return [{value: i for i, value in enumerate(known)} for known in self.categories.values()]

    def encode(self, rows: Sequence[Sequence[str | None]]) -> np.ndarray:
        """`codes` for raw rows (one value per categorical column, in order) without a frame:
        the service's per-request path."""
        index = self._index
        return np.array(
            [[known.get(value, 0) for known, value in zip(index, row)] for row in rows], dtype=np.int64
        ).reshape(len(rows), len(index))

    def cardinalities(self) -> list[int]:
        return [len(known) for known in self.categories.values()]


def numeric_matrix(frame: pl.DataFrame, columns: list[str] = NUMERIC_FEATURES) -> np.ndarray:
    """Numeric features as float64, nulls as NaN (booleans become 0/1)."""
    return (
        frame.select(pl.col(column).cast(pl.Float64).fill_null(np.nan) for column in columns)
        .to_numpy()
        .astype(np.float64)
    )


def label_vector(frame: pl.DataFrame) -> np.ndarray:
    return frame[LABEL].cast(pl.Int8).to_numpy().astype(np.int64)


def lightgbm_frame(frame: pl.DataFrame, vocabulary: CategoryVocabulary):
    """A pandas frame for LightGBM: fixed-vocabulary pandas categoricals, float64 numerics."""
    import pandas as pd

    numeric = pd.DataFrame(numeric_matrix(frame), columns=NUMERIC_FEATURES)
    normalised = vocabulary.normalised(frame)
    categorical = pd.DataFrame(
        {
            column: pd.Categorical(normalised[column].to_list(), categories=known)
            for column, known in vocabulary.categories.items()
        }
    )
    return pd.concat([categorical, numeric], axis=1)


def model_input_frame(frame: pl.DataFrame):
    """The pandas frame a served model takes: raw category strings, numerics as float64.

    Casting every numeric to float keeps the MLflow signature stable when a column has nulls.
    """
    categorical = frame.select(pl.col(column).cast(pl.String) for column in CATEGORICAL_FEATURES)
    numeric = frame.select(pl.col(column).cast(pl.Float64) for column in NUMERIC_FEATURES)
    return pl.concat([categorical, numeric], how="horizontal").to_pandas()


def features_from_model_input(model_input) -> pl.DataFrame:
    """Inverse of `model_input_frame`: a pandas model input back to a polars features frame."""
    frame = pl.from_pandas(model_input)
    return frame.with_columns(
        *(pl.col(column).cast(pl.String) for column in CATEGORICAL_FEATURES),
        *(pl.col(column).cast(pl.Float64) for column in NUMERIC_FEATURES),
    )
