"""The landing-zone sensor: which deliveries trigger runs, and that nothing runs twice."""

import os
import re
import shutil
from datetime import date

import dagster as dg

from ml_assets.resources.sources import EmbeddedNycflights13, LandingZone
from ml_assets.sensors import landing_zone_sensor
from ml_assets_tests.helpers import write_landing_zone


def evaluate(source, cursor=None) -> dg.SensorResult:
    from ml_assets.definitions import defs

    context = dg.build_sensor_context(cursor=cursor, resources={"source": source}, definitions=defs)
    return landing_zone_sensor(context)


def test_each_completely_delivered_day_is_requested_once(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 2))
    first = evaluate(LandingZone(root=str(root)))
    assert [r.partition_key for r in first.run_requests] == ["2013-01-01", "2013-01-02"]
    assert all(r.tags["ml_assets/trigger"] == "landing_zone" for r in first.run_requests)

    again = evaluate(LandingZone(root=str(root)), cursor=first.cursor)
    assert again.run_requests == []


def test_a_day_waits_until_every_daily_dataset_is_delivered(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 2))
    (root / "weather" / "2013-01-02.csv").unlink()
    first = evaluate(LandingZone(root=str(root)))
    assert [r.partition_key for r in first.run_requests] == ["2013-01-01"]

    write_landing_zone(tmp_path / "later", date(2013, 1, 2), date(2013, 1, 2))
    os.rename(tmp_path / "later" / "weather" / "2013-01-02.csv", root / "weather" / "2013-01-02.csv")
    second = evaluate(LandingZone(root=str(root)), cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2013-01-02"]


def test_a_redelivery_with_new_content_runs_its_day_again_with_a_new_run_key(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 2))
    first = evaluate(LandingZone(root=str(root)))
    original = root / "flights" / "2013-01-01.csv"
    corrected = original.read_text().replace(",UA,", ",AA,", 1)
    (root / "flights" / "2013-01-01-2.csv").write_text(corrected)

    second = evaluate(LandingZone(root=str(root)), cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2013-01-01"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key

    # the same path delivered again with other bytes (same size, same time) is new content too
    stat = original.stat()
    original.write_text(original.read_text().replace(",UA,", ",DL,", 1))
    os.utime(original, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    third = evaluate(LandingZone(root=str(root)), cursor=second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2013-01-01"]
    assert third.run_requests[0].run_key not in {first.run_requests[0].run_key, second.run_requests[0].run_key}
    assert evaluate(LandingZone(root=str(root)), cursor=third.cursor).run_requests == []


def test_the_same_bytes_copied_or_touched_never_run_twice(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 2))
    first = evaluate(LandingZone(root=str(root)))
    original = root / "weather" / "2013-01-02.csv"
    shutil.copy2(original, root / "weather" / "2013-01-02-copy.csv")  # a copy under a new name
    os.utime(root / "flights" / "2013-01-01.csv")  # a touch

    again = evaluate(LandingZone(root=str(root)), cursor=first.cursor)
    assert again.run_requests == []
    # even with the cursor lost, the run keys are the ones already used (Dagster skips them)
    fresh = evaluate(LandingZone(root=str(root)))
    assert {r.run_key for r in fresh.run_requests} == {r.run_key for r in first.run_requests}


def test_days_outside_the_partitions_and_stray_files_are_ignored(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 1))
    for dataset in ("flights", "weather"):
        (root / dataset / "2031-05-05.csv").write_bytes((root / dataset / "2013-01-01.csv").read_bytes())
        (root / dataset / "README.txt").write_text("notes")
    result = evaluate(LandingZone(root=str(root)))
    assert [r.partition_key for r in result.run_requests] == ["2013-01-01"]


def test_the_embedded_source_skips():
    result = evaluate(EmbeddedNycflights13())
    assert isinstance(result, dg.SkipReason)


def test_a_file_with_unchanged_time_and_size_is_not_read_again_until_touched(tmp_path):
    """The cursor keeps each file's content hash with its time and size: a file rewritten with the
    same size and time keeps its hash (not read again); once its time changes it is read, and its
    new content runs its day again."""
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 2))
    first = evaluate(LandingZone(root=str(root)))
    flights = root / "flights" / "2013-01-01.csv"
    before = flights.stat()
    content = flights.read_bytes()
    flights.write_bytes(content.replace(b"EWR", b"LGA", 1))
    os.utime(flights, ns=(before.st_atime_ns, before.st_mtime_ns))

    unread = evaluate(LandingZone(root=str(root)), cursor=first.cursor)
    assert unread.run_requests == []

    os.utime(flights)
    touched = evaluate(LandingZone(root=str(root)), cursor=unread.cursor)
    assert [r.partition_key for r in touched.run_requests] == ["2013-01-01"]
    assert evaluate(LandingZone(root=str(root)), cursor=touched.cursor).run_requests == []


def test_run_keys_are_the_day_and_16_hex_digits_of_its_content_digest(tmp_path):
    """Run keys outlive a deploy: Dagster skips a key it has launched, so their form is fixed."""
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 1))
    (request,) = evaluate(LandingZone(root=str(root))).run_requests
    assert re.fullmatch(r"2013-01-01@[0-9a-f]{16}", request.run_key)


def test_the_landing_zone_runs_the_days_whole_chain_in_one_run():
    from ml_assets.definitions import defs

    (job,) = [j for j in defs.jobs if j.name == landing_zone_sensor.job_name]
    graph = defs.resolve_asset_graph()
    assets = {k.to_user_string() for k in job.selection.resolve(graph)}
    checks = {k.name for k in job.selection.resolve_checks(graph)}
    assert {"raw_flights", "raw_weather", "flights", "weather", "flight_features", "batch_predictions"} == assets
    assert {"feature_drift", "score_drift", "quarantine_rate", "rows_per_day", "flight_id_unique"} <= checks
    assert "freshness_check" not in checks  # the freshness sensor's


def test_the_landing_zone_request_names_the_chains_assets_and_checks(tmp_path):
    root = write_landing_zone(tmp_path / "landing", date(2013, 1, 1), date(2013, 1, 1))
    (request,) = evaluate(LandingZone(root=str(root))).run_requests
    # named, so automation sees the run executed the day's checks with their inputs (no second run)
    assert {k.to_user_string() for k in request.asset_selection} >= {"raw_flights", "flight_features", "batch_predictions"}
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in request.asset_check_keys}
    assert {"flight_features:feature_drift", "batch_predictions:score_drift", "weather:quarantine_rate"} <= checks
    assert not any(name.endswith(":freshness_check") for name in checks)
