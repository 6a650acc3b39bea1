"""The asset graph run for real on short slices, with a throwaway instance and data folder."""

from datetime import date

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml_assets.flights.contracts import RAW_COLUMNS
from ml_assets.flights.feature_spec import FEATURES, LABEL
from ml_assets.resources.sources import EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets_tests.conftest import LANDING_END, LANDING_START
from ml_assets_tests.helpers import (
    check_results,
    days,
    embedded_rows,
    file_hashes,
    materializations,
    run_days,
    table_version,
)

START, END = date(2013, 1, 1), date(2013, 1, 3)
LATER_START, LATER_END = date(2013, 1, 4), date(2013, 1, 5)
DAILY = {
    "raw_flights": "raw/flights", "raw_weather": "raw/weather",
    "flights": "processed/flights", "weather": "processed/weather",
    "flight_features": "features/flight_features",
}  # fmt: skip
STATIC = {
    "raw_planes": "raw/planes", "raw_airports": "raw/airports", "raw_airlines": "raw/airlines",
    "planes": "processed/planes", "airports": "processed/airports", "airlines": "processed/airlines",
}  # fmt: skip


def read(storage: DeltaStorage, table: str, version: int | None = None) -> pl.DataFrame:
    frame = storage.scan(table, version=version).collect()
    order = [c for c in ("date", "_source_file", "_source_row", "flight_id") if c in frame.columns]
    return frame.sort(order)


def data_version(materialization) -> str:
    return materialization.tags["dagster/data_version"]


class EmbeddedRuns:
    """The embedded data through all three layers: a run over START..END, the same run again,
    then a run over the next days (whose history window reaches back into the first)."""

    def __init__(self, lake: str):
        self.storage = DeltaStorage(base_uri=lake)
        resources = {"storage": self.storage, "source": EmbeddedNycflights13()}
        with dg.DagsterInstance.ephemeral() as instance:
            self.first = run_days(instance, START, END, resources)
            self.first_tables = {t: read(self.storage, t) for t in [*DAILY.values(), *STATIC.values()]}
            self.first_versions = {t: table_version(self.storage, t) for t in self.first_tables}
            self.rerun = run_days(instance, START, END, resources)
            self.later = run_days(instance, LATER_START, LATER_END, resources)
            self.latest = {
                key: instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization
                for key in [*DAILY, *STATIC]
            }


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> EmbeddedRuns:
    return EmbeddedRuns(str(tmp_path_factory.mktemp("embedded") / "lake"))


def test_every_run_succeeds(embedded):
    assert embedded.first.success and embedded.rerun.success and embedded.later.success


def test_one_materialization_per_partition_and_asset(embedded):
    found = materializations(embedded.first)

    assert set(found) == set(DAILY) | set(STATIC)
    for key in DAILY:
        assert sorted(m.partition for m in found[key]) == [str(d) for d in days(START, END)], key
    for key in STATIC:
        assert [m.partition for m in found[key]] == [None], key


def test_data_versions_are_the_delta_table_versions(embedded):
    for run, expected_version in [(embedded.first, 0), (embedded.rerun, 1)]:
        for key, materialization_list in materializations(run).items():
            table = {**DAILY, **STATIC}[key]
            for materialization in materialization_list:
                assert data_version(materialization) == f"{table}@{expected_version}", key
                assert materialization.metadata["delta_table_version"].value == expected_version
                assert materialization.metadata["dagster/uri"].value == embedded.storage.table_uri(table)
    # the latest recorded data version is the table's current version
    for key, table in {**DAILY, **STATIC}.items():
        assert data_version(embedded.latest[key]) == f"{table}@{table_version(embedded.storage, table)}"


def test_all_quality_checks_ran_and_passed(embedded):
    results = check_results(embedded.first)
    gates = {"schema_conforms", "key_unique", "quarantine_rate", "null_rates"}

    tables = ("flights", "weather", "planes", "airports", "airlines")
    expected = {(asset, gate) for asset in tables for gate in gates}
    expected |= {("flights", "rows_per_day"), ("weather", "rows_per_day")}
    expected |= {("flight_features", "flight_id_unique"), ("flight_features", "label_rate_plausible")}
    assert set(results) == expected
    assert all(results.values()), {k: v for k, v in results.items() if not v}


def test_tables_hold_the_slice_of_real_data(embedded):
    tables = embedded.first_tables
    expected_flights = {d: embedded_rows("flights", d).height for d in days(START, END)}

    for table in ("raw/flights", "processed/flights", "features/flight_features"):
        per_day = dict(tables[table].group_by("date").len().sort("date").iter_rows())
        assert per_day == expected_flights, table
    assert tables["raw/flights"].select(RAW_COLUMNS["flights"]).equals(
        pl.concat([embedded_rows("flights", d) for d in days(START, END)])
    )
    assert tables["processed/planes"].height == embedded_rows("planes").height
    assert tables["processed/flights"].schema["sched_dep_utc"] == pl.Datetime("us", "UTC")
    features = tables["features/flight_features"]
    assert set(FEATURES) <= set(features.columns)
    assert 0.05 < features.get_column(LABEL).mean() < 0.6


def test_materialization_metadata_describes_the_table(embedded):
    (day_one,) = [m for m in materializations(embedded.first)["flights"] if m.partition == str(START)]
    metadata = day_one.metadata

    total = sum(embedded_rows("flights", d).height for d in days(START, END))
    assert metadata["dagster/row_count"].value == total  # the run's range, one commit
    assert metadata["delivered_rows"].value == total
    assert metadata["quarantined_rows"].value == 0
    assert metadata["days"].value == 3
    column_names = [c.name for c in metadata["dagster/column_schema"].schema.columns]
    assert "sched_dep_utc" in column_names and "flight_id" in column_names
    assert "null_pct" in metadata["profile"].value


def test_rerunning_the_same_range_is_idempotent(embedded):
    for table, before in embedded.first_tables.items():
        version = embedded.first_versions[table]
        assert_frame_equal(read(embedded.storage, table, version=version + 1), before)
        # time travel: the first run's data is still readable by its version
        assert_frame_equal(read(embedded.storage, table, version=version), before)


def test_a_later_range_leaves_earlier_days_untouched(embedded):
    processed = read(embedded.storage, "processed/flights")

    assert processed.get_column("date").unique().sort().to_list() == days(START, LATER_END)
    earlier = processed.filter(pl.col("date") <= END)
    assert_frame_equal(earlier, embedded.first_tables["processed/flights"])


def test_features_read_every_day_of_their_history_window(embedded):
    """History for 2013-01-05 covers D-29..D-2: all of 01-01..01-03, written by another run.
    A loader that read only the first day of the window would count one day's flights."""
    features = read(embedded.storage, "features/flight_features").filter(pl.col("date") == LATER_END)
    history_days = [d for d in days(START, END)]
    earlier = pl.concat([embedded_rows("flights", d) for d in history_days])
    expected = dict(earlier.group_by("carrier").len().iter_rows())

    found = dict(features.group_by("carrier").agg(pl.col("carrier_hist_flights").first()).iter_rows())
    assert features.height > 0 and set(found) <= set(expected)
    assert found == {carrier: expected.get(carrier, 0) for carrier in found}
    # and a flight on 01-04 sees only 01-01..01-02
    first_later = read(embedded.storage, "features/flight_features").filter(pl.col("date") == LATER_START)
    ua = first_later.filter(pl.col("carrier") == "UA").get_column("carrier_hist_flights").unique().to_list()
    two_days = pl.concat([embedded_rows("flights", d) for d in days(START, date(2013, 1, 2))])
    assert ua == [two_days.filter(pl.col("carrier") == "UA").height]


def test_a_single_partition_materializes_with_dagster_materialize(lake_dir, dagster_instance):
    from ml_assets.assets.processed import processed_assets
    from ml_assets.assets.raw import raw_assets

    storage = DeltaStorage(base_uri=str(lake_dir))
    day = date(2013, 7, 4)
    weather = [a for a in [*raw_assets, *processed_assets] if a.key.path[-1] in ("raw_weather", "weather")]

    result = dg.materialize(
        weather,
        partition_key=str(day),
        instance=dagster_instance,
        resources={"storage": storage, "source": EmbeddedNycflights13()},
    )

    assert result.success
    assert sorted(m.partition for m in materializations(result)["weather"]) == [str(day)]
    stored = storage.scan("processed/weather").collect()
    assert stored.get_column("date").unique().to_list() == [day]
    assert stored.height == embedded_rows("weather", day).height


# --- the landing zone end to end -----------------------------------------------------------------


def landing_resources(landing_dir, lake_dir) -> dict:
    return {"storage": DeltaStorage(base_uri=str(lake_dir)), "source": LandingZone(root=str(landing_dir))}


def test_landing_zone_end_to_end_quarantines_bad_rows_and_keeps_the_files(
    landing_dir, lake_dir, dagster_instance
):
    flights_file = landing_dir / "flights" / f"{LANDING_START}.csv"
    lines = flights_file.read_text().splitlines()
    row = next(n for n, line in enumerate(lines) if ",EWR," in line)
    lines[row] = lines[row].replace(",EWR,", ",E W R,", 1)
    flights_file.write_text("\n".join(lines) + "\n")
    hashes = file_hashes(landing_dir)
    resources = landing_resources(landing_dir, lake_dir)
    storage = resources["storage"]

    result = run_days(dagster_instance, LANDING_START, LANDING_END, resources)

    assert result.success
    assert all(check_results(result).values())
    delivered = sum(embedded_rows("flights", d).height for d in days(LANDING_START, LANDING_END))
    assert storage.scan("processed/flights").collect().height == delivered - 1
    quarantine = storage.scan("quarantine/flights").collect()
    assert quarantine.select("date", "rule", "column", "value", "_source_file", "_source_row").rows() == [
        (LANDING_START, "str_matches('^[A-Z0-9]{3}$')", "origin", "E W R", str(flights_file), row)
    ]
    (day_one,) = [m for m in materializations(result)["flights"] if m.partition == str(LANDING_START)]
    assert day_one.metadata["quarantined_rows"].value == 1
    assert storage.scan("features/flight_features").collect().height == delivered - 1
    assert file_hashes(landing_dir) == hashes

    # re-running the partition range is idempotent
    tables = {t: read(storage, t) for t in ("raw/flights", "processed/flights", "quarantine/flights")}
    assert run_days(dagster_instance, LANDING_START, LANDING_END, resources).success
    for table, before in tables.items():
        assert_frame_equal(read(storage, table), before)
    assert file_hashes(landing_dir) == hashes


def test_a_failed_blocking_check_stops_downstream_assets(landing_dir, lake_dir, dagster_instance):
    empty_day = landing_dir / "flights" / f"{LANDING_END}.csv"
    empty_day.write_text(",".join(RAW_COLUMNS["flights"]) + "\n")  # the header only
    hashes = file_hashes(landing_dir)
    resources = landing_resources(landing_dir, lake_dir)
    storage = resources["storage"]

    result = run_days(dagster_instance, LANDING_START, LANDING_END, resources)

    assert not result.success
    assert check_results(result)[("flights", "rows_per_day")] is False
    found = materializations(result)
    assert "raw_flights" in found and "flights" in found  # the raw delivery is kept
    assert "flight_features" not in found
    assert not storage.exists("features/flight_features")
    assert file_hashes(landing_dir) == hashes


def test_a_contract_error_fails_the_raw_step_with_the_file_named(landing_dir, lake_dir, dagster_instance):
    weather_file = landing_dir / "weather" / f"{LANDING_END}.csv"
    weather_file.write_text(weather_file.read_text().replace("wind_gust", "gust", 1))
    hashes = file_hashes(landing_dir)
    resources = landing_resources(landing_dir, lake_dir)
    storage = resources["storage"]

    result = run_days(dagster_instance, LANDING_START, LANDING_END, resources)

    assert not result.success
    (failure,) = [e for e in result.events() if e.is_step_failure and e.step_key == "raw_weather"]
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else ""
    message += failure.step_failure_data.error.message
    assert str(weather_file) in message and "missing ['wind_gust']" in message
    assert not storage.exists("raw/weather")
    assert file_hashes(landing_dir) == hashes
