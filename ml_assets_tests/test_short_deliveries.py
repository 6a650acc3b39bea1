"""A short delivery (a truncated file) fails a blocking check, never feeds features, and the next
complete delivery of that day recovers it."""

from datetime import date, timedelta

import dagster as dg

from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.quality.gates import short_days
from ml_assets.resources.sources import LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import range_tags, run_in_order
from ml_assets_tests.helpers import check_results, materializations, run_days, write_landing_zone

GATE = QUALITY_GATES["flights"]  # at least 100 rows and 60 % of the weekday's recent median
THURSDAY = date(2013, 1, 31)


def counts_with(day_rows: int, history: list[int]) -> dict[date, int]:
    """The day's rows and the same weekday's rows in the weeks before (newest first)."""
    return {THURSDAY: day_rows} | {THURSDAY - timedelta(weeks=k + 1): n for k, n in enumerate(history)}


def test_a_day_under_the_share_of_its_weekday_median_is_short():
    history = [1000, 900, 1100, 980]  # median 990
    assert short_days(counts_with(593, history), [THURSDAY], GATE)["date"].to_list() == [THURSDAY]
    assert short_days(counts_with(595, history), [THURSDAY], GATE).is_empty()  # 60.1 %
    assert short_days(counts_with(99, []), [THURSDAY], GATE)["date"].to_list() == [THURSDAY]  # the floor
    assert short_days(counts_with(101, []), [THURSDAY], GATE).is_empty()


def test_the_median_needs_two_earlier_weekdays_and_ignores_other_weekdays():
    one_week = counts_with(300, [1000])
    assert short_days(one_week, [THURSDAY], GATE).is_empty()  # one earlier Thursday is no median
    other_days = counts_with(300, [1000, 1000]) | {THURSDAY - timedelta(days=1): 5000}
    (row,) = short_days(other_days, [THURSDAY], GATE).rows(named=True)
    assert (row["weekday_median"], row["share"]) == (1000.0, 0.3)
    # a holiday-sized Thursday (Thanksgiving 2013 had 64 %) is not short
    assert short_days(counts_with(634, [989, 990, 1000, 950]), [THURSDAY], GATE).is_empty()


def data_layers(instance, day: date, resources: dict) -> dg.ExecuteInProcessResult:
    (result,) = run_in_order(instance, [("data_layers", {"resources": resources, "tags": range_tags(day, day)})])
    return result


def failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key: e.event_specific_data.error.message for e in result.all_events if e.is_step_failure}


def test_a_truncated_delivery_blocks_features_until_its_complete_redelivery(tmp_path, dagster_instance):
    start, short_day = date(2013, 1, 1), date(2013, 1, 15)  # two Tuesdays before the short one
    root = write_landing_zone(tmp_path / "landing", start, short_day + timedelta(days=1))
    complete = (root / "flights" / f"{short_day}.csv").read_text()
    lines = complete.splitlines(keepends=True)
    (root / "flights" / f"{short_day}.csv").write_text("".join(lines[: len(lines) * 2 // 5]))
    storage = DeltaStorage(base_uri=str(tmp_path / "lake"))
    resources = {"storage": storage, "source": LandingZone(root=str(root))}
    assert run_days(dagster_instance, start, short_day - timedelta(days=1), resources).success

    short = data_layers(dagster_instance, short_day, resources)
    assert check_results(short)[("flights", "rows_per_day")] is False
    assert "flight_features" not in materializations(short)  # blocked in the same run

    next_day = data_layers(dagster_instance, short_day + timedelta(days=1), resources)
    assert not next_day.success
    assert f"short deliveries for {short_day}" in failures(next_day)["flight_features"]
    stored = storage.scan("features/flight_features").collect()
    assert set(stored["date"]) == {start + timedelta(days=n) for n in range(14)}  # nothing fed

    (root / "flights" / f"{short_day}-2.csv").write_text(complete)  # the complete redelivery
    recovered = data_layers(dagster_instance, short_day, resources)
    assert recovered.success and check_results(recovered)[("flights", "rows_per_day")] is True
    assert data_layers(dagster_instance, short_day + timedelta(days=1), resources).success
    rows = storage.scan("processed/flights", short_day, short_day).collect()
    assert rows.height == len(lines) - 1
    superseded = storage.scan("quarantine/flights", short_day, short_day).collect()
    assert set(superseded["rule"]) == {"superseded"}  # the truncated file's rows, kept
    assert superseded.height == len(lines) * 2 // 5 - 1
    rebuilt = storage.scan("features/flight_features", short_day, short_day + timedelta(days=1)).collect()
    assert rebuilt["date"].n_unique() == 2


def test_a_day_cut_off_mid_file_is_short_without_any_history_and_recovers_on_its_redelivery(tmp_path, dagster_instance):
    day = date(2013, 1, 1)  # the landing zone's first day: no earlier weeks to compare with
    root = write_landing_zone(tmp_path / "landing", day, day)
    complete = (root / "flights" / f"{day}.csv").read_text()
    (root / "flights" / f"{day}.csv").write_text(complete[: len(complete) * 9 // 10].rstrip("\n"))  # 90 %, mid-line
    storage = DeltaStorage(base_uri=str(tmp_path / "lake"))
    resources = {"storage": storage, "source": LandingZone(root=str(root))}
    assert run_in_order(dagster_instance, [("dimensions", {"resources": resources})])[0].success

    cut = data_layers(dagster_instance, day, resources)
    assert check_results(cut)[("flights", "rows_per_day")] is False
    assert "flight_features" not in materializations(cut)
    (evaluation,) = [e for e in cut.get_asset_check_evaluations() if e.check_name == "rows_per_day" and e.asset_key.path == ["flights"]]
    assert evaluation.partition == str(day)
    assert evaluation.metadata["cut_off_files"].value == {str(day): str(root / "flights" / f"{day}.csv")}

    (root / "flights" / f"{day}-2.csv").write_text(complete)
    recovered = data_layers(dagster_instance, day, resources)
    assert recovered.success and check_results(recovered)[("flights", "rows_per_day")] is True
    assert "flight_features" in materializations(recovered)
