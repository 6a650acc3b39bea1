import numpy as np
import polars as pl
import pytest

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ml_assets.models.dataset import (
    UNKNOWN,
    CategoryVocabulary,
    InsufficientTrainingDataError,
    features_from_model_input,
    lightgbm_frame,
    model_input_frame,
    numeric_matrix,
    require_training_rows,
    split_by_time,
)


def test_split_by_time_puts_the_latest_rows_in_validation(features):
    shuffled = features.sample(fraction=1.0, shuffle=True, seed=1)
    train, validation = split_by_time(shuffled, validation_fraction=0.25)
    assert train.height + validation.height == features.height
    assert train["sched_dep_utc"].max() < validation["sched_dep_utc"].min()
    assert validation.height == pytest.approx(0.25 * features.height, abs=5)


def test_vocabulary_maps_unseen_and_null_categories_to_unknown(features):
    vocabulary = CategoryVocabulary.fit(features.filter(pl.col("carrier") != "WN"))
    probe = features.head(3).with_columns(
        pl.Series("carrier", ["WN", None, "UA"]), pl.Series("origin", ["JFK", "XXX", "LGA"])
    )
    normalised = vocabulary.normalised(probe)
    assert normalised["carrier"].to_list() == [UNKNOWN, UNKNOWN, "UA"]
    assert normalised["origin"].to_list() == ["JFK", UNKNOWN, "LGA"]
    codes = vocabulary.codes(probe)
    assert codes.shape == (3, len(CATEGORICAL_FEATURES))
    assert codes[0, 0] == 0 and codes[2, 0] == vocabulary.categories["carrier"].index("UA")


def test_vocabulary_min_count_sends_rare_values_to_unknown():
    frame = pl.DataFrame({"carrier": ["AA"] * 5 + ["ZZ"], "origin": ["JFK"] * 6, "dest": ["BOS"] * 6})
    vocabulary = CategoryVocabulary.fit(frame, min_count=2)
    assert vocabulary.categories["carrier"] == [UNKNOWN, "AA"]


def test_lightgbm_frame_keeps_category_codes_stable_across_frames(features):
    vocabulary = CategoryVocabulary.fit(features)
    first = lightgbm_frame(features.head(50), vocabulary)
    second = lightgbm_frame(features.tail(50), vocabulary)
    for column in CATEGORICAL_FEATURES:
        assert list(first[column].cat.categories) == list(second[column].cat.categories)
    assert list(first.columns) == CATEGORICAL_FEATURES + NUMERIC_FEATURES


def test_numeric_matrix_turns_nulls_into_nan(features):
    values = numeric_matrix(features)
    assert values.dtype == np.float64
    gust = NUMERIC_FEATURES.index("wx_wind_gust")
    assert np.isnan(values[:, gust]).sum() == features["wx_wind_gust"].null_count() > 0


def test_model_input_round_trips_to_the_same_features(features):
    sample = features.head(20)
    restored = features_from_model_input(model_input_frame(sample))
    np.testing.assert_array_equal(numeric_matrix(restored), numeric_matrix(sample))
    assert restored["carrier"].to_list() == sample["carrier"].to_list()


def test_require_training_rows_rejects_empty_small_and_single_class_windows(features):
    with pytest.raises(InsufficientTrainingDataError, match="0 rows"):
        require_training_rows(features.head(0), min_rows=100)
    with pytest.raises(InsufficientTrainingDataError, match="50 rows"):
        require_training_rows(features.head(50), min_rows=100)
    with pytest.raises(InsufficientTrainingDataError, match="0 disrupted"):
        require_training_rows(features.filter(~pl.col("label_disrupted")), min_rows=100)
    require_training_rows(features, min_rows=100)
