"""validate_rows: every raw row ends up either clean (typed) or in quarantine with its reason."""

import json
from datetime import date, datetime, timezone

import pandera.polars as pa
import polars as pl
import pytest

from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.flights.schemas import FLIGHTS
from ml_assets.quality.gates import QualityGate, evaluate_gates
from ml_assets.quality.validation import QUARANTINE_SCHEMA, validate_rows

FILE = "landing/readings/2013-01-01.csv"

# A tiny table: an id key, a bounded score, a coded label, a UTC timestamp.
SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column(pl.Int32),
        "score": pa.Column(pl.Float64, checks=[pa.Check.in_range(0, 100)], nullable=True),
        "code": pa.Column(pl.String, checks=[pa.Check.str_matches(r"^[A-Z]{2}$")]),
        "seen_utc": pa.Column(pl.Datetime("us", "UTC"), nullable=True),
    },
    strict=True,
)
KEY = ["id"]
GATE = QualityGate(max_quarantine_rate=0.01)


def raw_rows(*rows: dict, malformed: dict[int, str] | None = None) -> pl.DataFrame:
    """Raw string rows as a source delivers them, numbered 1.. in FILE."""
    malformed = malformed or {}
    frame = pl.DataFrame(list(rows), schema={c: pl.String for c in SCHEMA.columns})
    return frame.with_columns(
        _source_file=pl.lit(FILE),
        _source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
        _malformed=pl.Series([malformed.get(i) for i in range(1, frame.height + 1)], dtype=pl.String),
    )


def row(id="1", score="50", code="AB", seen_utc="2013-01-01T10:00:00Z") -> dict:
    return {"id": id, "score": score, "code": code, "seen_utc": seen_utc}


def quarantined(result, rule: str) -> list[dict]:
    return result.quarantine.filter(pl.col("rule") == rule).to_dicts()


def assert_every_row_accounted_for(raw: pl.DataFrame, result) -> None:
    """clean and quarantine are disjoint and together hold every delivered row."""
    provenance = ["_source_file", "_source_row"]
    clean = set(result.clean.select(provenance).iter_rows())
    rejected = set(result.quarantine.select(provenance).iter_rows())
    assert clean.isdisjoint(rejected)
    assert clean | rejected == set(raw.select(provenance).iter_rows())
    assert result.clean.height + result.quarantined_rows == result.raw_rows == raw.height


def test_clean_rows_are_typed_with_nulls_and_utc_timestamps():
    raw = raw_rows(row(id="1", score=" 12.5 "), row(id="2", score="NA", seen_utc=""))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.quarantine.is_empty()
    assert result.clean.schema == {
        "id": pl.Int32,
        "score": pl.Float64,
        "code": pl.String,
        "seen_utc": pl.Datetime("us", "UTC"),
        "_source_file": pl.String,
        "_source_row": pl.Int64,
    }
    assert result.clean.rows() == [
        (1, 12.5, "AB", datetime(2013, 1, 1, 10, tzinfo=timezone.utc), FILE, 1),
        (2, None, "AB", None, FILE, 2),
    ]


def test_type_failure_is_quarantined_with_rule_column_value_and_source_row():
    raw = raw_rows(row(id="1"), row(id="2", score="twelve"), row(id="3", seen_utc="01/01/2013"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [1]
    score = quarantined(result, "type(Float64)")
    seen = quarantined(result, "type(Datetime(time_unit='us', time_zone='UTC'))")
    assert [(q["column"], q["value"], q["_source_file"], q["_source_row"]) for q in score] == [
        ("score", "twelve", FILE, 2)
    ]
    assert [(q["column"], q["value"], q["_source_row"]) for q in seen] == [("seen_utc", "01/01/2013", 3)]
    assert_every_row_accounted_for(raw, result)


def test_type_failure_in_a_required_column_is_quarantined_not_raised():
    raw = raw_rows(row(id="x1"), row(id="2"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [2]
    rules = {q["rule"] for q in result.quarantine.to_dicts()}
    assert "type(Int32)" in rules
    assert set(result.quarantine.get_column("_source_row")) == {1}
    assert_every_row_accounted_for(raw, result)


def test_pandera_rule_failures_are_quarantined_with_the_check_name():
    raw = raw_rows(row(id="1", score="150"), row(id="2", code="abc"), row(id="3"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [3]
    (out_of_range,) = quarantined(result, "in_range(0, 100)")
    assert out_of_range["column"] == "score" and float(out_of_range["value"]) == 150.0
    assert out_of_range["_source_row"] == 1
    (bad_code,) = quarantined(result, "str_matches('^[A-Z]{2}$')")
    assert (bad_code["column"], bad_code["value"], bad_code["_source_row"]) == ("code", "abc", 2)
    assert_every_row_accounted_for(raw, result)


def test_malformed_row_is_quarantined_with_the_reason():
    short = row(id="2", code=None, seen_utc=None)
    raw = raw_rows(row(id="1"), short, malformed={2: "has 2 fields, the header has 4"})
    result = validate_rows(raw, SCHEMA, KEY)

    (malformed,) = quarantined(result, "malformed_row")
    assert malformed["value"] == "has 2 fields, the header has 4"
    assert (malformed["_source_file"], malformed["_source_row"]) == (FILE, 2)
    assert result.clean.get_column("id").to_list() == [1]
    assert_every_row_accounted_for(raw, result)


def test_duplicate_keys_keep_the_first_delivery_and_quarantine_the_rest():
    raw = raw_rows(row(id="7", score="1"), row(id="8"), row(id="7", score="2"), row(id="7", score="3"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.select("id", "score").rows() == [(7, 1.0), (8, 50.0)]
    duplicates = quarantined(result, "duplicate_key")
    found = [(d["column"], d["value"], d["_source_row"]) for d in duplicates]
    assert found == [("id", "7", 3), ("id", "7", 4)]
    assert_every_row_accounted_for(raw, result)


def test_a_rejected_row_does_not_shadow_a_later_valid_row_with_the_same_key():
    raw = raw_rows(row(id="7", score="999"), row(id="7", score="5"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.select("id", "score", "_source_row").rows() == [(7, 5.0, 2)]
    assert result.rule_counts() == {"in_range(0, 100)": 1}


def test_a_row_breaking_two_rules_is_listed_per_rule_but_counted_once():
    raw = raw_rows(row(id="1", score="-5", code="x"), row(id="2"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert sorted(result.quarantine.get_column("rule")) == ["in_range(0, 100)", "str_matches('^[A-Z]{2}$')"]
    assert result.quarantined_rows == 1
    assert result.rule_counts() == {"in_range(0, 100)": 1, "str_matches('^[A-Z]{2}$')": 1}
    assert_every_row_accounted_for(raw, result)


def test_quarantine_keeps_the_whole_source_record_as_delivered():
    raw = raw_rows(row(id="1", score="oops", code="AB", seen_utc="NA"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.quarantine.schema == QUARANTINE_SCHEMA
    record = json.loads(result.quarantine.get_column("source_record")[0])
    assert record == {"id": "1", "score": "oops", "code": "AB", "seen_utc": "NA"}


# --- the real flights rules ------------------------------------------------------------------


def flight_row(**changes) -> dict:
    """One valid flight of 2013-01-01 as raw strings (UA1545 EWR->IAH, 05:15 local)."""
    values = dict(
        year="2013", month="1", day="1", dep_time="517", sched_dep_time="515", dep_delay="2",
        arr_time="830", sched_arr_time="819", arr_delay="11", carrier="UA", flight="1545",
        tailnum="N14228", origin="EWR", dest="IAH", air_time="227", distance="1400", hour="5",
        minute="15", time_hour="2013-01-01T10:00:00Z",
    )  # fmt: skip
    return values | changes


def flight_frame(*rows: dict, day: date = date(2013, 1, 1)) -> pl.DataFrame:
    frame = pl.DataFrame(list(rows), schema={c: pl.String for c in rows[0]})
    return frame.with_columns(
        date=pl.lit(day),
        _source_file=pl.lit("flights/2013-01-01.csv"),
        _source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
        _malformed=pl.lit(None, pl.String),
    )


def validate_flights(raw: pl.DataFrame):
    return validate_rows(raw, FLIGHTS.schema, FLIGHTS.key, FLIGHTS.derive, keep=["date"])


def flight_gates(result, days=None):
    return evaluate_gates(result, FLIGHTS.schema, FLIGHTS.key, QUALITY_GATES["flights"], days)


def test_flights_derive_utc_departure_outcome_flags_and_id():
    raw = flight_frame(
        flight_row(),
        flight_row(flight="2", dep_time="NA", dep_delay="NA", arr_time="NA", arr_delay="NA"),  # cancelled
        flight_row(flight="3", arr_time="NA", arr_delay="NA"),  # diverted
        flight_row(flight="4", hour="23", minute="50", sched_dep_time="2350", dep_delay="25",
                   dep_time="15", time_hour="2013-01-02T04:00:00Z"),  # departs after midnight
    )  # fmt: skip
    result = validate_flights(raw)

    assert result.quarantine.is_empty()
    clean = result.clean.sort("_source_row")
    utc = timezone.utc
    assert clean.get_column("flight_id").to_list() == [
        "2013-01-01/UA1545/EWR", "2013-01-01/UA2/EWR", "2013-01-01/UA3/EWR", "2013-01-01/UA4/EWR",
    ]  # fmt: skip
    assert clean.get_column("sched_dep_utc").to_list() == [
        datetime(2013, 1, 1, 10, 15, tzinfo=utc), datetime(2013, 1, 1, 10, 15, tzinfo=utc),
        datetime(2013, 1, 1, 10, 15, tzinfo=utc), datetime(2013, 1, 2, 4, 50, tzinfo=utc),
    ]  # fmt: skip
    assert clean.get_column("actual_dep_utc").to_list() == [
        datetime(2013, 1, 1, 10, 17, tzinfo=utc), None,
        datetime(2013, 1, 1, 10, 17, tzinfo=utc), datetime(2013, 1, 2, 5, 15, tzinfo=utc),
    ]  # fmt: skip
    assert clean.get_column("cancelled").to_list() == [False, True, False, False]
    assert clean.get_column("diverted").to_list() == [False, False, True, False]
    assert clean.get_column("date").to_list() == [date(2013, 1, 1)] * 4


@pytest.mark.parametrize(
    "changes, rule, column",
    [
        ({"month": "13"}, "in_range(1, 12)", "month"),  # an impossible date must not crash the check
        ({"month": "2", "day": "30"}, "local_date_matches_partition", "day"),
        ({"day": "2"}, "local_date_matches_partition", "day"),  # delivered in the wrong day's file
        ({"dep_time": "1275"}, "minutes_below_60", "dep_time"),
        ({"origin": "ewr"}, "str_matches('^[A-Z0-9]{3}$')", "origin"),
        ({"time_hour": "2013-01-01 10:00"}, "type(Datetime(time_unit='us', time_zone='UTC'))", "time_hour"),
    ],
)
def test_flights_rule_breakers_are_quarantined(changes, rule, column):
    raw = flight_frame(flight_row(), flight_row(flight="99", **changes))
    result = validate_flights(raw)

    assert result.clean.get_column("flight").to_list() == [1545]
    hits = quarantined(result, rule)
    assert [(h["column"], h["_source_row"]) for h in hits] == [(column, 2)]
    assert_every_row_accounted_for(raw, result)


def test_quality_gates_pass_on_clean_flights_and_fail_on_an_empty_day():
    raw = flight_frame(*[flight_row(flight=str(n)) for n in range(1, 121)])
    result = validate_flights(raw)
    gates = flight_gates(result, [date(2013, 1, 1)])
    assert {g.check_name: g.passed for g in gates} == {
        "schema_conforms": True, "key_unique": True, "quarantine_rate": True,
        "null_rates": True, "rows_per_day": True,
    }  # fmt: skip

    with_empty_day = [date(2013, 1, 1), date(2013, 1, 2)]
    gates = flight_gates(result, with_empty_day)
    (rows_per_day,) = [g for g in gates if g.check_name == "rows_per_day"]
    assert not rows_per_day.passed
    assert rows_per_day.metadata["fewest_rows"].value == 0


def test_quarantine_rate_gate_fails_when_too_many_rows_are_rejected():
    rows = [flight_row(flight=str(n)) for n in range(1, 101)] + [flight_row(flight="500", origin="??")] * 2
    result = validate_flights(flight_frame(*rows))
    gates = {g.check_name: g for g in flight_gates(result)}

    assert result.quarantined_rows == 2
    assert not gates["quarantine_rate"].passed  # 2/102 > 1 %
    assert gates["key_unique"].passed and gates["schema_conforms"].passed


def test_a_redelivered_day_is_quarantined_as_duplicates_without_failing_the_rate_gate():
    rows = [flight_row(flight=str(n)) for n in range(1, 101)]
    result = validate_flights(flight_frame(*rows, *rows))
    gates = {g.check_name: g for g in flight_gates(result)}

    assert result.clean.height == 100 and result.quarantined_rows == 100
    assert result.invalid_rows == 0
    assert gates["quarantine_rate"].passed
    assert gates["quarantine_rate"].metadata["quarantined_rows"].value == 100


def test_integers_written_as_floats_parse_but_fractions_are_type_failures():
    raw = raw_rows(row(id="1.0"), row(id="2.5"), row(id="1e12"), row(id=" 4 "))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [1, 4]
    failures = result.quarantine.filter(pl.col("rule") == "type(Int32)")
    assert failures.select("value", "_source_row").rows() == [("2.5", 2), ("1e12", 3)]


def test_only_the_contracts_utc_timestamp_format_parses():
    """`2013-01-01T10:00:00Z` is the contract; an ISO-like variant is a type failure, not a guess."""
    raw = raw_rows(row(id="1", seen_utc="2013-01-01 10:00:00"), row(id="2", seen_utc="2013-01-01T10:00:00"), row(id="3"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [3]
    seen = quarantined(result, "type(Datetime(time_unit='us', time_zone='UTC'))")
    assert [q["_source_row"] for q in seen] == [1, 2]


def test_a_null_marker_in_a_text_column_is_a_null_not_the_text():
    """"NA" would pass the two-letter code rule as text: it is read as missing, and a missing code
    breaks the rule that a code is required."""
    raw = raw_rows(row(id="1", code="NA"), row(id="2", code="AB"))
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [2]
    (rejected,) = result.quarantine.to_dicts()
    assert (rejected["column"], rejected["_source_row"]) == ("code", 1) and "null" in rejected["rule"]


def test_an_integer_beyond_float_precision_is_read_exactly():
    """Integers parse as integers; only a value written as a float ("517.0") goes through a float."""
    schema = pa.DataFrameSchema({"id": pa.Column(pl.Int64)}, strict=True)
    raw = pl.DataFrame({"id": ["9007199254740993", "517.0"]}).with_columns(
        _source_file=pl.lit(FILE), _source_row=pl.int_range(1, 3, dtype=pl.Int64), _malformed=pl.lit(None, pl.String)
    )
    assert validate_rows(raw, schema, ["id"]).clean.get_column("id").to_list() == [9007199254740993, 517]


def test_the_rules_broken_most_often_come_first():
    raw = raw_rows(row(id="1", score="200"), row(id="2", code="x"), row(id="3", code="y"), row(id="4"))
    counts = validate_rows(raw, SCHEMA, KEY).rule_counts()
    assert list(counts.items())[0] == ("str_matches('^[A-Z]{2}$')", 2)
    assert list(counts.values()) == [2, 1]


def test_a_repeated_composite_key_is_quarantined_with_its_key_columns_and_values():
    raw = raw_rows(row(id="7", code="AB"), row(id="7", code="CD"), row(id="7", code="AB", score="3"))
    result = validate_rows(raw, SCHEMA, ["id", "code"])

    assert result.clean.select("id", "code").rows() == [(7, "AB"), (7, "CD")]
    (repeat,) = quarantined(result, "duplicate_key")
    assert (repeat["column"], repeat["value"], repeat["_source_row"]) == ("id,code", "7|AB", 3)


def test_the_quarantine_of_a_daily_table_keeps_the_delivery_day_first():
    result = validate_flights(flight_frame(flight_row(), flight_row(flight="99", origin="ewr"), day=date(2013, 1, 1)))

    assert result.quarantine.columns == ["date", *QUARANTINE_SCHEMA]
    assert result.quarantine.get_column("date").to_list() == [date(2013, 1, 1)]


def deliveries(*files: list[dict]) -> pl.DataFrame:
    """Raw rows of several deliveries of one day, file after file (the first is FILE)."""
    frames = [
        raw_rows(*rows).with_columns(_source_file=pl.lit(FILE if n == 0 else FILE.replace(".csv", f"-{n + 1}.csv")))
        for n, rows in enumerate(files)
    ]
    return pl.concat(frames)


def test_a_rejected_row_restated_by_a_valid_correction_counts_as_superseded_not_invalid():
    first = [row(id="1"), row(id="2", score="999"), row(id="3")]  # row 2 breaks the range rule
    raw = deliveries(first, [row(id="2", score="9")])  # the corrected redelivery of row 2
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.select("id", "score").rows() == [(1, 50.0), (3, 50.0), (2, 9.0)]
    rejected = result.quarantine.filter(pl.col("_source_row") == 2, pl.col("_source_file") == FILE)
    assert sorted(rejected.get_column("rule")) == ["in_range(0, 100)", "superseded"]  # why, and that it was replaced
    assert (result.invalid_rows, result.superseded_rows, result.quarantined_rows) == (0, 1, 1)
    (rate,) = [g for g in evaluate_gates(result, SCHEMA, KEY, GATE) if g.check_name == "quarantine_rate"]
    assert rate.passed and rate.metadata["quarantine_rate"].value == 0.0
    assert_every_row_accounted_for(raw, result)


def test_a_rejected_row_restated_by_a_rejected_correction_counts_once():
    raw = deliveries([row(id="1", score="999"), row(id="2")], [row(id="1", score="-1")])
    result = validate_rows(raw, SCHEMA, KEY)

    assert result.clean.get_column("id").to_list() == [2]
    assert (result.invalid_rows, result.superseded_rows) == (1, 1)  # the newest statement is what counts
    newest = result.quarantine.filter(pl.col("rule") != "superseded")
    assert newest.select("_source_file", "_source_row").unique().height == 2  # both kept with their rule
    assert_every_row_accounted_for(raw, result)


def test_the_quarantine_rate_counts_the_rows_in_effect_so_a_restated_day_is_not_diluted():
    day = [row(id=str(n)) for n in range(1, 101)]
    restated = [row(id=str(n), score="999" if n <= 2 else "1") for n in range(1, 101)]
    result = validate_rows(deliveries(day, restated), SCHEMA, KEY)

    assert result.invalid_rows == 2 and result.superseded_rows == 98  # ids 1, 2 keep their first statement
    assert result.rows_in_effect == 102
    (rate,) = [g for g in evaluate_gates(result, SCHEMA, KEY, GATE) if g.check_name == "quarantine_rate"]
    assert rate.metadata["quarantine_rate"].value == 2 / 102 and not rate.passed  # 2 / 200 would pass
    assert rate.metadata["superseded_rows"].value == 98
