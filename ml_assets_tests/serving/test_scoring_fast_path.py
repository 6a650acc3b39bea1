"""The service's fast scoring path (raw rows, no frame) gives the scores `predict_proba` gives."""

import numpy as np
import polars as pl
import pytest

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES
from ml_assets.models.dataset import numeric_matrix
from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
from ml_assets.models.scoring import ScoringModel
from ml_assets.models.torch_tabular import TorchTrainConfig, train_torch_tabular
from ml_assets_tests.models.conftest import synthetic_features


@pytest.fixture(scope="module")
def frames():
    features = synthetic_features(rows=3000, days=30)
    scored = features.tail(400).with_columns(
        # unseen and missing categories, missing numerics: the rows a service meets
        carrier=pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.lit("ZZ")).otherwise(pl.col("carrier")),
        dest=pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col("dest")),
        wx_visib=pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("wx_visib")),
    )
    return features, scored


@pytest.fixture(scope="module", params=["lightgbm", "torch_tabular"])
def scoring_model(request, frames) -> ScoringModel:
    features, _ = frames
    if request.param == "lightgbm":
        model = train_lgbm(features, LgbmSearchConfig(n_trials=1, max_boost_rounds=60, num_threads=1))
    else:
        model = train_torch_tabular(features, TorchTrainConfig(max_epochs=2, num_threads=1))
    return ScoringModel("flight_disruption", "1", model.KIND, model)


def test_vectors_and_frames_give_the_same_scores(scoring_model, frames):
    _, scored = frames
    categorical = scored.select(CATEGORICAL_FEATURES).rows()

    from_frame = scoring_model.predict_proba(scored)
    from_vectors = scoring_model.predict_vectors(categorical, numeric_matrix(scored))

    assert from_frame.shape == from_vectors.shape == (scored.height,)
    assert np.all((from_vectors > 0) & (from_vectors < 1))
    np.testing.assert_allclose(from_vectors, from_frame, rtol=0, atol=1e-12)
    assert np.ptp(from_vectors) > 0.05  # the rows differ, so a constant output would not pass


def test_one_row_scores_like_the_same_row_in_a_batch(scoring_model, frames):
    _, scored = frames
    categorical = scored.select(CATEGORICAL_FEATURES).rows()
    numeric = numeric_matrix(scored)

    batch = scoring_model.predict_vectors(categorical, numeric)
    singles = [scoring_model.predict_vectors([categorical[i]], numeric[i : i + 1])[0] for i in range(25)]

    # the network computes in float32, whose batched matrix products may round differently
    np.testing.assert_allclose(singles, batch[:25], rtol=0, atol=1e-6)


def test_unknown_and_missing_categories_encode_as_unknown(scoring_model):
    vocabulary = scoring_model.model.vocabulary
    known = vocabulary.categories["carrier"][1]

    codes = vocabulary.encode([(known, "JFK", None), ("ZZ", "NOPE", "ORD")])

    assert codes.shape == (2, len(CATEGORICAL_FEATURES))
    assert codes[0, 0] == vocabulary.categories["carrier"].index(known) > 0
    assert codes[0, 2] == 0 and codes[1, 0] == 0 and codes[1, 1] == 0
    assert vocabulary.encode([]).shape == (0, len(CATEGORICAL_FEATURES))
