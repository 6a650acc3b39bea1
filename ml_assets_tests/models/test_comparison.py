import numpy as np
import polars as pl
import pytest

from ml_assets.models.comparison import compare_models, registered_name
from ml_assets.models.dataset import label_vector


def _oracle(frame: pl.DataFrame) -> np.ndarray:
    """A near-perfect scorer: the label plus a little noise."""
    return label_vector(frame) * 0.8 + np.random.default_rng(0).random(frame.height) * 0.1


def _constant(frame: pl.DataFrame) -> np.ndarray:
    return np.full(frame.height, 0.3)


def test_the_best_candidate_is_the_challenger_next_to_the_champion_and_baselines(features):
    train, test = features.head(2000), features.tail(1000)
    candidates = {registered_name("torch_tabular", "4"): _constant, registered_name("lightgbm", "5"): _oracle}

    comparison = compare_models(test, train, candidates, (registered_name("champion", "2"), _constant), 30)

    assert comparison.challenger == "lightgbm v5" and comparison.challenger_version == "5"
    assert comparison.roles == {
        "torch_tabular v4": "candidate", "lightgbm v5": "challenger", "champion v2": "champion",
        "baseline_rate": "baseline", "logistic": "baseline",
    }  # fmt: skip
    rows = comparison.summary_rows(quality_passed=True)
    assert rows.select("model", "role", "model_version").rows() == [
        ("torch_tabular v4", "candidate", "4"), ("lightgbm v5", "challenger", "5"), ("champion v2", "champion", "2"),
        ("baseline_rate", "baseline", None), ("logistic", "baseline", None),
    ]  # fmt: skip
    assert rows["quality_passed"].all()
    auc = dict(zip(rows["model"], rows["roc_auc"]))
    assert auc["lightgbm v5"] > 0.99 and auc["champion v2"] == 0.5
    assert 0.6 < auc["logistic"] < auc["lightgbm v5"]  # fitted on train, with the planted signal


def test_without_a_champion_only_candidates_and_baselines_are_scored(features):
    comparison = compare_models(features.tail(500), features.head(2000), {"lightgbm v1": _constant}, None, 30)

    assert set(comparison.roles.values()) == {"challenger", "baseline"}


def test_no_candidates_is_an_error(features):
    with pytest.raises(ValueError, match="no candidate"):
        compare_models(features, features, {}, None, 30)



def test_every_model_is_sliced_with_the_slice_size_asked_for(features):
    comparison = compare_models(features.tail(1000), features.head(2000), {"lightgbm v1": _oracle}, None, 200)

    for evaluation in comparison.evaluations.values():  # this window has slices of 124 to 1,000 rows
        assert evaluation.slices.height > 0 and evaluation.slices["rows"].min() >= 200
