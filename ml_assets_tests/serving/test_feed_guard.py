"""The feed guard: events that cannot be true (far ahead of the feed's clock, naming an unknown
carrier, airport or aircraft) are rejected with their reason and kept, never applied; the state,
the predictions of the real day and readiness stay as they were; real events still apply. On the
SQLite and the Redis store alike, with the real day of the parity test."""

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from ml_assets.serving.app import create_app
from ml_assets.serving.assembly import FeatureAssembler, FlightQuery
from ml_assets.serving.daily_features import daily_rows_from_lake
from ml_assets.serving.feed_guard import FeedClock, guarded_ingest, implausible_state, screen
from ml_assets.settings import REPLAY_CLOCK, WALL_CLOCK
from ml_assets.serving.realtime import LOCAL
from ml_assets.serving.store import StoreStatus
from ml_assets.serving.warmup import parse_events
from ml_assets_tests.serving.conftest import PARITY_DAY, events_of_days_up_to

HELD_BACK = 300  # the day's last events, posted after the hostile ones
REPLAY = FeedClock(mode=REPLAY_CLOCK)


@pytest.fixture(scope="module")
def real_events(real_lake) -> list:
    """The events of the parity day and the days before, in the order they become known."""
    return events_of_days_up_to(real_lake, PARITY_DAY)


@pytest.fixture
def fed_store(store, real_lake, real_events):
    """The store (each backend) with the parity day's daily features and all but its last events."""
    rows, _ = daily_rows_from_lake(real_lake, PARITY_DAY)
    store.write_daily(PARITY_DAY, rows, datetime.now(timezone.utc))
    for start in range(0, len(real_events) - HELD_BACK, 1000):
        _, rejected = guarded_ingest(store, REPLAY, real_events[start : min(start + 1000, len(real_events) - HELD_BACK)], 1.0)
        assert rejected == []
    return store


def departure(event_id: str, actual: datetime, **identity) -> dict:
    flight = {"carrier": "AA", "flight": 1, "origin": "JFK", "dest": "LAX", "tailnum": "N336AA"} | identity
    return {"type": "departure", "event_id": event_id, **flight, "sched_dep": (actual - timedelta(minutes=5)).isoformat(),
            "actual_dep": actual.isoformat()}  # fmt: skip


def weather(event_id: str, observed: datetime, origin: str = "JFK") -> dict:
    return {"type": "weather", "event_id": event_id, "origin": origin, "observed_at": observed.isoformat(), "visib": 0.1}


def clock_of(store) -> datetime:
    return datetime.fromtimestamp(store.status().watermark, LOCAL)


def the_days_features(store, real_lake) -> list[dict]:
    flights = real_lake.scan("processed/flights", PARITY_DAY, PARITY_DAY).collect().sort("sched_dep_utc")
    queries = [FlightQuery(r["carrier"], r["flight"], r["origin"], r["dest"], r["sched_dep_utc"], r["tailnum"])
               for r in flights.gather_every(97).iter_rows(named=True)]  # fmt: skip
    return [a.features for a in FeatureAssembler(store).assemble(queries)]


def state(store) -> tuple:
    status = store.status()
    return status.watermark, status.coverage_start, status.expired_before, status.last_received


def test_events_a_day_and_a_year_ahead_are_rejected_kept_and_change_nothing(fed_store, real_lake, real_events):
    store = fed_store
    now = clock_of(store)
    before, features = state(store), the_days_features(store, real_lake)
    hostile = parse_events([
        departure("departure/day-ahead", now + timedelta(days=1)),
        weather("weather/year-ahead", now + timedelta(days=365)),
        {"type": "schedule", "event_id": "schedule/far", "carrier": "AA", "flight": 2, "origin": "JFK", "dest": "LAX",
         "sched_dep": (now + timedelta(days=30)).isoformat(), "distance": 2475.0},
    ])  # fmt: skip

    result, rejected = guarded_ingest(store, REPLAY, hostile, 2.0)

    assert (result.applied, [r.reason for r in rejected]) == (0, ["ahead_of_feed"] * 3)
    assert "actual_dep" in rejected[0].message and "past the feed's clock" in rejected[0].message
    assert state(store) == before and the_days_features(store, real_lake) == features
    assert implausible_state(REPLAY, store.status(), 0.0) is None
    dead = store.dead_letters(10)
    assert dead.counts == {"ahead_of_feed": 3}
    assert [d["event_id"] for d in dead.latest] == ["schedule/far", "weather/year-ahead", "departure/day-ahead"]
    assert dead.latest[1]["event"]["observed_at"].startswith(str((now + timedelta(days=365)).date()))

    late, rejected_late = guarded_ingest(store, REPLAY, real_events[-HELD_BACK:], 3.0)  # the real day goes on

    assert (late.applied, rejected_late) == (HELD_BACK, [])
    assert store.status().watermark > before[0]


def test_a_resent_rejected_event_is_kept_once(fed_store):
    hostile = parse_events([weather("weather/far", clock_of(fed_store) + timedelta(days=2))])

    guarded_ingest(fed_store, REPLAY, hostile, 2.0)
    guarded_ingest(fed_store, REPLAY, hostile, 3.0)

    dead = fed_store.dead_letters(10)
    assert dead.counts == {"ahead_of_feed": 1} and len(dead.latest) == 1 and dead.latest[0]["received_at"] == 2.0


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        ({"carrier": "ZZ"}, "unknown_carrier", "unknown carrier 'ZZ'"),
        ({"origin": "BOS"}, "unknown_airport", "origin 'BOS' is not served"),
        ({"dest": "QQQ"}, "unknown_airport", "unknown airport 'QQQ'"),
        ({"tailnum": "ZZ9999ZZ"}, "unknown_tailnum", "unknown tailnum 'ZZ9999ZZ'"),
    ],
)
def test_events_naming_unknown_entities_are_rejected(fed_store, change, reason, says):
    store = fed_store
    at = clock_of(store) - timedelta(minutes=30)
    before = state(store)
    events = parse_events([departure("departure/unknown", at, **change)])

    result, (rejection,) = guarded_ingest(store, REPLAY, events, 2.0)

    assert result.applied == 0 and (rejection.reason, rejection.event_id) == (reason, "departure/unknown")
    assert says in rejection.message
    assert state(store) == before and store.dead_letters(5).counts == {reason: 1}


def test_weather_at_an_airport_not_served_is_rejected(fed_store):
    events = parse_events([weather("weather/BOS", clock_of(fed_store), origin="BOS")])

    _, (rejection,) = guarded_ingest(fed_store, REPLAY, events, 2.0)

    assert rejection.reason == "unknown_airport"


def test_a_new_aircraft_enters_through_its_flights_published_schedule(fed_store):
    store = fed_store
    at = clock_of(store) - timedelta(minutes=30)
    sched = at - timedelta(minutes=5)
    schedule = {"type": "schedule", "event_id": "schedule/new-aircraft", "carrier": "AA", "flight": 4321, "origin": "JFK",
                "dest": "LAX", "sched_dep": sched.isoformat(), "tailnum": "N9NEW9", "distance": 2475.0}  # fmt: skip
    same_batch = parse_events([schedule, departure("departure/new-aircraft", at, flight=4321, tailnum="N9NEW9")])
    other = parse_events([schedule | {"event_id": "schedule/other", "flight": 4322},
                          departure("departure/other", at, flight=4323, tailnum="N9NEW9")])  # fmt: skip

    accepted, none = guarded_ingest(store, REPLAY, same_batch, 2.0)
    _, (refused,) = guarded_ingest(store, REPLAY, other[1:], 3.0)  # another flight: not its schedule

    assert (accepted.applied, none) == (2, [])
    assert refused.reason == "unknown_tailnum"
    later = parse_events([departure("departure/new-aircraft-again", at, flight=4321, tailnum="N9NEW9")])
    assert guarded_ingest(store, REPLAY, later, 4.0)[1] == []  # the schedule is in the store now


def test_on_an_empty_store_the_daily_features_day_is_the_clock_until_the_first_observation(store, real_lake):
    rows, _ = daily_rows_from_lake(real_lake, PARITY_DAY)
    store.write_daily(PARITY_DAY, rows, datetime.now(timezone.utc))
    first = datetime(2013, 2, 6, 5, 0, tzinfo=LOCAL)  # two days before the daily features' day
    events = parse_events([
        weather("w-next-day", datetime(2013, 2, 9, 12, 0, tzinfo=LOCAL)),  # 12 h past the end of that day
        weather("w1", first), weather("w2", first + timedelta(hours=5)), weather("w3", first + timedelta(hours=12)),
    ])  # fmt: skip

    result, rejected = guarded_ingest(store, REPLAY, events, 1.0)

    assert result.applied == 2 and [r.event_id for r in rejected] == ["w-next-day", "w3"]  # w3: 7 h past w2
    assert store.status().watermark == (first + timedelta(hours=5)).timestamp()


def test_live_mode_takes_the_wall_clock(store, real_lake):
    rows, _ = daily_rows_from_lake(real_lake, PARITY_DAY)
    store.write_daily(PARITY_DAY, rows, datetime.now(timezone.utc))
    live = FeedClock(mode=WALL_CLOCK, max_ahead_s=300)
    now = datetime(2013, 2, 8, 12, 0, tzinfo=LOCAL)
    events = parse_events([weather("w-now", now + timedelta(minutes=4)), weather("w-ahead", now + timedelta(minutes=6)),
                           weather("w-past", now - timedelta(hours=3))])  # fmt: skip

    screened = screen(store, live, events, now.timestamp())

    assert [e.event_id for e in screened.accepted] == ["w-now", "w-past"]
    (rejection,) = screened.rejected
    assert rejection.event_id == "w-ahead" and "past the wall clock" in rejection.message


def test_without_daily_features_entities_cannot_be_checked(store):
    events = parse_events([weather("w1", datetime(2013, 2, 8, 5, 0, tzinfo=LOCAL))])

    result, (rejection,) = guarded_ingest(store, REPLAY, events, 1.0)

    assert result.applied == 0 and rejection.reason == "no_daily_features"
    assert store.status().last_received is None  # nothing applied, not even the arrival time


def status(watermark, days=(PARITY_DAY,)) -> StoreStatus:
    return StoreStatus(watermark, watermark, None, 1.0, {d: "2013-02-07T06:00:00+00:00" for d in days})


def test_implausible_state_in_a_replay():
    noon = datetime(2013, 2, 8, 12, 0, tzinfo=LOCAL).timestamp()

    assert implausible_state(REPLAY, status(noon), 0.0) is None
    assert implausible_state(REPLAY, status(None), 0.0) is None  # nothing to judge yet
    assert implausible_state(REPLAY, status(noon + 2.5 * 86400), 0.0) is None
    assert "more than 2 days past the newest daily features (2013-02-08)" in implausible_state(
        REPLAY, status(noon + 3 * 86400), 0.0)  # fmt: skip
    assert "stale" in implausible_state(REPLAY, status(noon - 2 * 86400), 0.0)


def test_implausible_state_in_live_mode():
    live = FeedClock(mode=WALL_CLOCK, max_ahead_s=300, max_staleness_s=3600)
    now = datetime(2013, 2, 8, 12, 0, tzinfo=LOCAL).timestamp()

    assert implausible_state(live, status(now - 600), now) is None
    assert "ahead of the wall clock" in implausible_state(live, status(now + 3600), now)
    assert "stale" in implausible_state(live, status(now - 7200), now)
    assert "no departure or observation" in implausible_state(live, status(None), now)


def test_the_service_rejects_counts_and_shows_them_and_stays_ready(make_service, parity_flights):
    from ml_assets_tests.serving.conftest import flight_request

    service = make_service(token="feed-token")
    now = datetime.fromtimestamp(service.store.status().watermark, LOCAL)
    events = [weather("weather/year-ahead", now + timedelta(days=365)), departure("departure/zz", now, carrier="ZZ")]
    body = flight_request(parity_flights.sort("flight_id").row(0, named=True))
    auth = {"Authorization": "Bearer feed-token"}
    with TestClient(create_app(service)) as client:
        ready_before = client.get("/v2/health/ready").status_code
        answer = client.post("/v1/events", json={"events": events}, headers=auth).json()
        shown = client.get("/v1/status", headers=auth).json()["event_feed"]
        ready_after = client.get("/v2/health/ready")
        predicted = client.post("/v1/predict", json={"flights": [body]}, headers=auth)
        metrics = client.get("/metrics").text

    assert (answer["received"], answer["applied"], answer["rejected"]) == (2, 0, 2)
    assert [(r["event_id"], r["reason"]) for r in answer["rejections"]] == [
        ("weather/year-ahead", "ahead_of_feed"), ("departure/zz", "unknown_carrier")]  # fmt: skip
    assert shown["rejected"] == {"ahead_of_feed": 1, "unknown_carrier": 1}
    assert [d["event_id"] for d in shown["latest_rejected"]] == ["departure/zz", "weather/year-ahead"]
    assert ready_before == ready_after.status_code == 200 and predicted.status_code == 200
    assert 'ml_assets_serving_events_total{outcome="rejected_ahead_of_feed"} 1.0' in metrics
    assert 'ml_assets_serving_events_total{outcome="rejected_unknown_carrier"} 1.0' in metrics


def test_an_implausible_state_makes_the_service_unready_with_the_reason(make_service):
    from ml_assets.serving.realtime import store_event

    service = make_service()
    ahead = datetime.fromtimestamp(service.store.status().watermark, LOCAL) + timedelta(days=365)
    (event,) = parse_events([weather("weather/written-past-the-guard", ahead)])
    service.store.append([store_event(event)], 1.0)  # as an older service without the guard would have
    with TestClient(create_app(service)) as client:
        ready = client.get("/v2/health/ready")

    assert ready.status_code == 503
    assert "real-time state's clock" in ready.json()["reason"] and "past the newest daily features" in ready.json()["reason"]
