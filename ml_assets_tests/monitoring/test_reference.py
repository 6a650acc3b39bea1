"""The drift reference of a version, built from a window of synthetic flights: a seeded sample of
the window's rows with their scores, the same sample each time it is built, and the calibration
of every monitored column and the score."""

import numpy as np
import polars as pl

from ml_assets.monitoring.reference import MONITORED_FEATURES, SCORE, build_reference
from ml_assets_tests.models.conftest import synthetic_features


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
