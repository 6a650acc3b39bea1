import math

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve as sk_calibration_curve

from ml_assets.models.metrics import (
    brier,
    calibration_curve,
    evaluate,
    expected_calibration_error,
    log_loss,
    pr_auc,
    roc_auc,
    slice_metrics,
    with_hour_band,
    worst_slice_gaps,
    write_calibration_plot,
)


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.3).astype(int)
    p = np.clip(0.3 + 0.25 * (y - 0.3) + rng.normal(0, 0.2, y.size), 0.001, 0.999)
    return y, p


def test_ranking_metrics_match_sklearn(scored):
    y, p = scored
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)


def test_ranking_metrics_match_sklearn_with_tied_scores(scored):
    y, p = scored
    tied = np.round(p, 1)
    assert roc_auc(y, tied) == pytest.approx(skm.roc_auc_score(y, tied), abs=1e-12)
    assert pr_auc(y, tied) == pytest.approx(skm.average_precision_score(y, tied), abs=1e-12)


def test_probability_metrics_match_sklearn(scored):
    y, p = scored
    assert brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-12)


def test_calibration_curve_matches_sklearn_uniform_bins(scored):
    y, p = scored
    observed, predicted = sk_calibration_curve(y, p, n_bins=10, strategy="uniform")
    curve = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(curve["observed_rate"].to_numpy(), observed)
    np.testing.assert_allclose(curve["mean_predicted"].to_numpy(), predicted)
    assert curve["count"].sum() == y.size


def test_expected_calibration_error_on_known_inputs():
    # bin 0.1-0.2 holds two rows predicted 0.15 with one positive: gap 0.35;
    # bin 0.9-1.0 holds two rows predicted 0.95 with two positives: gap 0.05
    y = [0, 1, 1, 1]
    p = [0.15, 0.15, 0.95, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.35 + 0.5 * 0.05)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_auc_is_nan_with_one_class():
    assert math.isnan(roc_auc([1, 1], [0.2, 0.4]))


def test_hour_bands_cover_the_day():
    bands = with_hour_band(pl.DataFrame({"sched_hour": [0, 5, 9, 10, 13, 14, 17, 18, 23]}))["hour_band"]
    assert bands.to_list() == ["00-04", "05-09", "05-09", "10-13", "10-13", "14-17", "14-17", "18-23", "18-23"]


def test_slice_metrics_find_the_worst_slice():
    rng = np.random.default_rng(0)
    rows = 600
    carrier = np.repeat(["AA", "UA", "DL"], rows // 3)
    y = (rng.random(rows) < 0.4).astype(int)
    informative = y * 0.5 + rng.random(rows) * 0.5
    # DL scores are pure noise: it must be the worst carrier
    p = np.where(carrier == "DL", rng.random(rows), informative)
    frame = pl.DataFrame(
        {
            "carrier": carrier,
            "origin": rng.choice(["JFK", "LGA"], rows),
            "sched_hour": rng.integers(5, 23, rows),
            "month": np.full(rows, 10),
            "label_disrupted": y.astype(bool),
        }
    )
    slices = slice_metrics(frame, p)
    carriers = slices.filter(pl.col("slice") == "carrier")
    assert sorted(carriers["value"].to_list()) == ["AA", "DL", "UA"]
    aa = carriers.filter(pl.col("value") == "AA").row(0, named=True)
    assert aa["roc_auc"] == pytest.approx(skm.roc_auc_score(y[carrier == "AA"], p[carrier == "AA"]))
    worst = worst_slice_gaps(slices, roc_auc(y, p)).filter(pl.col("slice") == "carrier").row(0, named=True)
    assert worst["worst_value"] == "DL"
    assert worst["gap"] == pytest.approx(roc_auc(y, p) - carriers.filter(pl.col("value") == "DL")["roc_auc"][0])


def test_evaluate_and_calibration_plot(features, tmp_path):
    p = np.full(features.height, 0.3)
    evaluation = evaluate(features, p)
    assert evaluation.metrics["roc_auc"] == 0.5
    assert set(evaluation.worst_slices["slice"]) == {"carrier", "origin", "hour_band", "month"}
    path = write_calibration_plot({"constant": evaluation.calibration}, tmp_path / "plots" / "calibration.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
