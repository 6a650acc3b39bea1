"""The drift computations on small frames of known distributions: Evidently's statistics per
column, the calibration over the window's days, the judgement against the band with the values
of its thresholds at their bounds, the severities, the results table and the HTML report."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from ml_assets.monitoring.drift import (
    calibrate, check_day, deciding_statistic, drift_scores, drift_table_markdown, feature_severity, judge, recent_days,
    sample, score_severity, write_html_report,
)  # fmt: skip
from ml_assets.monitoring.reference import DriftReference

DAY = date(2013, 5, 1)
CATEGORICAL = {"carrier"}


def flights(rows: int, shift: float = 0.0, carriers=("UA", "AA", "B6"), seed: int = 0, day: date = DAY) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {"date": [day] * rows, "delay": rng.normal(shift, 1.0, rows), "carrier": rng.choice(list(carriers), rows)}
    )


def scores(values: dict[str, float]) -> pl.DataFrame:
    schema = {"column": pl.String, "value": pl.Float64}
    return pl.DataFrame({"column": list(values), "value": list(values.values())}, schema=schema)


def calibration(window_max: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"column": list(window_max), "window_max": list(window_max.values())})


def recent(values_by_day: list[float], column: str = "delay") -> pl.DataFrame:
    days = [DAY - timedelta(days=n + 1) for n in range(len(values_by_day))]
    schema = {"date": pl.Date, "column": pl.String, "value": pl.Float64}
    return pl.DataFrame({"date": days, "column": [column] * len(days), "value": values_by_day}, schema=schema)


NO_RECENT = recent([])


def by_column(frame: pl.DataFrame) -> dict[str, dict]:
    return frame.rows_by_key("column", named=True, unique=True)


def test_numeric_columns_are_decided_by_wasserstein_and_categorical_ones_by_psi():
    assert deciding_statistic("delay", CATEGORICAL) == "wasserstein"
    assert deciding_statistic("carrier", CATEGORICAL) == "psi"


def test_a_shifted_numeric_column_and_a_collapsed_categorical_score_far_from_a_like_day():
    reference = flights(3000)
    columns = ["delay", "carrier"]
    like = by_column(drift_scores(reference, flights(800, seed=1), columns, CATEGORICAL))
    unlike = by_column(drift_scores(reference, flights(800, shift=1.0, carriers=("UA",), seed=1), columns, CATEGORICAL))

    assert like["delay"]["statistic"] == "wasserstein" and like["carrier"]["statistic"] == "psi"
    assert like["delay"]["value"] == like["delay"]["wasserstein"] < 0.1  # normed by the reference's deviation
    assert unlike["delay"]["value"] == unlike["delay"]["wasserstein"] == pytest.approx(1.0, abs=0.1)
    assert like["delay"]["ks_p_value"] > 0.01 and unlike["delay"]["ks_p_value"] < 1e-6
    assert like["delay"]["psi"] < 0.1 < unlike["delay"]["psi"]
    assert like["carrier"]["value"] == like["carrier"]["psi"] < 0.1 < 1.0 < unlike["carrier"]["value"]
    assert like["carrier"]["ks_p_value"] is None and like["carrier"]["wasserstein"] is None  # PSI alone
    assert like["delay"]["current_rows"] == unlike["carrier"]["current_rows"] == 800
    assert like["delay"]["note"] is None


def test_a_categorical_column_with_many_categories_is_counted_per_category():
    airports = [f"A{n:02d}" for n in range(40)]  # like `dest`: about a hundred values
    reference = flights(3000, carriers=airports)
    like = by_column(drift_scores(reference, flights(800, carriers=airports, seed=1), ["carrier"], CATEGORICAL))
    unlike = by_column(drift_scores(reference, flights(800, carriers=airports[:4], seed=1), ["carrier"], CATEGORICAL))
    assert like["carrier"]["value"] == like["carrier"]["psi"] < 0.1 < 1.0 < unlike["carrier"]["value"]


def test_deciding_only_computes_the_deciding_statistic_alone():
    scored = drift_scores(flights(500), flights(200, seed=1), ["delay"], CATEGORICAL, deciding_only=True).row(0, named=True)
    assert scored["wasserstein"] == scored["value"] is not None
    assert scored["psi"] is None and scored["ks_p_value"] is None


def test_missing_and_non_finite_values_are_left_out_and_an_empty_side_is_named():
    reference = flights(500)
    current = pl.DataFrame({"delay": [0.1, float("inf"), float("nan"), None, -0.2], "carrier": [None] * 5})
    scored = by_column(drift_scores(reference, current, ["carrier", "delay"], CATEGORICAL))
    no_reference = drift_scores(reference.with_columns(delay=None), current, ["delay"], CATEGORICAL).row(0, named=True)

    assert scored["delay"]["current_rows"] == 2 and scored["delay"]["value"] is not None
    empty = {"value": None, "current_rows": 0, "note": "no values in the current day"}
    assert scored["carrier"] == scored["carrier"] | empty
    assert no_reference["value"] is None and no_reference["note"] == "no values in the reference"


def test_calibration_keeps_each_columns_largest_day_score_over_the_window():
    reference = flights(2000)
    days = [flights(300, shift=s, seed=n + 1, day=DAY + timedelta(days=n)) for n, s in enumerate([0.0, 0.8, 0.3])]
    calibrated = calibrate(reference, pl.concat(days), ["delay", "carrier"], CATEGORICAL)
    each = [drift_scores(reference, day, ["delay"], CATEGORICAL).item(0, "value") for day in days]

    delay = calibrated.row(by_predicate=pl.col("column") == "delay", named=True)
    assert delay == {"column": "delay", "statistic": "wasserstein", "window_max": max(each), "window_days": 3}
    assert max(each) == each[1]
    assert calibrated.get_column("column").to_list() == ["delay", "carrier"]


def test_a_column_drifts_only_above_twice_its_window_range():
    window = calibration(dict.fromkeys(["at", "above", "below"], 0.1))
    judged = judge(scores({"at": 0.2, "above": 0.2001, "below": 0.05}), window, NO_RECENT)
    rows = by_column(judged)

    assert rows["at"]["band"] == 0.1 and rows["at"]["ratio"] == pytest.approx(2.0)
    assert {c: r["drifted"] for c, r in rows.items()} == {"at": False, "above": True, "below": False}


def test_a_column_with_no_band_has_no_ratio_and_does_not_drift():
    judged = judge(scores({"flat": 0.5, "uncalibrated": 0.5}), calibration({"flat": 0.0}), NO_RECENT)
    assert judged.get_column("ratio").to_list() == [None, None]
    assert judged.get_column("drifted").to_list() == [False, False]


def test_the_band_follows_the_median_of_three_or_more_recent_days():
    window = calibration({"delay": 0.1})
    three_days = recent([0.3, 0.5, 10.0])  # median 0.5, mean 3.6
    two_days = recent([0.5, 0.5])

    with_three = judge(scores({"delay": 1.0}), window, three_days).row(0, named=True)
    above = judge(scores({"delay": 1.01}), window, three_days).row(0, named=True)
    with_two = judge(scores({"delay": 1.0}), window, two_days).row(0, named=True)
    lower_recent = judge(scores({"delay": 0.3}), window, recent([0.05, 0.05, 0.05])).row(0, named=True)

    assert with_three["recent_median"] == with_three["band"] == 0.5 and not with_three["drifted"]
    assert above["drifted"]
    assert with_two["recent_median"] is None and with_two["band"] == 0.1 and with_two["drifted"]  # too few days
    assert lower_recent["band"] == 0.1 and lower_recent["drifted"]  # the window's range is the floor


def test_recent_scores_of_another_column_do_not_move_the_band():
    judged = judge(scores({"delay": 1.0}), calibration({"delay": 0.1}), recent([0.5, 0.5, 0.5], column="carrier"))
    assert judged.row(0, named=True)["band"] == 0.1


def test_the_recent_band_is_the_week_before_the_day():
    assert recent_days(DAY) == (date(2013, 4, 24), date(2013, 4, 30))


def test_a_day_is_checked_against_the_stored_calibration_of_the_columns_asked_for():
    window = pl.concat([flights(300, seed=n + 1, day=DAY - timedelta(days=n + 1)) for n in range(3)])
    reference = DriftReference("7", flights(2000), calibrate(flights(2000), window, ["delay", "carrier"], {"carrier"}))
    shifted = flights(300, shift=3.0, seed=9)

    judged, severity = check_day(reference, shifted, ["delay"], NO_RECENT, feature_severity)
    row = judged.row(0, named=True)
    assert judged.height == 1 and row["column"] == "delay" and row["drifted"] and severity == "WARN"
    assert row["window_max"] == reference.calibration.row(0, named=True)["window_max"]
    _, calm = check_day(reference, flights(300, seed=10), ["delay", "carrier"], NO_RECENT, feature_severity)
    assert calm is None


def drifted(flags: list[bool]) -> pl.DataFrame:
    return pl.DataFrame({"drifted": flags}, schema={"drifted": pl.Boolean})


def test_one_drifted_feature_warns_and_two_are_an_error():
    assert feature_severity(drifted([False, False])) is None
    assert feature_severity(drifted([True, False])) == "WARN"
    assert feature_severity(drifted([True, True, False])) == "ERROR"


def test_the_score_drifting_past_twice_its_band_is_an_error():
    def ratio(*values):
        return pl.DataFrame({"ratio": list(values)}, schema={"ratio": pl.Float64})

    assert score_severity(ratio(2.0)) is None
    assert score_severity(ratio(2.01)) == "ERROR"
    assert score_severity(ratio(None)) is None
    assert score_severity(ratio()) is None


def test_the_results_table_lists_drifted_columns_first_then_by_ratio():
    window = calibration({"calm": 0.1, "drifted": 0.1, "busy": 0.1})  # "flat": no band
    judged = judge(scores({"calm": 0.1, "drifted": 0.5, "flat": 0.1, "busy": 0.15}), window, NO_RECENT).with_columns(
        statistic=pl.lit("wasserstein"), psi=pl.lit(float("nan")), ks_p_value=pl.lit(0.012345), note=pl.lit(None, pl.String)
    )

    lines = drift_table_markdown(judged).splitlines()
    assert lines[0] == "| column | drifted | statistic | value | band | ratio | PSI | KS p | note |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|---|"
    assert lines[2] == "| drifted | **yes** | wasserstein | 0.5 | 0.1 | 5 |  | 0.0123 |  |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| drifted", "| busy", "| calm", "| flat"]
    assert lines[-1] == "| flat | no | wasserstein | 0.1 | 0 |  |  | 0.0123 |  |"
    assert len(drift_table_markdown(judged, limit=2).splitlines()) == 4
    many = pl.concat([judged] * 16)  # 64 columns: the check's metadata shows 60
    assert len(drift_table_markdown(many).splitlines()) == 2 + 60


def test_the_html_report_shows_the_drifted_columns_and_the_highest_ratios_by_their_deciding_statistic(tmp_path):
    names = {"delay": "dep_delay_x", "carrier": "carrier_x"}
    constants = {"calm_x": pl.lit(1.0), "empty_x": pl.lit(2.0), "flat_x": pl.lit(3.0)}
    reference = flights(1000).rename(names).with_columns(**constants)
    current = flights(300, shift=2.0, seed=1).rename(names).with_columns(**constants)
    judged = judge(
        scores({"dep_delay_x": 2.0, "carrier_x": 0.05, "calm_x": 0.01, "empty_x": None, "flat_x": 0.3}),
        calibration({"dep_delay_x": 0.1, "carrier_x": 0.1, "calm_x": 0.1, "empty_x": 0.1, "flat_x": 0.0}), NO_RECENT,
    )  # fmt: skip

    path = write_html_report(reference, current, judged, {"carrier_x"}, tmp_path / "day" / "features.html", top=2)
    html = path.read_text()
    assert path == tmp_path / "day" / "features.html"
    assert "dep_delay_x" in html and "carrier_x" in html  # the drifted column and the next highest ratio
    assert "calm_x" not in html and "empty_x" not in html and "flat_x" not in html  # flat: no band, no ratio
    assert html.count("Wasserstein") == 1 and "PSI" in html and "K-S" not in html  # as `judge` decided


def test_the_html_report_shows_eight_columns_unless_more_drifted(tmp_path):
    frame = pl.DataFrame({f"col_{n}": [float(n), float(n) + 1] * 50 for n in range(10)})
    calm = judge(scores({c: 0.1 for c in frame.columns}), calibration(dict.fromkeys(frame.columns, 0.1)), NO_RECENT)
    drifted = calm.with_columns(drifted=pl.lit(True))

    def shown(judged) -> int:
        return write_html_report(frame, frame, judged, set(), tmp_path / "report.html").read_text().count("Wasserstein")

    assert (shown(calm), shown(drifted)) == (8, 10)


def test_a_seeded_sample_is_reproducible_and_never_larger_than_the_frame():
    frame = flights(1000)
    assert sample(frame, 100, seed=0).equals(sample(frame, 100, seed=0))
    assert not sample(frame, 100, seed=0).equals(sample(frame, 100, seed=1))
    assert sample(frame, 100, seed=0).height == 100 and sample(frame, 5000, seed=0).height == 1000
    assert sample(frame.clear(), 100, seed=0).is_empty()
