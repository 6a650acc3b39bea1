import zlib

import numpy as np
import polars as pl
import pytest

from ml_assets.models.baselines import fit_logistic_baseline
from ml_assets.models.quality import (
    all_passed,
    check_directional,
    check_invariance,
    check_minimum_auc,
    run_quality_checks,
    DIRECTIONAL_EXPECTATIONS,
)


@pytest.fixture(scope="module")
def good_model(train_and_test):
    return fit_logistic_baseline(train_and_test[0])


def test_a_model_of_the_planted_signal_passes_every_check(good_model, train_and_test):
    results = run_quality_checks(good_model.predict_proba, train_and_test[1], min_auc=0.7)
    assert [r.name for r in results] == [
        "invariance_to_identifiers",
        "lower_visibility_raises_risk",
        "recent_origin_delays_raise_risk",
        "minimum_roc_auc",
    ]
    assert all_passed(results), results


def test_a_model_that_reads_flight_id_fails_invariance(good_model, train_and_test):
    def leaks_flight_id(frame: pl.DataFrame) -> np.ndarray:
        id_noise = np.array([zlib.crc32(i.encode()) % 100 for i in frame["flight_id"]]) / 1000
        return np.clip(good_model.predict_proba(frame) + id_noise, 0, 1)

    result = check_invariance(leaks_flight_id, train_and_test[1])
    assert not result.passed
    assert result.details["rows_changed"] > 0
    assert result.details["max_abs_score_change"] > 0.01


def test_a_model_that_lowers_risk_with_origin_delays_fails_the_directional_check(train_and_test):
    def backwards(frame: pl.DataFrame) -> np.ndarray:
        delay = frame["origin_recent_mean_dep_delay"].fill_null(0).to_numpy()
        return 1 / (1 + np.exp(0.05 * delay))

    test = train_and_test[1]
    visibility, delays = DIRECTIONAL_EXPECTATIONS
    assert not check_directional(backwards, test, delays).passed
    # the same model ignores visibility: no increase is not a pass either
    ignores_visibility = check_directional(backwards, test, visibility)
    assert not ignores_visibility.passed and ignores_visibility.details["increase"] == 0


def test_minimum_auc_fails_a_random_model(train_and_test):
    test = train_and_test[1]
    rng = np.random.default_rng(0)
    result = check_minimum_auc(lambda frame: rng.random(frame.height), test, min_auc=0.6)
    assert not result.passed
    assert result.details["roc_auc"] == pytest.approx(0.5, abs=0.07)


@pytest.mark.parametrize("label_column", ["label_disrupted", "label_arr_delay"])
def test_a_model_that_reads_a_label_column_fails_invariance(good_model, train_and_test, label_column):
    """A leaked label is what the invariance check exists to catch: both label columns are
    randomised, so a model reading either one moves its scores."""

    def reads_the_label(frame: pl.DataFrame) -> np.ndarray:
        leaked = frame[label_column].cast(pl.Float64).fill_null(0.0).to_numpy()
        return np.clip(good_model.predict_proba(frame) + 0.001 * np.tanh(leaked), 0, 1)

    result = check_invariance(reads_the_label, train_and_test[1])
    assert not result.passed and result.details["rows_changed"] > 0


def test_the_recent_delay_scenario_makes_every_recent_departure_an_hour_later_and_late():
    _, delays = DIRECTIONAL_EXPECTATIONS
    frame = pl.DataFrame({
        "origin_recent_mean_dep_delay": [10.0, None], "origin_last_hour_mean_dep_delay": [-5.0, None],
        "carrier_origin_recent_mean_dep_delay": [0.0, 3.0], "origin_recent_late_share": [0.2, None],
    })  # fmt: skip
    assert frame.with_columns(*delays.changes).to_dict(as_series=False) == {
        "origin_recent_mean_dep_delay": [70.0, None], "origin_last_hour_mean_dep_delay": [55.0, None],
        "carrier_origin_recent_mean_dep_delay": [60.0, 63.0], "origin_recent_late_share": [1.0, None],
    }  # fmt: skip


def test_the_invariance_check_refuses_a_perturbation_that_touches_a_feature(monkeypatch, good_model, train_and_test):
    """Were the perturbation ever to move a feature, a moved score would prove nothing: it stops."""
    import ml_assets.models.quality as quality

    monkeypatch.setattr(quality, "reformat_identifiers", lambda frame: frame.with_columns(pl.col("wx_visib") + 1))
    with pytest.raises(ValueError, match="wx_visib"):
        check_invariance(good_model.predict_proba, train_and_test[1])


def padded_id_scores(frame: pl.DataFrame) -> np.ndarray:
    """0.75 for a flight whose id was padded (the invariance perturbation), 0.5 otherwise."""
    return np.where(frame["flight_id"].str.starts_with(" ").to_numpy(), 0.75, 0.5)


def test_invariance_holds_up_to_its_tolerance_inclusive_and_reports_what_moved(train_and_test):
    test = train_and_test[1]
    at_limit = check_invariance(padded_id_scores, test, tolerance=0.25)
    assert at_limit.passed
    assert at_limit.details == {
        "max_abs_score_change": 0.25, "rows_changed": 0, "tolerance": 0.25,
        "perturbation": "flight_id lower-cased and padded; labels randomised",
    }  # fmt: skip
    above = check_invariance(padded_id_scores, test, tolerance=0.2499)
    assert not above.passed and above.details["rows_changed"] == test.height


def test_invariance_on_no_rows_passes_with_no_change(train_and_test):
    result = check_invariance(padded_id_scores, train_and_test[1].head(0))
    assert result.passed and result.details["max_abs_score_change"] == 0.0


def test_the_directional_and_auc_checks_report_their_measures(train_and_test):
    test = train_and_test[1]
    visibility, _ = DIRECTIONAL_EXPECTATIONS

    def fog_risk(frame: pl.DataFrame) -> np.ndarray:
        return np.where(frame["wx_visib"].fill_null(10.0).to_numpy() < 5, 0.8, 0.2)

    directional = check_directional(fog_risk, test, visibility)
    before, after = float(np.mean(fog_risk(test))), float(np.mean(fog_risk(test.with_columns(*visibility.changes))))
    assert directional.details == {
        "mean_risk_before": before, "mean_risk_after": after, "increase": after - before, "min_increase": 0.0,
    }  # fmt: skip

    def knows_the_label(frame: pl.DataFrame) -> np.ndarray:
        return frame["label_disrupted"].cast(pl.Float64).to_numpy()

    perfect = check_minimum_auc(knows_the_label, test, min_auc=1.0)
    assert perfect.passed  # the minimum itself passes
    assert perfect.details == {"roc_auc": 1.0, "min_roc_auc": 1.0, "rows": test.height}


def test_the_checks_score_the_unchanged_frame_once(good_model, train_and_test):
    calls = []

    def counted(frame: pl.DataFrame) -> np.ndarray:
        calls.append(frame.height)
        return good_model.predict_proba(frame)

    run_quality_checks(counted, train_and_test[1], min_auc=0.5)
    assert len(calls) == 1 + 1 + len(DIRECTIONAL_EXPECTATIONS)  # the frame, its perturbation, each scenario
