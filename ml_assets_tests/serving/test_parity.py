"""Parity: one real day's events replayed in time order, through the feed guard, give each flight,
asked about at its prediction point, exactly its offline `flight_features` row, on SQLite and on
Redis."""

import time
from datetime import timedelta

import polars as pl

from ml_assets.flights.feature_spec import CONTEXT_COLUMNS, FEATURES, FEATURES_TABLE
from ml_assets.serving.assembly import FeatureAssembler, FlightQuery
from ml_assets.serving.daily_features import daily_rows_from_lake
from ml_assets.serving.feed_guard import FeedClock, guarded_ingest
from ml_assets.settings import REPLAY_CLOCK
from ml_assets_tests.serving.conftest import PARITY_DAY, events_of_days_up_to

TOLERANCE = 1e-6


def known_at(event) -> float:
    """When the event is known: what a live feed would have sent by then."""
    moment = {"schedule": "published_at", "departure": "actual_dep", "cancellation": "sched_dep",
              "weather": "observed_at"}[event.type]  # fmt: skip
    return getattr(event, moment).timestamp()


def replay_and_ask(store, storage, day) -> dict:
    """Push the day's daily features, then for each flight in order of its prediction point: post
    the events known by then and ask for the flight's features, as a client would."""
    from datetime import datetime, timezone

    rows, _ = daily_rows_from_lake(storage, day)
    store.write_daily(day, rows, datetime.now(timezone.utc))
    events = sorted(events_of_days_up_to(storage, day), key=known_at)

    assembler, online, posted = FeatureAssembler(store), {}, 0
    targets = storage.scan("processed/flights", day, day).collect().sort("sched_dep_utc", "flight_id")
    for flight in targets.iter_rows(named=True):
        at = (flight["sched_dep_utc"] - timedelta(hours=2)).timestamp()
        known = posted
        while known < len(events) and known_at(events[known]) <= at:
            known += 1
        if known > posted:
            _, rejected = guarded_ingest(store, FeedClock(mode=REPLAY_CLOCK), events[posted:known], time.time())
            assert rejected == []  # a real day is accepted whole
            posted = known
        query = FlightQuery(flight["carrier"], flight["flight"], flight["origin"], flight["dest"],
                            flight["sched_dep_utc"], flight["tailnum"])  # fmt: skip
        online[flight["flight_id"]] = assembler.assemble([query])[0]
    return online


def mismatches(offline: pl.DataFrame, online: dict) -> list[tuple]:
    """(flight, column, offline value, online value) for every value that differs."""
    found = []
    for row in offline.iter_rows(named=True):
        served = online[row["flight_id"]].features
        for column in [*FEATURES, *CONTEXT_COLUMNS]:
            a, b = row[column], served[column]
            same = (a is None and b is None) if a is None or b is None else (
                a == b if isinstance(a, str) else abs(float(a) - float(b)) <= TOLERANCE
            )  # fmt: skip
            if not same:
                found.append((row["flight_id"], column, a, b))
    return found


def test_a_replayed_day_gives_every_flight_its_offline_features(store, real_lake):
    offline = real_lake.scan(FEATURES_TABLE, PARITY_DAY, PARITY_DAY).collect()

    online = replay_and_ask(store, real_lake, PARITY_DAY)
    different = mismatches(offline, online)

    assert offline.height > 500 and set(online) == set(offline.get_column("flight_id"))
    matching = 1 - len({flight for flight, *_ in different}) / offline.height
    assert matching >= 0.999, different[:50]
    assert different == []  # every flight, every column (listed above if not)
    # the day is not trivial: the features that come from events do vary
    cancelled = [online[f].features["origin_recent_cancelled"] for f in online]
    assert max(cancelled) > 10 and len({online[f].features["wx_visib"] for f in online}) > 3
    assert all(a.freshness["realtime_complete"] for a in online.values())
