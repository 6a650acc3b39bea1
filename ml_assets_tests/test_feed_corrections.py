"""A feed fault and its correction through the code location's jobs: a day failing a blocking gate
feeds nothing downstream (its own features nor the later days whose window holds it), and its
corrected redelivery recovers it with no manual step."""

from datetime import date

import dagster as dg
import polars as pl

from ml_assets.resources.sources import LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import range_tags, run_in_order
from ml_assets_tests.helpers import check_results, embedded_rows, materializations, run_days, write_landing_zone

FIRST, FAULT, NEXT = date(2013, 3, 1), date(2013, 3, 4), date(2013, 3, 5)


def data_layers(instance, first: date, last: date, resources: dict) -> dg.ExecuteInProcessResult:
    (result,) = run_in_order(instance, [("data_layers", {"resources": resources, "tags": range_tags(first, last)})])
    return result


def step_errors(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key: e.event_specific_data.error.message for e in result.all_events if e.is_step_failure}


def gate_partitions(result, asset: str, check: str) -> dict[str, bool]:
    return {e.partition: e.passed for e in result.get_asset_check_evaluations() if e.asset_key.path == [asset] and e.check_name == check}


def test_a_wrong_unit_fails_the_day_holds_the_next_and_its_corrected_redelivery_recovers_both(tmp_path, dagster_instance):
    root = write_landing_zone(tmp_path / "landing", FIRST, NEXT)
    weather = embedded_rows("weather", FAULT)
    # visibility reported in kilometres instead of miles: half the day's readings break the 0..10 range
    weather.with_columns(visib=(pl.col("visib").cast(pl.Float64) * 1.609 + 8).cast(pl.String)).write_csv(root / "weather" / f"{FAULT}.csv")
    storage = DeltaStorage(base_uri=str(tmp_path / "lake"))
    resources = {"storage": storage, "source": LandingZone(root=str(root))}
    assert run_days(dagster_instance, FIRST, date(2013, 3, 3), resources).success

    fault = data_layers(dagster_instance, FAULT, FAULT, resources)
    assert check_results(fault)[("weather", "quarantine_rate")] is False
    assert "flight_features" not in materializations(fault)

    following = data_layers(dagster_instance, NEXT, NEXT, resources)  # its features read the fault day's weather
    assert f"weather {FAULT} (quarantine_rate)" in step_errors(following)["flight_features"]
    assert set(storage.scan("features/flight_features").collect()["date"]) == {date(2013, 3, d) for d in (1, 2, 3)}

    weather.write_csv(root / "weather" / f"{FAULT}-2.csv")  # the corrected file, redelivered
    recovered = data_layers(dagster_instance, FAULT, FAULT, resources)
    assert recovered.success, step_errors(recovered)
    quarantine = storage.scan("quarantine/weather", FAULT, FAULT).collect()
    assert set(quarantine["rule"]) == {"in_range(0, 10)", "superseded"}  # the first file's rows, kept
    assert data_layers(dagster_instance, NEXT, NEXT, resources).success
    assert set(storage.scan("features/flight_features").collect()["date"]) == {date(2013, 3, d) for d in range(1, 6)}


def test_in_a_ranged_run_each_day_is_gated_on_its_own_and_a_failed_day_feeds_nothing(tmp_path, dagster_instance):
    root = write_landing_zone(tmp_path / "landing", FIRST, NEXT)
    weather = embedded_rows("weather", FAULT)
    weather.with_columns(visib=pl.lit("99")).write_csv(root / "weather" / f"{FAULT}.csv")
    storage = DeltaStorage(base_uri=str(tmp_path / "lake"))
    resources = {"storage": storage, "source": LandingZone(root=str(root))}
    assert run_in_order(dagster_instance, [("dimensions", {"resources": resources})])[0].success

    ranged = data_layers(dagster_instance, FIRST, NEXT, resources)

    assert gate_partitions(ranged, "weather", "quarantine_rate") == {
        "2013-03-01": True, "2013-03-02": True, "2013-03-03": True, str(FAULT): False, str(NEXT): True,
    }  # fmt: skip
    assert "flight_features" not in materializations(ranged)  # the failed gate stopped the range's features
    records = dagster_instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(dg.AssetKey("weather"), "quarantine_rate")], partition_keys=[str(FAULT), str(NEXT)]
    )
    assert {r.partition_key: r.latest_execution_status.value for r in records} == {str(FAULT): "FAILED", str(NEXT): "SUCCEEDED"}
