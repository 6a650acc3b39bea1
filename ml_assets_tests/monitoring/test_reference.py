"""The drift reference of a version, built from a window of synthetic flights: a seeded sample of
the window's rows with their scores, the same sample each time it is built, the calibration of
every monitored column and the score; stored per version in a real Delta lake and read back."""

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

from ml_assets.monitoring.reference import (
    MONITORED_FEATURES, SCORE, TrainingWindow, build_reference, load_reference, save_reference,
)  # fmt: skip
from ml_assets.resources.storage import DeltaStorage
from ml_assets_tests.models.conftest import synthetic_features

WINDOW = TrainingWindow("features/flight_features", table_version=4, first=date(2013, 3, 1), last=date(2013, 3, 3))


class VisibilityModel:
    """Scores from one feature: enough to give the reference a score column to calibrate."""

    version = "7"

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return 1 / (1 + np.exp(frame.get_column("wx_visib").to_numpy()))


def test_the_reference_is_the_same_seeded_sample_each_time_it_is_built():
    window = synthetic_features(rows=6000, days=3)
    first, again = build_reference(window, VisibilityModel()), build_reference(window, VisibilityModel())

    assert first.version == "7" and first.rows.height == 5_000
    assert first.rows.equals(again.rows)
    assert first.rows.columns == ["date", *MONITORED_FEATURES, SCORE]
    assert first.calibration.get_column("column").to_list() == [*MONITORED_FEATURES, SCORE]
    assert set(first.calibration.get_column("window_days")) == {3}


@pytest.fixture(scope="module")
def reference():
    return build_reference(synthetic_features(rows=1500, days=3), VisibilityModel())


def test_a_stored_reference_is_read_back_with_the_window_it_came_from(tmp_path, reference):
    storage = DeltaStorage(base_uri=str(tmp_path))
    save_reference(storage, reference, WINDOW)
    loaded = load_reference(storage, "7")

    assert loaded.version == "7" and loaded.rows.drop("model_version").equals(reference.rows)
    provenance = loaded.calibration.select("window_first", "window_last", "features_version").unique().to_dicts()
    assert provenance == [{"window_first": date(2013, 3, 1), "window_last": date(2013, 3, 3), "features_version": 4}]
    assert loaded.calibration.height == reference.calibration.height
    assert load_reference(storage, "8") is None  # another version's reference was never computed


def test_a_reference_stored_halfway_counts_as_never_computed(tmp_path, reference):
    storage = DeltaStorage(base_uri=str(tmp_path))
    storage.write_key("monitoring/drift_calibration", reference.calibration, "model_version", "7")
    assert load_reference(storage, "7") is None  # the first reference: its rows' table is missing

    save_reference(storage, replace(reference, version="6"), WINDOW)
    storage.write_key("monitoring/drift_calibration", reference.calibration, "model_version", "7")
    assert load_reference(storage, "7") is None  # a later one: the tables exist, its rows do not
    assert load_reference(storage, "6") is not None
