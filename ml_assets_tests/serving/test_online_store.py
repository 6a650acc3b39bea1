"""The online store contract, on the SQLite and the Redis backend alike."""

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from ml_assets.serving.redis_store import RedisOnlineStore
from ml_assets.serving.sqlite_store import SqliteOnlineStore
from ml_assets.serving.store import Entry, OnlineStoreError, StoreEvent, Tally, TimeRange, open_store

DAY = date(2013, 2, 8)
PUSHED = datetime(2013, 2, 7, 6, 0, tzinfo=timezone.utc)


def departure(event_id: str, at: float, delay: float = 5.0) -> StoreEvent:
    return StoreEvent(event_id, at, (Entry("departures", "origin=JFK", at, delay),), progress=True)


def scheduled(event_id: str, at: float) -> StoreEvent:
    return StoreEvent(event_id, at, (Entry("scheduled", "JFK", at), Entry("flight", event_id, at, payload=["LAX", 2475.0, None])), progress=False)  # fmt: skip


def test_open_store_picks_the_backend_from_the_url(tmp_path):
    default = open_store(None, tmp_path)
    explicit = open_store(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    redis = open_store("redis://127.0.0.1:6379/0?prefix=ml_assets_test:open:", tmp_path)

    assert isinstance(default, SqliteOnlineStore) and default.path == tmp_path / "serving" / "online_store.db"
    assert isinstance(explicit, SqliteOnlineStore) and explicit.path == tmp_path / "other.db"
    assert isinstance(redis, RedisOnlineStore) and redis.prefix == "ml_assets_test:open:"
    assert redis.url == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="ML_ASSETS_ONLINE_STORE='postgres://x'"):
        open_store("postgres://x", tmp_path)


def test_redis_url_credentials_stay_out_of_messages():
    store = RedisOnlineStore("redis://user:secret@127.0.0.1:6379/2?prefix=p:")

    assert store.url == "redis://127.0.0.1:6379/2" and "secret" not in store.url


def test_daily_rows_are_replaced_per_day_and_read_by_key(store):
    store.write_daily(DAY, {"calendar": {"month": 2}, "carrier/AA": {"carrier_hist_flights": 3}}, PUSHED)
    store.write_daily(DAY, {"calendar": {"month": 2, "weekday": 5}}, PUSHED)

    assert store.read_daily(DAY, ["calendar", "carrier/AA", "nothing"]) == [{"month": 2, "weekday": 5}, None, None]
    assert store.read_daily(date(2013, 2, 9), ["calendar"]) == [None]
    assert store.read_daily(DAY, []) == []
    assert store.status().daily == {DAY: PUSHED.isoformat()}


def test_daily_rows_older_than_a_week_before_a_push_are_dropped(store):
    for day in (date(2013, 1, 31), date(2013, 2, 1), DAY):
        store.write_daily(day, {"calendar": {"day": str(day)}}, PUSHED)

    assert list(store.status().daily) == [date(2013, 2, 1), DAY]
    assert store.read_daily(date(2013, 1, 31), ["calendar"]) == [None]


def test_an_event_is_applied_once(store):
    first = store.append([departure("d1", 1000.0), departure("d2", 1060.0, 30.0)], received_at=5.0)
    again = store.append([departure("d1", 1000.0), departure("d3", 1120.0)], received_at=6.0)

    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (2, 0, 1, 1)
    (entries,) = store.read_ranges([TimeRange("departures", "origin=JFK", 0.0, 2000.0)])
    assert entries == [(1000.0, 5.0, None), (1060.0, 30.0, None), (1120.0, 5.0, None)]


def test_ranges_include_both_ends_and_come_back_oldest_first(store):
    store.append([scheduled("s3", 300.0), scheduled("s1", 100.0), scheduled("s2", 200.0)], received_at=1.0)

    found = store.read_ranges([
        TimeRange("scheduled", "JFK", 100.0, 200.0),
        TimeRange("scheduled", "JFK", 100.5, 299.9),
        TimeRange("flight", "s3", 300.0, 300.0),
        TimeRange("scheduled", "LGA", 0.0, 1e12),
    ])  # fmt: skip

    assert [[t for t, *_ in entries] for entries in found] == [[100.0, 200.0], [200.0], [300.0], []]
    assert found[2] == [(300.0, None, ["LAX", 2475.0, None])]


def test_tallies_count_and_sum_the_entries_after_one_time_up_to_another(store):
    store.append([departure("d1", 1000.0, 5.0), departure("d2", 1060.0, 30.0), departure("d3", 1120.0, -2.5),
                  scheduled("s1", 1000.0)], received_at=1.0)  # fmt: skip

    counted = store.read_tallies([
        Tally("departures", "origin=JFK", 1000.0, 1120.0),  # the first one is not after 1000
        Tally("departures", "origin=JFK", 0.0, 1060.0),
        Tally("scheduled", "JFK", 999.0, 1000.0),  # entries without values: sum 0
        Tally("departures", "origin=LGA", 0.0, 1e12),
        Tally("departures", "origin=JFK", 0.0, 1060.0, summed=False),  # a count alone
    ])  # fmt: skip

    assert counted == [(2, 27.5), (2, 35.0), (1, 0.0), (0, 0.0), (2, 0.0)]


def test_watermark_and_coverage_come_from_progress_events_only(store):
    store.append([scheduled("s1", 99_000.0)], received_at=10.0)
    assert (store.status().watermark, store.status().coverage_start) == (None, None)

    store.append([departure("d1", 5_000.0), departure("d2", 4_000.0)], received_at=11.0)
    store.append([departure("d3", 4_500.0)], received_at=12.0)
    status = store.status()

    assert (status.watermark, status.coverage_start, status.last_received) == (5_000.0, 4_000.0, 12.0)
    assert status.realtime_since == 4_000.0


def test_expiry_drops_old_entries_and_refuses_events_older_than_it(store):
    store.append([departure("d1", 1000.0), departure("d2", 2000.0), departure("d3", 3000.0)], received_at=1.0)

    dropped = store.expire(2000.0)
    late = store.append([departure("d0", 1500.0), departure("d2", 2000.0), departure("d4", 2500.0)], received_at=2.0)

    assert dropped == 1
    assert (late.applied, late.duplicates, late.expired) == (1, 1, 1)
    (entries,) = store.read_ranges([TimeRange("departures", "origin=JFK", 0.0, 1e12)])
    assert [t for t, *_ in entries] == [2000.0, 2500.0, 3000.0]
    status = store.status()
    assert status.expired_before == 2000.0 and status.realtime_since == 2000.0
    store.expire(1000.0)  # the cutoff never moves back
    assert store.status().expired_before == 2000.0


def test_a_warm_up_sets_where_the_state_starts(store):
    store.set_coverage_start(500.0)
    store.append([departure("d1", 1000.0)], received_at=1.0)

    assert store.status().coverage_start == 500.0 and store.status().realtime_since == 500.0


def test_an_unreachable_redis_is_an_online_store_error(redis_url):
    store = RedisOnlineStore("redis://127.0.0.1:9/0")  # nothing listens on the discard port

    with pytest.raises(OnlineStoreError, match="online store redis://127.0.0.1:9/0"):
        store.ping()
    with pytest.raises(OnlineStoreError):
        store.read_daily(DAY, ["calendar"])


def test_a_sqlite_store_whose_file_is_gone_is_not_ready(tmp_path):
    store = SqliteOnlineStore(tmp_path / "gone" / "store.db")
    store.ping()
    for path in (tmp_path / "gone").iterdir():
        os.remove(path)
    Path(tmp_path / "gone").rmdir()

    with pytest.raises(OnlineStoreError, match="the file is gone"):
        store.ping()
