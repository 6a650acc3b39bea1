"""What the event feed may change: events that cannot be true are rejected with a reason and kept
(the store's dead letters), never applied; and when the real-time state itself looks implausible,
the service is not ready.

The feed's clock is the reference for "too far ahead":
- wall (`ML_ASSETS_FEED_CLOCK=wall`, the default: a live feed): the wall clock. A departure or
  observation may lie at most `max_ahead_s` (300 s) past it;
- replay (`ML_ASSETS_FEED_CLOCK=replay`: a feed of past days, as the embedded 2013 data): the latest departure or observation the store
  applied (its watermark), advanced by each one accepted in a batch; on a store without one, the end
  of the newest day with daily features. A departure or observation may lie at most `replay_gap_s`
  (6 h) past it: a replay jumps over the feed's quiet hours (2013's longest gap between two
  consecutive departures or observations is 4 h 33 min), a day or a year ahead is refused.
Schedules and cancellations announce a departure: their `sched_dep` may lie at most
SCHEDULE_HORIZON past the reference (a day's schedule is published 6 h before it starts), and a
schedule's `published_at` as far as a departure's time.

Entities must be known to the newest day's daily features: the carrier (the airlines table), the
origin (a served airport), the destination (the airports table and recent routes). A departure's
tailnum must be in the fleet (the planes table and the aircraft flown in the history window) or be
the one its flight's published schedule names: a new aircraft enters through the schedule.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from ml_assets.serving.daily_features import CATALOG, FLEET
from ml_assets.serving.realtime import LOCAL, FlightPoint, flight_key, ingest, schedule_range
from ml_assets.serving.schemas import DepartureEvent, ScheduleEvent, WeatherEvent
from ml_assets.serving.store import AppendResult, OnlineStore, Rejection, StoreStatus
from ml_assets.settings import REPLAY_CLOCK, WALL_CLOCK, feed_clock

SCHEDULE_HORIZON = timedelta(hours=48)
# replay: plausible while the state's clock lies between a day before the newest daily features'
# day and two days after it (the daily push may lag the feed by a day)
REPLAY_STATE_BEHIND = timedelta(days=1)
REPLAY_STATE_AHEAD = timedelta(days=2)

AHEAD, NO_DAILY = "ahead_of_feed", "no_daily_features"
UNKNOWN_CARRIER, UNKNOWN_AIRPORT, UNKNOWN_TAILNUM = "unknown_carrier", "unknown_airport", "unknown_tailnum"


@dataclass(frozen=True)
class FeedClock:
    mode: str = WALL_CLOCK
    max_ahead_s: float = 300.0  # live: past the wall clock
    replay_gap_s: float = 6 * 3600.0  # replay: past the latest departure or observation
    max_staleness_s: float = 6 * 3600.0  # live: the state's clock this far behind the wall clock is stale

    def __post_init__(self):
        if self.mode not in (WALL_CLOCK, REPLAY_CLOCK):
            raise ValueError(f"feed clock {self.mode!r}: expected {WALL_CLOCK!r} or {REPLAY_CLOCK!r}")

    @classmethod
    def from_env(cls) -> FeedClock:
        """ML_ASSETS_FEED_CLOCK, ML_ASSETS_EVENT_MAX_AHEAD_SECONDS, ML_ASSETS_REPLAY_MAX_GAP_SECONDS,
        ML_ASSETS_FEED_MAX_STALENESS_SECONDS."""
        default = cls()
        return cls(
            mode=feed_clock(),
            max_ahead_s=float(os.environ.get("ML_ASSETS_EVENT_MAX_AHEAD_SECONDS") or default.max_ahead_s),
            replay_gap_s=float(os.environ.get("ML_ASSETS_REPLAY_MAX_GAP_SECONDS") or default.replay_gap_s),
            max_staleness_s=float(os.environ.get("ML_ASSETS_FEED_MAX_STALENESS_SECONDS") or default.max_staleness_s),
        )

    @property
    def allowance_s(self) -> float:
        return self.max_ahead_s if self.mode == WALL_CLOCK else self.replay_gap_s


@dataclass(frozen=True)
class Screened:
    accepted: list
    rejected: list[Rejection]


def screen(store: OnlineStore, clock: FeedClock, events: Sequence, now: float) -> Screened:
    """Split a batch (in time order) into the events that may be applied and the rejected ones."""
    status = store.status()
    newest = max(status.daily) if status.daily else None
    known = _Known.read(store, newest)
    reference = _reference(clock, status, newest, now)
    observed = status.watermark is not None  # else the first observation replaces the daily-based clock
    batch_schedules = {_key(e) for e in events if isinstance(e, ScheduleEvent)}
    known.read_published(store, [e for e in events if isinstance(e, DepartureEvent) and _key(e) not in batch_schedules])
    accepted, rejected = [], []
    for event in events:
        problem = known.problem(event) or _time_problem(clock, event, reference)
        if problem:
            kind, message = problem
            rejected.append(Rejection(event.event_id, kind, message, event.model_dump(mode="json")))
            continue
        accepted.append(event)
        if isinstance(event, ScheduleEvent):
            known.published[_key(event)] = event.tailnum
        if clock.mode == REPLAY_CLOCK and _is_progress(event):
            reference = max(reference, _progress_time(event)) if observed else _progress_time(event)
            observed = True
    return Screened(accepted, rejected)


def guarded_ingest(store: OnlineStore, clock: FeedClock, events: Sequence, received_at: float) -> tuple[AppendResult, list[Rejection]]:
    """Screen a batch, keep the rejected events with their reasons, apply the others."""
    screened = screen(store, clock, events, received_at)
    if screened.rejected:
        store.dead_letter(screened.rejected, received_at)
    result = ingest(store, screened.accepted, received_at) if screened.accepted else AppendResult(0, 0, 0)
    return result, screened.rejected


def implausible_state(clock: FeedClock, status: StoreStatus, now: float) -> str | None:
    """Why the real-time state cannot be trusted now, or None."""
    watermark = status.watermark
    if clock.mode == WALL_CLOCK:
        if watermark is None:
            return "live feed: the online store has no departure or observation yet"
        if watermark > now + clock.max_ahead_s:
            return f"live feed: the real-time state's clock {_iso(watermark)} is ahead of the wall clock {_iso(now)}"
        if now - watermark > clock.max_staleness_s:
            return (f"live feed is stale: its latest departure or observation is {_iso(watermark)}, "
                    f"{(now - watermark) / 3600:.1f} h ago (bound {clock.max_staleness_s / 3600:g} h)")  # fmt: skip
        return None
    if watermark is None or not status.daily:
        return None
    newest = max(status.daily)
    start = _day_start(newest)
    if watermark > start + 86400 + REPLAY_STATE_AHEAD.total_seconds():
        return (f"the real-time state's clock {_iso(watermark)} is more than {REPLAY_STATE_AHEAD.days} days past "
                f"the newest daily features ({newest})")  # fmt: skip
    if watermark < start - REPLAY_STATE_BEHIND.total_seconds():
        return (f"the real-time state is stale: its clock {_iso(watermark)} is more than {REPLAY_STATE_BEHIND.days} "
                f"day before the newest daily features ({newest})")  # fmt: skip
    return None


class _Known:
    """The entities the newest daily features know, and the aircraft published schedules name."""

    def __init__(self, catalog: dict | None, fleet: dict | None, day: date | None):
        self.catalog, self.day = catalog, day
        self.fleet = frozenset(fleet["tailnums"]) if fleet else frozenset()
        self.published: dict[str, str | None] = {}  # flight key → the tailnum its schedule names

    @classmethod
    def read(cls, store: OnlineStore, day: date | None) -> _Known:
        if day is None:
            return cls(None, None, None)
        catalog, fleet = store.read_daily(day, [CATALOG, FLEET])
        return cls(catalog, fleet, day)

    def read_published(self, store: OnlineStore, departures: list) -> None:
        """The tailnums the store's published schedules name for departures flown by an aircraft
        outside the fleet."""
        wanted = [e for e in departures if e.tailnum and e.tailnum not in self.fleet]
        points = [FlightPoint(_key(e), e.carrier, e.origin, e.dest, None, e.sched_dep.timestamp(), 0.0) for e in wanted]
        for event, found in zip(wanted, store.read_ranges([schedule_range(p) for p in points]) if wanted else []):
            self.published[_key(event)] = found[-1][2][2] if found else None

    def problem(self, event) -> tuple[str, str] | None:
        catalog = self.catalog
        if catalog is None:
            return NO_DAILY, "the online store has no daily features yet: the event's entities cannot be checked"
        if event.origin not in catalog["origins"]:
            return UNKNOWN_AIRPORT, f"origin {event.origin!r} is not served (served: {', '.join(catalog['origins'])})"
        if isinstance(event, WeatherEvent):
            return None
        if event.carrier not in catalog["carriers"]:
            return UNKNOWN_CARRIER, f"unknown carrier {event.carrier!r} (daily features of {self.day})"
        if event.dest not in catalog["airports"]:
            return UNKNOWN_AIRPORT, f"unknown airport {event.dest!r} as dest (daily features of {self.day})"
        tailnum = event.tailnum if isinstance(event, DepartureEvent) else None
        if tailnum and tailnum not in self.fleet and self.published.get(_key(event)) != tailnum:
            return UNKNOWN_TAILNUM, (f"unknown tailnum {tailnum!r}: not in the fleet of the daily features of "
                                     f"{self.day} nor named by the flight's published schedule")  # fmt: skip
        return None


def _reference(clock: FeedClock, status: StoreStatus, newest: date | None, now: float) -> float | None:
    if clock.mode == WALL_CLOCK:
        return now
    if status.watermark is not None:
        return status.watermark
    return _day_start(newest) + 86400 if newest else None


def _time_problem(clock: FeedClock, event, reference: float | None) -> tuple[str, str] | None:
    if reference is None:
        return None
    allowance = clock.allowance_s
    what = "the wall clock" if clock.mode == WALL_CLOCK else "the feed's clock (its latest departure or observation)"
    checks = []
    if _is_progress(event):
        checks.append((_progress_field(event), _progress_time(event), allowance))
    else:
        checks.append(("sched_dep", event.sched_dep.timestamp(), SCHEDULE_HORIZON.total_seconds()))
        if isinstance(event, ScheduleEvent) and event.published_at is not None:
            checks.append(("published_at", event.published_at.timestamp(), allowance))
    for field, moment, limit in checks:
        if moment > reference + limit:
            return AHEAD, (f"{field} {_iso(moment)} lies {_span(moment - reference)} past {what} {_iso(reference)}; "
                           f"at most {_span(limit)} ahead is accepted")  # fmt: skip
    return None


def _is_progress(event) -> bool:
    return isinstance(event, DepartureEvent | WeatherEvent)


def _progress_field(event) -> str:
    return "actual_dep" if isinstance(event, DepartureEvent) else "observed_at"


def _progress_time(event) -> float:
    return (event.actual_dep if isinstance(event, DepartureEvent) else event.observed_at).timestamp()


def _key(event) -> str:
    return flight_key(event.carrier, event.flight, event.origin, event.sched_dep.astimezone(LOCAL).date())


def _day_start(day: date) -> float:
    return datetime.combine(day, time.min, LOCAL).timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def rejection_summary(rejected: Sequence[Rejection], limit: int) -> list[dict]:
    """The first `limit` rejections of a batch as the events response lists them."""
    return [{"event_id": r.event_id, "reason": r.reason, "message": r.message} for r in rejected[:limit]]
