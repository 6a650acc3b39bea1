import numpy as np
import polars as pl

from ml_assets.models.baselines import fit_logistic_baseline, fit_rate_baseline
from ml_assets.models.dataset import label_vector
from ml_assets.models.metrics import roc_auc


def test_rate_baseline_uses_the_most_specific_group_with_enough_flights():
    train = pl.DataFrame(
        {
            "carrier": ["AA"] * 4 + ["UA"] * 4,
            "origin": ["JFK"] * 8,
            "sched_hour": [8, 8, 9, 9, 8, 8, 8, 8],
            "label_disrupted": [True, True, False, False, False, False, False, True],
        }
    )
    baseline = fit_rate_baseline(train, min_group_rows=2)
    probe = pl.DataFrame({"carrier": ["AA", "UA", "UA", "B6"], "origin": ["JFK"] * 4, "sched_hour": [8, 8, 9, 7]})
    np.testing.assert_allclose(
        baseline.predict_proba(probe),
        [
            1.0,  # AA JFK 8: its own group
            0.25,  # UA JFK 8: its own group
            0.0,  # UA JFK 9 unseen: origin-hour JFK 9 (two AA flights, both on time)
            3 / 8,  # B6 JFK 7: no group knows it, overall rate
        ],
    )
    assert np.all(fit_rate_baseline(train, levels=()).predict_proba(probe) == 3 / 8)


def test_logistic_baseline_learns_the_planted_signal_and_handles_unseen_categories(train_and_test):
    train, test = train_and_test
    model = fit_logistic_baseline(train)
    unseen = test.with_columns(pl.lit("ZZ").alias("carrier"), pl.lit(None, dtype=pl.Float64).alias("wx_visib"))
    assert np.all(np.isfinite(model.predict_proba(unseen)))
    logistic_auc = roc_auc(label_vector(test), model.predict_proba(test))
    rate_auc = roc_auc(label_vector(test), fit_rate_baseline(train).predict_proba(test))
    assert logistic_auc > 0.7
    assert logistic_auc > rate_auc
    assert rate_auc > 0.5  # the planted carrier and hour effects are in its groups
