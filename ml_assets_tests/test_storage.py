"""DeltaStorage: day-range overwrites, range reads of every day, versions and time travel."""

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml_assets.resources.storage import DeltaStorage
from ml_assets_tests.helpers import days

TABLE = "processed/readings"
D1, D2, D3, D4, D5 = days(date(2013, 3, 1), date(2013, 3, 5))


def readings(*per_day: tuple[date, int], tag: str = "v1") -> pl.DataFrame:
    """`n` rows for each (day, n), values tagged so a rewrite is visible."""
    rows = [(day, i, f"{tag}-{day}-{i}") for day, n in per_day for i in range(n)]
    return pl.DataFrame(rows, schema={"date": pl.Date, "i": pl.Int64, "value": pl.String}, orient="row")


def stored(storage: DeltaStorage, start=None, end=None, version=None) -> pl.DataFrame:
    return storage.scan(TABLE, start, end, version=version).collect().sort("date", "i")


def rows_per_day(frame: pl.DataFrame) -> dict[date, int]:
    return dict(frame.group_by("date").len().sort("date").iter_rows())


def test_write_days_replaces_exactly_its_days(lake_storage):
    lake_storage.write_days(TABLE, readings((D1, 2), (D2, 3), (D3, 4)), D1, D3)

    version = lake_storage.write_days(TABLE, readings((D2, 1), tag="v2"), D2, D2)

    table = stored(lake_storage)
    assert rows_per_day(table) == {D1: 2, D2: 1, D3: 4}
    assert table.filter(pl.col("date") == D2).get_column("value").to_list() == [f"v2-{D2}-0"]
    assert table.filter(pl.col("date") != D2).get_column("value").str.starts_with("v1").all()
    assert version == 1


def test_rewriting_a_range_with_fewer_days_removes_the_missing_days_rows(lake_storage):
    lake_storage.write_days(TABLE, readings((D1, 2), (D2, 2), (D3, 2)), D1, D3)

    lake_storage.write_days(TABLE, readings((D1, 5)), D1, D2)  # D2 is now an empty delivery

    assert rows_per_day(stored(lake_storage)) == {D1: 5, D3: 2}


def test_rerunning_the_same_write_is_idempotent_and_makes_a_new_version(lake_storage):
    frame = readings((D1, 3), (D2, 3))
    first = lake_storage.write_days(TABLE, frame, D1, D2)
    before = stored(lake_storage)

    second = lake_storage.write_days(TABLE, frame, D1, D2)

    assert second == first + 1
    assert_frame_equal(stored(lake_storage), before)
    assert_frame_equal(before, frame.sort("date", "i"))


def test_rows_outside_the_written_range_are_rejected_and_nothing_is_written(lake_storage):
    lake_storage.write_days(TABLE, readings((D1, 1)), D1, D1)

    with pytest.raises(ValueError, match=f"outside the range {D2}..{D3}"):
        lake_storage.write_days(TABLE, readings((D2, 1), (D4, 1)), D2, D3)
    with pytest.raises(ValueError, match="outside the range"):
        lake_storage.write_days(TABLE, readings((D1, 1)), D2, D3)

    assert lake_storage.version(TABLE) == 0
    assert rows_per_day(stored(lake_storage)) == {D1: 1}


@pytest.mark.parametrize("commits", ["one commit per day", "one commit for the range"])
def test_a_multi_day_window_read_returns_every_day(lake_storage, commits):
    """The dagster-deltalake pitfall (DESIGN §3): a window must load all its days, not the first."""
    frame = readings((D1, 1), (D2, 2), (D3, 3), (D4, 4), (D5, 5))
    if commits == "one commit per day":
        for day in (D1, D2, D3, D4, D5):
            lake_storage.write_days(TABLE, frame.filter(pl.col("date") == day), day, day)
    else:
        lake_storage.write_days(TABLE, frame, D1, D5)

    assert rows_per_day(stored(lake_storage, D2, D4)) == {D2: 2, D3: 3, D4: 4}
    assert rows_per_day(stored(lake_storage)) == {D1: 1, D2: 2, D3: 3, D4: 4, D5: 5}
    assert rows_per_day(stored(lake_storage, start=D4)) == {D4: 4, D5: 5}
    assert rows_per_day(stored(lake_storage, end=D1)) == {D1: 1}


def test_time_travel_reads_the_table_as_of_a_version(lake_storage):
    v0 = lake_storage.write_days(TABLE, readings((D1, 2), (D2, 2)), D1, D2)
    v1 = lake_storage.write_days(TABLE, readings((D2, 7), tag="v2"), D2, D2)
    v2 = lake_storage.write_days(TABLE, readings((D3, 1)), D3, D3)

    assert (v0, v1, v2) == (0, 1, 2)
    assert rows_per_day(stored(lake_storage, version=v0)) == {D1: 2, D2: 2}
    assert rows_per_day(stored(lake_storage, version=v1)) == {D1: 2, D2: 7}
    assert rows_per_day(stored(lake_storage, D2, D2, version=v0)) == {D2: 2}
    assert rows_per_day(stored(lake_storage)) == {D1: 2, D2: 7, D3: 1}


def test_partitioned_by_date_on_disk(lake_storage, lake_dir):
    lake_storage.write_days(TABLE, readings((D1, 1), (D2, 1)), D1, D2)

    folders = sorted(p.name for p in (lake_dir / TABLE).iterdir() if p.is_dir() and p.name != "_delta_log")
    assert folders == [f"date={D1}", f"date={D2}"]


def test_a_new_column_is_merged_and_reads_null_on_days_not_rewritten(lake_storage):
    lake_storage.write_days(TABLE, readings((D1, 1), (D2, 1)), D1, D2)

    lake_storage.write_days(TABLE, readings((D2, 1), tag="v2").with_columns(score=pl.lit(0.5)), D2, D2)

    table = stored(lake_storage)
    assert table.select("date", "value", "score").rows() == [(D1, f"v1-{D1}-0", None), (D2, f"v2-{D2}-0", 0.5)]


def test_write_table_replaces_the_whole_table_even_with_a_new_schema(lake_storage):
    lake_storage.write_table("processed/things", pl.DataFrame({"a": [1, 2, 3]}))
    version = lake_storage.write_table("processed/things", pl.DataFrame({"a": [9], "b": ["x"]}))

    assert version == 1
    assert lake_storage.scan("processed/things").collect().rows() == [(9, "x")]
    assert lake_storage.scan("processed/things", version=0).collect().rows() == [(1,), (2,), (3,)]


def test_reading_a_table_that_does_not_exist_names_it(lake_storage):
    assert not lake_storage.exists(TABLE)
    with pytest.raises(FileNotFoundError, match="processed/readings"):
        lake_storage.scan(TABLE)


def test_table_uri_joins_the_base_uri_and_the_table():
    assert DeltaStorage(base_uri="s3://lake/").table_uri("raw/flights") == "s3://lake/raw/flights"
    assert DeltaStorage(base_uri="/data/lake").table_uri("raw/flights") == "/data/lake/raw/flights"
    assert DeltaStorage(base_uri="s3://bucket/JFX/").table_uri("raw/flights") == "s3://bucket/JFX/raw/flights"


def test_write_overwrites_the_given_days_or_the_whole_static_table(lake_storage):
    lake_storage.write(TABLE, readings((D1, 2), (D2, 2)), (D1, D2))
    version = lake_storage.write(TABLE, readings((D2, 1), tag="v2"), (D2, D2))
    assert version == 1 and rows_per_day(stored(lake_storage)) == {D1: 2, D2: 1}

    static = "raw/airports"
    lake_storage.write(static, pl.DataFrame({"faa": ["EWR", "JFK"]}), None)
    assert lake_storage.write(static, pl.DataFrame({"faa": ["LGA"]}), None) == 1
    assert lake_storage.scan(static).collect().get_column("faa").to_list() == ["LGA"]


def test_write_key_replaces_only_the_rows_of_its_key(lake_storage):
    table = "evaluation/summaries"
    lake_storage.write_key(table, pl.DataFrame({"model": ["a", "b"]}), "week", "2013-02-04")
    lake_storage.write_key(table, pl.DataFrame({"model": ["a"]}), "week", "2013-02-11")
    version = lake_storage.write_key(table, pl.DataFrame({"model": ["c"]}), "week", "2013-02-04")

    assert version == 2
    rows = lake_storage.scan(table).collect().sort("week", "model").rows()
    assert rows == [("c", "2013-02-04"), ("a", "2013-02-11")]


@pytest.fixture
def concurrent_writer(monkeypatch, lake_storage):
    """Another writer commits to the same table right after each of our writes, before the storage
    learns the version: the write must still return the version of its own commit."""
    real_write_delta = pl.DataFrame.write_delta
    commits = []

    def write_then_another_commit(frame, target, *, mode, delta_write_options):
        real_write_delta(frame, target, mode=mode, delta_write_options=delta_write_options)
        commits.append(target)
        real_write_delta(frame.head(0), target, mode="append", delta_write_options={"schema_mode": "merge"})

    monkeypatch.setattr(pl.DataFrame, "write_delta", write_then_another_commit)
    return commits


def test_each_write_returns_the_version_of_its_own_commit_despite_a_concurrent_one(lake_storage, concurrent_writer):
    ours = [
        lake_storage.write_days(TABLE, readings((D1, 2)), D1, D1),
        lake_storage.write_key("evaluation/summaries", pl.DataFrame({"model": ["a"]}), "week", "2013-02-04"),
        lake_storage.write_table("raw/airports", pl.DataFrame({"faa": ["EWR"]})),
        lake_storage.write_days(TABLE, readings((D1, 1), tag="v2"), D1, D1),
    ]

    assert len(concurrent_writer) == 4
    assert ours == [0, 0, 0, 2]  # each table's later version is the other writer's
    assert lake_storage.version(TABLE) == 3
    assert stored(lake_storage, version=ours[-1]).get_column("value").to_list() == [f"v2-{D1}-0"]


def test_write_key_merges_a_new_column_into_the_table(lake_storage):
    table = "evaluation/summaries"
    lake_storage.write_key(table, pl.DataFrame({"model": ["a"]}), "week", "2013-02-04")

    lake_storage.write_key(table, pl.DataFrame({"model": ["b"], "roc_auc": [0.7]}), "week", "2013-02-11")

    rows = lake_storage.scan(table).collect().sort("week").select("model", "week", "roc_auc").rows()
    assert rows == [("a", "2013-02-04", None), ("b", "2013-02-11", 0.7)]
