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
from ml_assets.freshness import FRESHNESS_CHECK, expected_day, landing_expected
from ml_assets.resources.sources import LandingZone
from ml_assets_tests.helpers import record_run, write_landing_zone

NEW_YORK = ZoneInfo("America/New_York")
DAYS = [date(2013, 10, 1) + timedelta(days=n) for n in range(4)]
PACE = 120.0  # seconds a replayed day


def landed(newest_ago: float) -> dict[date, float]:
    """DAYS delivered PACE seconds apart, the newest `newest_ago` seconds before now."""
    now = time.time()
    return {day: now - newest_ago - PACE * (len(DAYS) - 1 - n) for n, day in enumerate(DAYS)}


def expected(newest_ago: float) -> date:
    return landing_expected(landed(newest_ago), time.time()).day


def test_a_replayed_feed_expects_its_newest_day_processed_within_three_quarters_of_its_interval():
    assert expected(newest_ago=0) == expected(newest_ago=PACE * 0.74) == DAYS[-2]  # still being processed
    assert expected(newest_ago=PACE * 0.76) == DAYS[-1]
    assert "the feed delivers a day every 120 s" in landing_expected(landed(10), time.time()).basis


def test_an_on_time_feed_never_expects_an_undelivered_day_and_a_stalled_one_does_within_an_interval():
    for ago in (0, 50, 119):  # until the next day is due, only delivered days are expected
        assert expected(ago) <= DAYS[-1]
    due = PACE  # the next delivery was due one interval after the newest
    assert expected(newest_ago=due + PACE * 0.76) == DAYS[-1] + timedelta(days=1)  # late, within an interval
    assert expected(newest_ago=due + PACE * 1.76) == DAYS[-1] + timedelta(days=2)


def test_before_a_pace_and_before_any_delivery_nothing_undelivered_is_expected():
    assert landing_expected({DAYS[0]: time.time() - 10_000}, time.time()).day == DAYS[0] - timedelta(days=1)
    assert landing_expected({}, time.time()).day is None


def test_the_wall_clock_expects_yesterday_after_nine_in_new_york():
    assert expected_day(datetime(2013, 10, 5, 8, 59, tzinfo=NEW_YORK)) == date(2013, 10, 3)
    assert expected_day(datetime(2013, 10, 5, 9, 0, tzinfo=NEW_YORK)) == date(2013, 10, 4)


def sensor_results(instance, landing: LandingZone, cursor=None) -> tuple[dict[str, bool], str]:
    (sensor,) = [s for s in defs.sensors if s.name == "freshness"]
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"source": landing})
    result = sensor(context)
    sensor_results.events = result.asset_events  # the last tick's, for a closer look
    return {e.asset_key.to_user_string(): e.passed for e in result.asset_events if e.check_name == FRESHNESS_CHECK}, result.cursor


@pytest.fixture
def replay(tmp_path, dagster_instance, monkeypatch):
    monkeypatch.setenv("ML_ASSETS_FEED_CLOCK", "replay")
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

    stalled, _ = sensor_results(instance, deliver(newest_ago=PACE * 1.8), cursor)  # the next day is 0.8 interval overdue
    assert stalled == {a.key.to_user_string(): False for a in daily_assets}
    assert json.loads(_)["raw_flights"] == [False, str(DAYS[-1] + timedelta(days=1))]
    (late,) = [e for e in sensor_results.events if e.asset_key.to_user_string() == "raw_flights"]
    assert late.metadata["reason"].value.startswith(f"partition {DAYS[-1] + timedelta(days=1)} is not materialized yet")


def test_the_wall_clock_judges_a_live_feed(tmp_path, dagster_instance, monkeypatch):
    monkeypatch.delenv("ML_ASSETS_FEED_CLOCK", raising=False)
    root = write_landing_zone(tmp_path / "landing", DAYS[0], DAYS[-1])
    record_run(dagster_instance, [a.key.to_user_string() for a in daily_assets], DAYS)
    # in 2026 the expected partition is the last of 2013, which this replay never reached
    late, _ = sensor_results(dagster_instance, LandingZone(root=str(root)))
    assert late == {a.key.to_user_string(): False for a in daily_assets}
    record_run(dagster_instance, ["flights"], [date(2013, 12, 31)])
    assert sensor_results(dagster_instance, LandingZone(root=str(root)), _)[0] == {"flights": True}
