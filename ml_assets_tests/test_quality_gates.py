"""evaluate_gates: each gate seen failing, and its threshold pinned from both sides."""

import dataclasses
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.quality.gates import QualityGate, evaluate_gates, evaluate_gates_by_day, gate_check_specs
from ml_assets.quality.validation import QUARANTINE_SCHEMA, ValidationResult
from ml_assets_tests.test_validation import KEY, SCHEMA

TUESDAY = date(2013, 1, 29)
# The real flights thresholds (a day needs 100 rows and 60 % of its weekday's recent median),
# without the null-rate columns the tiny table here does not have.
FLIGHTS_ROWS_GATE = dataclasses.replace(QUALITY_GATES["flights"], max_null_rate={})


def clean_rows(count: int, day: date = TUESDAY, first_id: int = 1, score=50.0) -> pl.DataFrame:
    """`count` valid rows of the tiny table on `day`; a callable `score` gets the row's index."""
    return pl.DataFrame(
        {
            "id": list(range(first_id, first_id + count)),
            "score": [score(i) if callable(score) else score for i in range(count)],
            "code": ["AB"] * count,
            "seen_utc": [datetime(2013, 1, 1, 10, tzinfo=timezone.utc)] * count,
            "date": [day] * count,
        },
        schema={**{c: col.dtype.type for c, col in SCHEMA.columns.items()}, "date": pl.Date},
    )


def gates(clean: pl.DataFrame, gate: QualityGate, days=None, earlier_counts=None, quarantine=None, raw_rows=None, cut_off=None):
    quarantine = quarantine if quarantine is not None else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    result = ValidationResult(clean=clean, quarantine=quarantine, raw_rows=raw_rows or clean.height)
    return {g.check_name: g for g in evaluate_gates(result, SCHEMA, KEY, gate, days, earlier_counts, cut_off)}


def test_key_unique_fails_on_a_repeated_key_and_counts_the_repeats():
    gate = QualityGate(max_quarantine_rate=0.01)
    assert gates(clean_rows(3), gate)["key_unique"].passed

    repeated = gates(pl.concat([clean_rows(3), clean_rows(2)]), gate)["key_unique"]
    assert not repeated.passed
    assert repeated.metadata["duplicated_rows"].value == 2
    assert repeated.metadata["key"].value == "id"


def test_schema_conforms_fails_on_a_stored_row_breaking_a_rule():
    gate = QualityGate(max_quarantine_rate=0.01)
    assert gates(clean_rows(3), gate)["schema_conforms"].passed

    out_of_range = gates(clean_rows(3, score=lambda i: 150.0 if i == 1 else 50.0), gate)["schema_conforms"]
    assert not out_of_range.passed
    assert "150" in out_of_range.metadata["failures"].value


def test_quarantine_rate_passes_at_its_threshold_and_fails_above_it():
    rejected = pl.DataFrame(
        {"rule": ["in_range"], "column": ["score"], "value": ["150"], "_source_file": ["f.csv"],
         "_source_row": [101], "source_record": ["{}"]},
        schema=QUARANTINE_SCHEMA,
    )  # fmt: skip
    at_limit = gates(clean_rows(99), QualityGate(max_quarantine_rate=0.01), quarantine=rejected, raw_rows=100)
    assert at_limit["quarantine_rate"].passed
    assert at_limit["quarantine_rate"].metadata["quarantine_rate"].value == pytest.approx(0.01)
    above = gates(clean_rows(99), QualityGate(max_quarantine_rate=0.0099), quarantine=rejected, raw_rows=100)
    assert not above["quarantine_rate"].passed


def test_null_rates_fail_on_the_worst_day_not_on_the_average():
    """A day with 35 % nulls passes a 0.35 limit; 36 % fails it, even when another day has none
    and the average is far below."""
    gate = QualityGate(max_quarantine_rate=0.01, max_null_rate={"score": 0.35})

    def with_nulls(nulls: int) -> pl.DataFrame:
        return pl.concat([
            clean_rows(100, score=lambda i: None if i < nulls else 50.0),
            clean_rows(100, day=TUESDAY + timedelta(days=1), first_id=1000),
        ])  # fmt: skip

    assert gates(with_nulls(35), gate)["null_rates"].passed
    failing = gates(with_nulls(36), gate)["null_rates"]
    assert not failing.passed
    assert failing.metadata["breaches"].value == {"score": 0.36}
    assert failing.metadata["worst_day_null_rate"].value == {"score": 0.36}
    assert failing.metadata["thresholds"].value == {"score": 0.35}


def test_rows_per_day_pins_the_flights_minimum_of_100_rows():
    assert gates(clean_rows(100), FLIGHTS_ROWS_GATE, days=[TUESDAY])["rows_per_day"].passed
    short = gates(clean_rows(99), FLIGHTS_ROWS_GATE, days=[TUESDAY])["rows_per_day"]
    assert not short.passed
    assert short.severity == dg.AssetCheckSeverity.ERROR
    assert short.metadata["fewest_rows"].value == 99
    assert short.metadata["minimum"].value == 100


def test_rows_per_day_fails_a_day_with_less_than_60_percent_of_its_weekday_median():
    """Four earlier Tuesdays with 300, 200, 200, 100 rows (median 200): 120 rows pass, 119 fail."""
    earlier = {TUESDAY - timedelta(weeks=k): rows for k, rows in zip(range(1, 5), (300, 200, 200, 100))}
    assert gates(clean_rows(120), FLIGHTS_ROWS_GATE, [TUESDAY], earlier)["rows_per_day"].passed

    short = gates(clean_rows(119), FLIGHTS_ROWS_GATE, [TUESDAY], earlier)["rows_per_day"]
    assert not short.passed
    assert "0.595" in short.metadata["short_days"].value


def test_the_weekday_share_needs_two_earlier_weeks_and_looks_at_most_weekday_weeks_back():
    one_week = {TUESDAY - timedelta(weeks=1): 1000}
    assert gates(clean_rows(100), FLIGHTS_ROWS_GATE, [TUESDAY], one_week)["rows_per_day"].passed

    fifth_week_back = {TUESDAY - timedelta(weeks=k): 1000 for k in (1, 5)}
    assert gates(clean_rows(100), FLIGHTS_ROWS_GATE, [TUESDAY], fifth_week_back)["rows_per_day"].passed
    other_weekdays = {TUESDAY - timedelta(days=d): 1000 for d in (1, 2, 6, 8)}
    assert gates(clean_rows(100), FLIGHTS_ROWS_GATE, [TUESDAY], other_weekdays)["rows_per_day"].passed

    two_weeks = {TUESDAY - timedelta(weeks=k): 1000 for k in (1, 4)}
    assert not gates(clean_rows(100), FLIGHTS_ROWS_GATE, [TUESDAY], two_weeks)["rows_per_day"].passed


def test_a_non_blocking_short_day_gate_only_warns():
    gate = dataclasses.replace(FLIGHTS_ROWS_GATE, short_day_blocks=False)
    short = gates(clean_rows(50), gate, days=[TUESDAY])["rows_per_day"]
    assert not short.passed
    assert short.severity == dg.AssetCheckSeverity.WARN
    blocking = {s.name: s.blocking for s in gate_check_specs("flights", gate)}
    assert blocking.pop("rows_per_day") is False and all(blocking.values())
    assert {s.name: s.blocking for s in gate_check_specs("flights", FLIGHTS_ROWS_GATE)}["rows_per_day"] is True


def test_the_short_delivery_rule_looks_back_four_weeks_only_when_configured():
    assert FLIGHTS_ROWS_GATE.history_days == 28
    assert QualityGate(max_quarantine_rate=0.01, min_rows_per_day=100).history_days == 0


def test_a_table_without_a_daily_minimum_has_no_rows_per_day_gate():
    gate = QualityGate(max_quarantine_rate=0.01)
    assert "rows_per_day" not in gates(clean_rows(1), gate, days=[TUESDAY])
    assert [s.name for s in gate_check_specs("planes", gate)] == [
        "schema_conforms", "key_unique", "quarantine_rate", "null_rates",
    ]  # fmt: skip
    assert all(s.blocking for s in gate_check_specs("planes", gate))


# What each gate reports is what the UI shows and what an alert quotes (sensors.py reads
# `short_days` and `breaches`): pinned here, not only pass/fail.


def test_quarantine_rate_reports_the_rate_its_threshold_and_the_rules_broken():
    rejected = pl.DataFrame(
        {"rule": ["in_range", "in_range", "not_null"], "column": ["score", "score", "code"], "value": ["150", "-1", None],
         "_source_file": ["f.csv"] * 3, "_source_row": [101, 102, 103], "source_record": ["{}"] * 3},
        schema=QUARANTINE_SCHEMA,
    )  # fmt: skip
    check = gates(clean_rows(97), QualityGate(max_quarantine_rate=0.05), quarantine=rejected, raw_rows=100)["quarantine_rate"]
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert check.passed
    assert metadata == {
        "quarantine_rate": pytest.approx(0.03), "threshold": 0.05, "quarantined_rows": 3, "superseded_rows": 0,
        "delivered_rows": 100, "violations_by_rule": {"in_range": 2, "not_null": 1},
    }  # fmt: skip


def test_null_rates_without_watched_columns_or_rows_pass_and_say_how_many_columns_were_watched():
    unwatched = gates(clean_rows(3), QualityGate(max_quarantine_rate=0.01))["null_rates"]
    assert unwatched.passed and unwatched.metadata["columns"].value == 0
    watched = QualityGate(max_quarantine_rate=0.01, max_null_rate={"score": 0.1, "code": 0.1})
    empty = gates(clean_rows(0), watched)["null_rates"]
    assert empty.passed and empty.metadata["columns"].value == 2


def test_null_rates_report_every_watched_columns_worst_day_even_when_passing():
    gate = QualityGate(max_quarantine_rate=0.01, max_null_rate={"score": 0.5, "code": 0.5})
    check = gates(clean_rows(4, score=lambda i: None if i == 0 else 50.0), gate)["null_rates"]
    assert check.passed
    assert check.metadata["worst_day_null_rate"].value == {"score": 0.25, "code": 0.0}
    assert check.metadata["breaches"].value == {}


def test_rows_per_day_reports_the_short_days_as_a_table_and_none_when_there_are_none():
    earlier = {TUESDAY - timedelta(weeks=k): 200 for k in (1, 2)}
    complete = gates(clean_rows(150), FLIGHTS_ROWS_GATE, [TUESDAY], earlier)["rows_per_day"]
    assert {key: value.value for key, value in complete.metadata.items()} == {
        "minimum": 100, "min_weekday_share": 0.6, "fewest_rows": 150, "days": 1, "short_days": "none",
    }  # fmt: skip

    short = gates(clean_rows(110), FLIGHTS_ROWS_GATE, [TUESDAY], earlier)["rows_per_day"]
    assert short.metadata["short_days"].value.splitlines() == [
        "| date | rows | weekday_median | share | cut_off |", "|---|---|---|---|---|", "| 2013-01-29 | 110 | 200 | 0.55 |  |",
    ]  # fmt: skip


def test_a_day_whose_newest_delivery_is_cut_off_is_short_without_any_history():
    cut = {TUESDAY: "landing/flights/2013-01-29.csv"}
    check = gates(clean_rows(900), FLIGHTS_ROWS_GATE, [TUESDAY], cut_off=cut)["rows_per_day"]  # no earlier weeks
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "| 2013-01-29 | 900 |  |  | landing/flights/2013-01-29.csv |" in check.metadata["short_days"].value
    assert check.metadata["cut_off_files"].value == {"2013-01-29": "landing/flights/2013-01-29.csv"}
    assert gates(clean_rows(900), FLIGHTS_ROWS_GATE, [TUESDAY])["rows_per_day"].passed


def test_a_delivered_day_without_rows_is_short_and_the_fewest_rows_of_no_days_is_zero():
    empty_day = gates(clean_rows(0), FLIGHTS_ROWS_GATE, [TUESDAY])["rows_per_day"]
    assert not empty_day.passed and empty_day.metadata["fewest_rows"].value == 0
    no_days = gates(clean_rows(0), FLIGHTS_ROWS_GATE, [])["rows_per_day"]
    assert no_days.passed and no_days.metadata["fewest_rows"].value == 0 and no_days.metadata["days"].value == 0


def test_schema_failures_show_the_first_20_cases():
    broken = gates(clean_rows(25, score=150.0), QualityGate(max_quarantine_rate=0.01))["schema_conforms"]
    table = broken.metadata["failures"].value.splitlines()
    assert not broken.passed and len(table) == 2 + 20  # header, rule, 20 cases


def test_key_unique_names_every_column_of_a_composite_key():
    repeated = pl.concat([clean_rows(2), clean_rows(1)])
    quarantine = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    result = ValidationResult(clean=repeated, quarantine=quarantine, raw_rows=repeated.height)
    checks = {g.check_name: g for g in evaluate_gates(result, SCHEMA, ["id", "code"], QualityGate(max_quarantine_rate=0.01))}
    assert checks["key_unique"].metadata["key"].value == "id, code"
    assert checks["key_unique"].metadata["duplicated_rows"].value == 1


def test_an_empty_delivery_has_a_quarantine_rate_of_zero():
    empty = ValidationResult(clean=clean_rows(0), quarantine=pl.DataFrame(schema=QUARANTINE_SCHEMA), raw_rows=0)
    check = {g.check_name: g for g in evaluate_gates(empty, SCHEMA, KEY, QualityGate(max_quarantine_rate=0.0))}["quarantine_rate"]
    assert check.passed and check.metadata["quarantine_rate"].value == 0.0


def test_null_rates_are_reported_to_four_decimals():
    gate = QualityGate(max_quarantine_rate=0.01, max_null_rate={"score": 0.3})
    check = gates(clean_rows(3, score=lambda i: None if i == 0 else 50.0), gate)["null_rates"]
    assert check.metadata["worst_day_null_rate"].value == {"score": 0.3333}
    assert check.metadata["breaches"].value == {"score": 0.3333}


def test_without_a_daily_minimum_only_the_weekday_share_can_make_a_day_short():
    from ml_assets.quality.gates import short_days

    share_only = QualityGate(max_quarantine_rate=0.01, min_weekday_share=0.6)
    assert short_days({TUESDAY: 0}, [TUESDAY], share_only).is_empty()  # no history: nothing to compare with
    history = {TUESDAY - timedelta(weeks=k): 100 for k in (1, 2)}
    assert short_days(history | {TUESDAY: 0}, [TUESDAY], share_only)["date"].to_list() == [TUESDAY]


def test_as_many_short_days_as_the_table_has_columns_are_all_listed():
    """Four short days (the short-day table has four columns too) are four rows."""
    four = [TUESDAY + timedelta(days=n) for n in range(4)]
    frame = pl.concat([clean_rows(10, day=day, first_id=100 * n) for n, day in enumerate(four)])
    short = gates(frame, FLIGHTS_ROWS_GATE, four)["rows_per_day"]
    assert not short.passed and len(short.metadata["short_days"].value.splitlines()) == 2 + 4


def test_each_day_of_a_ranged_run_is_gated_on_its_own_rows_and_deliveries():
    wednesday, thursday = TUESDAY + timedelta(days=1), TUESDAY + timedelta(days=2)
    one_broken = clean_rows(100, score=lambda i: 150.0 if i == 0 else 50.0)  # a stored row out of range
    clean = pl.concat([one_broken, clean_rows(120, wednesday, first_id=1000)])
    rejected = pl.DataFrame(
        {"rule": ["in_range"], "column": ["score"], "value": ["150"], "_source_file": ["f.csv"],
         "_source_row": [7], "source_record": ["{}"], "date": [wednesday]},
        schema=QUARANTINE_SCHEMA | {"date": pl.Date},
    )  # fmt: skip
    result = ValidationResult(clean=clean, quarantine=rejected, raw_rows=221)
    gate = QualityGate(max_quarantine_rate=0.005, min_rows_per_day=100)

    by_day = evaluate_gates_by_day(result, {TUESDAY: 100, wednesday: 121}, SCHEMA, KEY, gate, [TUESDAY, wednesday, thursday])

    judged = {day: {g.check_name: g for g in results} for day, results in by_day.items()}
    assert [judged[d]["schema_conforms"].passed for d in (TUESDAY, wednesday, thursday)] == [False, True, True]
    assert [judged[d]["quarantine_rate"].passed for d in (TUESDAY, wednesday, thursday)] == [True, False, True]
    assert judged[wednesday]["quarantine_rate"].metadata["quarantine_rate"].value == pytest.approx(1 / 121)
    assert [judged[d]["rows_per_day"].passed for d in (TUESDAY, wednesday, thursday)] == [True, True, False]


def test_a_daily_tables_gates_are_partitioned_like_the_table():
    daily = dg.DailyPartitionsDefinition(start_date="2013-01-01")
    specs = gate_check_specs("flights", FLIGHTS_ROWS_GATE, daily)
    assert specs and all(spec.partitions_def == daily for spec in specs)
    assert all(spec.partitions_def is None for spec in gate_check_specs("planes", QualityGate(max_quarantine_rate=0.01)))
