"""The data layers' run size (ML_ASSETS_PARTITIONS_PER_RUN): a range cut into runs of at most N days
gives the same tables as one run, the backfill policy follows the variable, bad values are refused."""

import os
import subprocess
import sys
from datetime import date

import dagster as dg
import pytest
from polars.testing import assert_frame_equal

from ml_assets.resources.sources import EmbeddedNycflights13
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import RANGE_END_TAG, RANGE_START_TAG, run_data_layers, run_ranges
from ml_assets.settings import PROJECT_ROOT, _partitions_per_run

START, END = date(2013, 1, 1), date(2013, 1, 5)


def test_a_range_is_cut_into_consecutive_runs_oldest_first():
    assert run_ranges(START, END, None) == [(START, END)]
    assert run_ranges(START, END, 2) == [
        (date(2013, 1, 1), date(2013, 1, 2)), (date(2013, 1, 3), date(2013, 1, 4)), (date(2013, 1, 5), date(2013, 1, 5)),
    ]  # fmt: skip
    assert run_ranges(START, END, 5) == [(START, END)]
    assert run_ranges(START, START, 31) == [(START, START)]


def test_the_variable_takes_a_whole_number_of_days_or_nothing():
    assert _partitions_per_run(None) is None and _partitions_per_run("") is None
    assert _partitions_per_run("31") == 31
    for bad in ("0", "-3", "a week", "7.5"):
        with pytest.raises(ValueError, match=f"ML_ASSETS_PARTITIONS_PER_RUN={bad!r}: expected a whole number"):
            _partitions_per_run(bad)


def backfill_policies(partitions_per_run: str | None) -> str:
    code = (
        "from ml_assets.definitions import daily_assets; "
        "print(sorted({str(a.backfill_policy.max_partitions_per_run) for a in daily_assets}))"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("ML_ASSETS_PARTITIONS_PER_RUN", None)
    if partitions_per_run is not None:
        env["ML_ASSETS_PARTITIONS_PER_RUN"] = partitions_per_run
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return done.stdout.strip() + done.stderr


def test_the_daily_assets_backfill_policy_follows_the_variable():
    assert backfill_policies(None) == "['None']"  # one run for any range, as before
    assert backfill_policies("31") == "['31']"
    assert "ML_ASSETS_PARTITIONS_PER_RUN='zero'" in backfill_policies("zero")


def test_runs_of_two_days_write_the_same_tables_as_one_run(tmp_path):
    source = EmbeddedNycflights13()
    one, split = DeltaStorage(base_uri=str(tmp_path / "one")), DeltaStorage(base_uri=str(tmp_path / "split"))
    with dg.DagsterInstance.ephemeral() as instance:
        single = run_data_layers(instance, START, END, {"storage": one, "source": source}, "ERROR")
        chunked = run_data_layers(instance, START, END, {"storage": split, "source": source}, "ERROR", days_per_run=2)

    assert all(r.success for r in single + chunked)
    ranges = [(r.dagster_run.tags.get(RANGE_START_TAG), r.dagster_run.tags.get(RANGE_END_TAG)) for r in chunked]
    assert ranges == [(None, None), ("2013-01-01", "2013-01-02"), ("2013-01-03", "2013-01-04"), ("2013-01-05", "2013-01-05")]
    for table in ("processed/flights", "processed/weather", "features/flight_features"):
        order = ["date", "flight_id"] if "flight" in table else ["date", "origin", "time_hour"]
        assert_frame_equal(split.scan(table).collect().sort(order), one.scan(table).collect().sort(order))
    # the later runs' features saw the earlier runs' days: history reaches across run boundaries
    last_day = split.scan("features/flight_features", END, END).collect()
    assert last_day.height > 0 and last_day.get_column("carrier_hist_flights").min() > 0
