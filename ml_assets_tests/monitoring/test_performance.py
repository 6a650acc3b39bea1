"""Live performance on hand-made labelled predictions: the day's and the rolling week's metrics
per model version, the verdict against the model's own evaluation at its bounds (the allowed drop
and the minimum labelled rows), and which evaluation row a version is compared with."""

from datetime import date, timedelta

import polars as pl
import pytest

from ml_assets.flights.feature_spec import LABEL
from ml_assets.monitoring.performance import (
    day_metrics, degradation, evaluated_roc_auc, labelled, metrics_of, rolling_days,
)  # fmt: skip

DAY = date(2013, 6, 10)


def predictions(day: date, version: str, labels: list[bool], scores: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"date": [day] * len(labels), "model_version": [version] * len(labels), LABEL: labels, "score": scores}
    )


def test_predictions_get_the_label_of_their_flight_and_unlabelled_ones_are_left_out():
    scored = pl.DataFrame({"flight_id": ["a", "b", "c"], "score": [0.1, 0.2, 0.3]})
    features = pl.DataFrame({"flight_id": ["c", "a", "z"], LABEL: [True, False, True], "carrier": ["UA", "AA", "B6"]})
    assert labelled(scored, features).sort("flight_id").to_dicts() == [
        {"flight_id": "a", "score": 0.1, LABEL: False},
        {"flight_id": "c", "score": 0.3, LABEL: True},
    ]


def test_metrics_of_labelled_rows():
    rows = predictions(DAY, "3", [True, False, True, False], [0.9, 0.1, 0.4, 0.6])
    measured = metrics_of(rows)

    assert measured["rows"] == 4 and measured["disruption_rate"] == 0.5 and measured["mean_score"] == 0.5
    assert measured["roc_auc"] == 0.75 and measured["pr_auc"] > 0.5
    assert measured["brier"] == pytest.approx((0.01 + 0.01 + 0.36 + 0.36) / 4)
    assert measured["log_loss"] > 0 and 0 <= measured["ece"] <= 1


def test_without_both_classes_the_ranking_metrics_are_none_but_the_counts_stay():
    measured = metrics_of(predictions(DAY, "3", [False, False], [0.2, 0.4]))
    assert measured == {"rows": 2, "disruption_rate": 0.0, "mean_score": pytest.approx(0.3),
                        "roc_auc": None, "pr_auc": None, "brier": None, "log_loss": None, "ece": None}  # fmt: skip
    assert metrics_of(predictions(DAY, "3", [True, True], [0.2, 0.4]))["roc_auc"] is None
    assert metrics_of(predictions(DAY, "3", [], [])) == dict.fromkeys(measured, None) | {"rows": 0}


def test_the_rolling_window_is_the_day_and_the_six_before_it():
    assert rolling_days(DAY) == (date(2013, 6, 4), DAY)


def test_day_metrics_per_version_in_version_order_with_its_own_rolling_week():
    perfect = ([True, False], [0.9, 0.1])
    inverted = ([True, False], [0.1, 0.9])  # eight days before: outside the window, would spoil it
    rows = pl.concat(
        [predictions(DAY - timedelta(days=n), "3", *perfect) for n in range(7)]
        + [predictions(DAY - timedelta(days=7), "3", *inverted), predictions(DAY, "10", *inverted)]
        + [predictions(DAY + timedelta(days=1), "3", *inverted)]  # the next day: not in the window either
    )
    daily = day_metrics(rows[::-1], DAY).to_dicts()

    assert [(d["date"], d["model_version"], d["rows"]) for d in daily] == [(DAY, "3", 2), (DAY, "10", 2)]
    assert (daily[0]["rolling_days"], daily[0]["rolling_rows"], daily[0]["rolling_roc_auc"]) == (7, 14, 1.0)
    assert (daily[1]["roc_auc"], daily[1]["rolling_days"], daily[1]["rolling_rows"]) == (0.0, 1, 2)


def test_a_drop_of_more_than_five_percent_below_the_evaluation_is_degraded():
    at_bound = degradation(0.7467, 500, evaluated_roc_auc=0.786)  # exactly 5 %
    above = degradation(0.7466, 500, evaluated_roc_auc=0.786)

    assert at_bound.relative_drop == 0.05 and at_bound.degraded is False
    assert above.degraded is True and (above.rolling_roc_auc, above.evaluated_roc_auc) == (0.7466, 0.786)
    assert above.reason == "rolling ROC AUC 0.7466 is +5.0% below the evaluation's 0.7860: more than the allowed 5%"
    assert at_bound.reason.endswith("not more than the allowed 5%")
    assert degradation(0.80, 500, evaluated_roc_auc=0.786).degraded is False  # better than evaluated


def test_fewer_than_500_labelled_rows_give_no_verdict():
    too_few = degradation(0.5, 499, evaluated_roc_auc=0.8)
    assert too_few.degraded is None and too_few.relative_drop is None
    assert (too_few.rolling_roc_auc, too_few.evaluated_roc_auc) == (0.5, 0.8)  # shown on the check
    assert too_few.reason == "499 labelled rows in the rolling window, fewer than 500"
    assert degradation(0.5, 500, evaluated_roc_auc=0.8).degraded is True


def test_no_verdict_without_an_evaluation_or_a_rolling_roc_auc():
    unevaluated = degradation(0.5, 5_000, evaluated_roc_auc=None)
    assert (unevaluated.degraded, unevaluated.rolling_roc_auc, unevaluated.evaluated_roc_auc) == (None, 0.5, None)
    assert unevaluated.reason == "the model has no out-of-time evaluation to compare with"
    assert degradation(None, 5_000, evaluated_roc_auc=0.8).degraded is None  # one class only in the window


def test_a_version_is_compared_with_its_own_first_evaluation_as_a_candidate_or_challenger():
    evaluations = pl.DataFrame(
        {
            "week": ["2013-05-20", "2013-05-13", "2013-05-13", "2013-05-27", "2013-05-13"],
            "model_version": ["5", "5", "4", "5", None],
            "role": ["champion", "challenger", "candidate", "candidate", "baseline"],
            "roc_auc": [0.70, 0.78, 0.74, 0.71, 0.65],
        }
    )
    assert evaluated_roc_auc(evaluations, "5") == 0.78
    assert evaluated_roc_auc(evaluations, "4") == 0.74
    assert evaluated_roc_auc(evaluations, "6") is None
    assert evaluated_roc_auc(evaluations.filter(pl.col("role") == "champion"), "5") is None
