"""The event feed as `ml-assets replay --serve-url` sends it: a day of processed flights and
weather → event batches in time order, posted to a running service by `post_events`."""

from collections import Counter
from datetime import datetime, timedelta

import polars as pl
import pytest

from ml_assets.serving.app import create_app
from ml_assets.serving.events import EventPostError, day_event_batches, day_events, post_events
from ml_assets.serving.warmup import parse_events
from ml_assets_tests.serving.conftest import PARITY_DAY, served

DAY = PARITY_DAY + timedelta(days=1)  # not in the warm store: its events are all new


@pytest.fixture(scope="module")
def day_frames(real_lake):
    flights = real_lake.scan("processed/flights", PARITY_DAY, PARITY_DAY).collect()
    weather = real_lake.scan("processed/weather", PARITY_DAY, PARITY_DAY).collect()
    return flights, weather


def known_at(event: dict) -> datetime:
    field = {"schedule": "published_at", "departure": "actual_dep", "cancellation": "sched_dep", "weather": "observed_at"}
    return datetime.fromisoformat(event[field[event["type"]]])


def test_a_day_becomes_every_event_once_in_the_order_it_becomes_known(day_frames):
    flights, weather = day_frames

    events = day_events(flights, weather)

    assert Counter(e["type"] for e in events) == {
        "cancellation": flights.get_column("cancelled").sum(), "departure": flights.get_column("actual_dep_utc").count(),
        "schedule": flights.height, "weather": weather.height,
    }  # fmt: skip
    times = [known_at(e) for e in events]
    assert times == sorted(times)
    assert len({e["event_id"] for e in events}) == len(events)
    schedule = next(e for e in events if e["type"] == "schedule")
    assert schedule["published_at"] == f"{PARITY_DAY - timedelta(days=1)}T18:00:00-05:00"  # 6 h before the day, local
    parse_events(events[:2000])  # the service's own validation accepts them


def test_batches_keep_the_order_and_the_limit(day_frames):
    flights, weather = day_frames

    batches = day_event_batches(flights, weather, batch_size=700)

    assert all(len(b) <= 700 for b in batches) and len(batches[0]) == 700
    assert [e for b in batches for e in b] == day_events(flights, weather)


def test_post_events_applies_a_day_once_and_needs_the_token(make_service, real_lake):
    flights = real_lake.scan("processed/flights", PARITY_DAY, PARITY_DAY).collect().with_columns(
        # the same flights a day later: events the warm store has not seen
        *(pl.col(c) + pl.duration(days=1) for c in ("sched_dep_utc", "actual_dep_utc", "time_hour")),
        date=pl.col("date") + pl.duration(days=1),
        flight_id=pl.format("{}/{}{}/{}", pl.col("date") + pl.duration(days=1), "carrier", "flight", "origin"),
    )
    weather = real_lake.scan("processed/weather", PARITY_DAY, PARITY_DAY).collect().with_columns(
        pl.col("time_hour") + pl.duration(days=1), date=pl.col("date") + pl.duration(days=1)
    )
    events = [e for batch in day_event_batches(flights, weather) for e in batch]
    with served(create_app(make_service(token="feed-token"))) as base:
        with pytest.raises(EventPostError, match="401"):
            post_events(base, events[:10])
        first = post_events(base, events, token="feed-token")
        again = post_events(base, events, token="feed-token", batch_size=2000)

    assert (first["received"], first["applied"], first["duplicates"], first["expired"]) == (len(events), len(events), 0, 0)
    assert (again["applied"], again["duplicates"]) == (0, len(events))
    latest = max(known_at(e) for e in events if e["type"] in ("departure", "weather"))
    assert datetime.fromisoformat(first["events_as_of"]) == latest


def test_the_replay_posts_the_day_it_drops_to_the_running_service(make_service, monkeypatch, tmp_path):
    from ml_assets.replay import post_day, replay

    monkeypatch.setenv("ML_ASSETS_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("ML_ASSETS_API_TOKEN", "feed-token")
    with served(create_app(make_service(token="feed-token"))) as base:
        (dropped,) = replay(DAY, 1, 0, None, None, serve_url=base)
        again = post_day(base, DAY, [])

    assert dropped["day"] == DAY and (tmp_path / "landing" / "flights" / f"{DAY}.csv").exists()
    assert again["applied"] == 0 and again["duplicates"] == again["received"] > 1000  # posted once already
