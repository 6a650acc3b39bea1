import numpy as np
import polars as pl
import pytest

from ml_assets.models.dataset import label_vector
from ml_assets.models.lgbm import LgbmModel, LgbmSearchConfig, train_lgbm
from ml_assets.models.metrics import classification_metrics

SMALL_SEARCH = LgbmSearchConfig(n_trials=5, max_boost_rounds=200, early_stopping_rounds=20, seed=11)


@pytest.fixture(scope="module")
def lgbm_model(train_and_test) -> LgbmModel:
    return train_lgbm(train_and_test[0], SMALL_SEARCH)


def test_lgbm_learns_the_planted_signal_out_of_time(lgbm_model, train_and_test):
    test = train_and_test[1]
    probabilities = lgbm_model.predict_proba(test)
    assert probabilities.shape == (test.height,)
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert classification_metrics(label_vector(test), probabilities)["roc_auc"] > 0.72
    search = lgbm_model.validation_metrics
    assert search["trials_completed"] + search["trials_pruned"] == SMALL_SEARCH.n_trials
    assert lgbm_model.best_iteration >= 1


def test_same_data_and_seed_give_the_same_model_and_metrics(lgbm_model, train_and_test):
    train, test = train_and_test
    again = train_lgbm(train, SMALL_SEARCH)
    assert again.params == lgbm_model.params
    assert again.best_iteration == lgbm_model.best_iteration
    y = label_vector(test)
    assert classification_metrics(y, again.predict_proba(test)) == classification_metrics(
        y, lgbm_model.predict_proba(test)
    )


def test_save_and_load_reproduce_the_predictions(lgbm_model, train_and_test, tmp_path):
    test = train_and_test[1]
    lgbm_model.save(tmp_path / "model")
    loaded = LgbmModel.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(test), lgbm_model.predict_proba(test))


def test_unseen_categories_and_missing_values_still_score(lgbm_model, train_and_test):
    probe = train_and_test[1].head(20).with_columns(
        pl.lit("NEW").alias("dest"), pl.lit(None, dtype=pl.Float64).alias("wx_temp")
    )
    assert np.all(np.isfinite(lgbm_model.predict_proba(probe)))


def test_the_search_reports_each_trial_of_n_with_the_best_so_far_and_the_time(train_and_test):
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm

    lines = []
    train_lgbm(train_and_test[0], LgbmSearchConfig(n_trials=3, max_boost_rounds=40, num_threads=1), progress=lines.append)
    assert lines[-1].startswith("LightGBM search: trial 3 of 3 complete, best ROC AUC 0.") and lines[-1].endswith(" s elapsed")
    assert 1 <= len(lines) <= 3  # at most one line every 10 s, and the last
