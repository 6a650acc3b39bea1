"""Per-partition freshness on the feed's clock: the wall clock for a live feed; for a replay, the
time its deliveries say it is, so an on-time replay is fresh and a stalled one is late within an
interval."""

import json
import os
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ml_assets.definitions import daily_assets, defs
from ml_assets.freshness import FRESHNESS_CHECK, expected_day, landing_feed_time
from ml_assets.resources.sources import LandingZone
from ml_assets_tests.helpers import record_run, write_landing_zone

NEW_YORK = ZoneInfo("America/New_York")
DAYS = [date(2013, 10, 1) + timedelta(days=n) for n in range(4)]
PACE = 120.0  # seconds a replayed day


def landed(newest_ago: float) -> dict[date, float]:
    """DAYS delivered PACE seconds apart, the newest `newest_ago` seconds before now."""
    now = time.time()
    return {day: now - newest_ago - PACE * (len(DAYS) - 1 - n) for n, day in enumerate(DAYS)}


def test_a_replayed_feed_runs_on_from_its_newest_day_at_the_pace_of_its_deliveries():
    feed = landing_feed_time(landed(newest_ago=30), time.time())
    day_ended = datetime(2013, 10, 5, tzinfo=NEW_YORK)
    assert abs((feed.now - day_ended).total_seconds() - 30 / PACE * 86400) < 60  # a quarter day on
    assert "delivers a day every 120 s" in feed.basis
    assert expected_day(feed.now) == date(2013, 10, 3)  # 06:00: the deadline of 10-04 is at 09:00
    assert expected_day(landing_feed_time(landed(newest_ago=60), time.time()).now) == date(2013, 10, 4)


def test_an_on_time_feed_is_never_late_and_a_stalled_one_is_late_within_an_interval():
    for ago in (0, 50, 119):  # until the next day is due, the newest day is all that is expected
        assert expected_day(landing_feed_time(landed(ago), time.time()).now) <= DAYS[-1]
    stalled = landing_feed_time(landed(newest_ago=PACE * 1.4), time.time())  # the next day is 0.4 interval overdue
    assert expected_day(stalled.now) == DAYS[-1] + timedelta(days=1)


def test_the_feed_time_before_a_pace_and_before_any_delivery():
    one = {DAYS[0]: time.time() - 10_000}
    assert landing_feed_time(one, time.time()).now == datetime(2013, 10, 2, tzinfo=NEW_YORK)  # no pace: not stalled
    assert landing_feed_time({}, time.time()).now is None


def sensor_results(instance, landing: LandingZone, cursor=None) -> tuple[dict[str, bool], str]:
    (sensor,) = [s for s in defs.sensors if s.name == "freshness"]
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"source": landing})
    result = sensor(context)
    return {e.asset_key.to_user_string(): e.passed for e in result.asset_events if e.check_name == FRESHNESS_CHECK}, result.cursor


@pytest.fixture
def replay(tmp_path, dagster_instance, monkeypatch):
    monkeypatch.setenv("ML_ASSETS_FEED_CLOCK", "landing")
    root = write_landing_zone(tmp_path / "landing", DAYS[0], DAYS[-1])
    record_run(dagster_instance, [a.key.to_user_string() for a in daily_assets], DAYS)

    def deliver(newest_ago: float) -> LandingZone:
        for day, at in landed(newest_ago).items():
            for dataset in ("flights", "weather"):
                os.utime(root / dataset / f"{day}.csv", (at, at))
        return LandingZone(root=str(root))

    return dagster_instance, deliver


def test_an_on_time_replay_is_fresh_and_a_stalled_one_fails_every_daily_asset(replay):
    instance, deliver = replay
    fresh, cursor = sensor_results(instance, deliver(newest_ago=100))  # 2013 data, 2026 wall clock
    assert fresh == {a.key.to_user_string(): True for a in daily_assets}
    again, cursor = sensor_results(instance, deliver(newest_ago=110), cursor)
    assert again == {}  # nothing changed: nothing recorded again

    stalled, _ = sensor_results(instance, deliver(newest_ago=PACE * 1.4), cursor)
    assert stalled == {a.key.to_user_string(): False for a in daily_assets}
    assert json.loads(_)["raw_flights"] == [False, str(DAYS[-1] + timedelta(days=1))]


def test_the_wall_clock_judges_a_live_feed(tmp_path, dagster_instance, monkeypatch):
    monkeypatch.delenv("ML_ASSETS_FEED_CLOCK", raising=False)
    root = write_landing_zone(tmp_path / "landing", DAYS[0], DAYS[-1])
    record_run(dagster_instance, [a.key.to_user_string() for a in daily_assets], DAYS)
    # in 2026 the expected partition is the last of 2013, which this replay never reached
    late, _ = sensor_results(dagster_instance, LandingZone(root=str(root)))
    assert late == {a.key.to_user_string(): False for a in daily_assets}
    record_run(dagster_instance, ["flights"], [date(2013, 12, 31)])
    assert sensor_results(dagster_instance, LandingZone(root=str(root)), _)[0] == {"flights": True}
