"""The drift reference of a model version: its training window's features and scores.

Computed once per version and stored (Delta tables keyed by `model_version`): a seeded sample of
the window with the model's score on each row, and the calibration of every monitored column (its
largest day-against-reference score over the window's days). The daily checks only read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, FEATURES_TABLE
from ml_assets.monitoring import thresholds
from ml_assets.monitoring.drift import calibrate, sample

REFERENCE_TABLE = "monitoring/drift_reference"
CALIBRATION_TABLE = "monitoring/drift_calibration"
VERSION_COLUMN = "model_version"
SCORE = "score"
MONITORED_FEATURES = [f for f in FEATURES if f not in thresholds.NOT_MONITORED]
CATEGORICAL = set(CATEGORICAL_FEATURES)


@dataclass(frozen=True)
class TrainingWindow:
    """The rows a registered version was trained on: days of a feature table at a Delta version."""

    table: str
    table_version: int
    first: date
    last: date


def training_window(registry, version: str) -> TrainingWindow:
    """Read from the version's MLflow run (`training_days` and `data_version.<table>` params)."""
    run_id = registry.client.get_model_version(registry.model_name, version).run_id
    params = registry.client.get_run(run_id).data.params
    first, last = (date.fromisoformat(d) for d in params["training_days"].split(".."))
    return TrainingWindow(FEATURES_TABLE, int(params[f"data_version.{FEATURES_TABLE}"]), first, last)


@dataclass(frozen=True)
class DriftReference:
    version: str
    rows: pl.DataFrame  # the sample: monitored features, the score, the date
    calibration: pl.DataFrame  # column, statistic, window_max, window_days (features and the score)


def build_reference(window_rows: pl.DataFrame, model) -> DriftReference:
    """Score the whole window, sample it, and calibrate every monitored column and the score."""
    scored = window_rows.select("date", *MONITORED_FEATURES).with_columns(
        pl.Series(SCORE, model.predict_proba(window_rows))  # a ScoringModel gives float64
    )
    rows = sample(scored, thresholds.REFERENCE_SAMPLE_ROWS, thresholds.REFERENCE_SEED)
    calibration = calibrate(rows, scored, [*MONITORED_FEATURES, SCORE], CATEGORICAL)
    return DriftReference(model.version, rows, calibration)


def save_reference(storage, reference: DriftReference, window: TrainingWindow) -> int:
    """Store both tables under the version; returns the reference table's Delta version."""
    storage.write_key(
        CALIBRATION_TABLE,
        reference.calibration.with_columns(
            window_first=pl.lit(window.first), window_last=pl.lit(window.last),
            features_version=pl.lit(window.table_version),
        ),  # fmt: skip
        VERSION_COLUMN,
        reference.version,
    )
    return storage.write_key(REFERENCE_TABLE, reference.rows, VERSION_COLUMN, reference.version)


def load_reference(storage, version: str) -> DriftReference | None:
    """The stored reference of `version`, or None when it was never computed."""
    if not (storage.exists(REFERENCE_TABLE) and storage.exists(CALIBRATION_TABLE)):
        return None
    rows = storage.scan(REFERENCE_TABLE).filter(pl.col(VERSION_COLUMN) == version).collect()
    calibration = storage.scan(CALIBRATION_TABLE).filter(pl.col(VERSION_COLUMN) == version).collect()
    if rows.is_empty() or calibration.is_empty():
        return None
    return DriftReference(version, rows, calibration)


def ensure_reference(storage, registry, version: str) -> tuple[DriftReference, bool]:
    """The stored reference of `version`, computed and stored first if missing; and whether it
    was computed now."""
    from ml_assets.models.scoring import load_scoring_model

    stored = load_reference(storage, version)
    if stored is not None:
        return stored, False
    window = training_window(registry, version)
    window_rows = storage.scan(window.table, window.first, window.last, version=window.table_version).collect()
    reference = build_reference(window_rows, load_scoring_model(registry, version))
    save_reference(storage, reference, window)
    return reference, True
