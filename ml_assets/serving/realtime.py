"""Real-time state: events → time-ordered entries in the online store, and the weather and
"operations right now" features computed from them at a flight's prediction point.

Every definition is the offline one from `ml_assets.flights.features`: the same windows
(RECENT_DEPARTURES, ONLINE_WINDOW_HOURS, SCHEDULE_BANK_MINUTES, AIRCRAFT_LOOKBACK,
WEATHER_MAX_AGE, TREND_HOURS), the same on-time rule (left within DISRUPTION_DELAY_MINUTES of
schedule, known that long after it), trailing windows that hold (at - window, at] as
`_add_trailing_sums` does, and as-of lookups that still accept an entry exactly `tolerance` old,
as polars' `join_asof` does. Offline these are computed over a table of the whole day; here they
are kept up to date event by event, so the parity test holds the two to each other on a real day.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from ml_assets.flights.feature_spec import DISRUPTION_DELAY_MINUTES, ONLINE_WINDOW_HOURS
from ml_assets.flights.features import (
    AIRCRAFT_LOOKBACK,
    RECENT_DEPARTURES,
    SCHEDULE_BANK_MINUTES,
    TREND_HOURS,
    WEATHER_MAX_AGE,
    WEATHER_TREND_VALUES,
    WEATHER_VALUES,
)
from ml_assets.serving.schemas import CancellationEvent, DepartureEvent, ScheduleEvent, WeatherEvent
from ml_assets.serving.store import AppendResult, Entry, OnlineStore, StoreEvent, Tally, TimeRange
from ml_assets.settings import TIMEZONE

LOCAL = ZoneInfo(TIMEZONE)  # flight dates, hours and minutes are local, as in the source
# series (entity): what an entry holds, at which time
DEPARTURES = "departures"  # (a RECENT_DEPARTURES group, `group_entity`): value dep_delay, at the actual departure
SCHEDULED = "scheduled"  # (origin): nothing, at the scheduled departure
ON_TIME = "on_time"  # (origin): nothing, at the scheduled departure of a flight that left on time
CANCELLED = "cancelled"  # (origin): nothing, at the scheduled departure
AIRCRAFT = "aircraft"  # (tailnum): value dep_delay, at the actual departure
WEATHER = "weather"  # (origin): payload WEATHER_VALUES, at the observation hour
FLIGHT = "flight"  # (flight key): payload [dest, distance, tailnum], the published schedule of one flight
FLIGHT_TAILNUM = 2  # where a FLIGHT payload names the aircraft

RETENTION = timedelta(hours=48)  # entries older than this behind the watermark expire
EXPIRY_STEP = timedelta(hours=1)  # expire at most once per this much watermark progress
ON_TIME_LIMIT = timedelta(minutes=DISRUPTION_DELAY_MINUTES)
RECENT = timedelta(hours=ONLINE_WINDOW_HOURS)
BANK = timedelta(minutes=SCHEDULE_BANK_MINUTES)
TREND = timedelta(hours=TREND_HOURS)
# how far before a prediction point the features look: a flight needs state from then on
LOOKBACK = max(RECENT + ON_TIME_LIMIT, AIRCRAFT_LOOKBACK, TREND + WEATHER_MAX_AGE)
# the same in seconds, for the per-request path
RECENT_S, ON_TIME_LIMIT_S, BANK_S = RECENT.total_seconds(), ON_TIME_LIMIT.total_seconds(), BANK.total_seconds()
TREND_S, WEATHER_MAX_AGE_S = TREND.total_seconds(), WEATHER_MAX_AGE.total_seconds()
AIRCRAFT_LOOKBACK_S = AIRCRAFT_LOOKBACK.total_seconds()
DEPARTURE_WINDOWS = {name: (by, window.total_seconds()) for name, (by, window) in RECENT_DEPARTURES.items()}


def flight_key(carrier: str, flight: int, origin: str, local_date) -> str:
    """The offline `flight_id`: local date/carrier+flight/origin."""
    return f"{local_date}/{carrier}{flight}/{origin}"


def group_entity(columns: list[str], flight) -> str:
    """The entity of a RECENT_DEPARTURES group, e.g. `origin=JFK/carrier=AA`; `all` for every flight."""
    return "/".join(f"{c}={getattr(flight, c)}" for c in columns) or "all"


DEPARTURE_GROUPS = list({tuple(by): by for by, _ in RECENT_DEPARTURES.values()}.values())


def store_event(event) -> StoreEvent:
    """The entries one event adds to the real-time state."""
    if isinstance(event, WeatherEvent):
        at = event.observed_at.timestamp()
        values = [getattr(event, v) for v in WEATHER_VALUES]
        return StoreEvent(event.event_id, at, (Entry(WEATHER, event.origin, at, payload=values),), progress=True)
    sched = event.sched_dep.timestamp()
    if isinstance(event, ScheduleEvent):
        key = flight_key(event.carrier, event.flight, event.origin, event.sched_dep.astimezone(LOCAL).date())
        entries = (
            Entry(SCHEDULED, event.origin, sched),
            Entry(FLIGHT, key, sched, payload=[event.dest, event.distance, event.tailnum]),
        )
        return StoreEvent(event.event_id, sched, entries, progress=False)
    if isinstance(event, CancellationEvent):
        return StoreEvent(event.event_id, sched, (Entry(CANCELLED, event.origin, sched),), progress=False)
    if isinstance(event, DepartureEvent):
        actual = event.actual_dep.timestamp()
        delay = event.dep_delay
        entries = [Entry(DEPARTURES, group_entity(by, event), actual, delay) for by in DEPARTURE_GROUPS]
        if event.tailnum:
            entries.append(Entry(AIRCRAFT, event.tailnum, actual, delay))
        if event.actual_dep <= event.sched_dep + ON_TIME_LIMIT:
            entries.append(Entry(ON_TIME, event.origin, sched))
        return StoreEvent(event.event_id, actual, tuple(entries), progress=True)
    raise TypeError(f"not an event: {event!r}")


def ingest(store: OnlineStore, events: Sequence, received_at: float) -> AppendResult:
    """Apply events (at most once each) and expire state older than RETENTION behind the watermark."""
    result = store.append([store_event(e) for e in events], received_at)
    status = store.status()
    if status.watermark is not None:
        cutoff = status.watermark - RETENTION.total_seconds()
        if status.expired_before is None or cutoff >= status.expired_before + EXPIRY_STEP.total_seconds():
            store.expire(cutoff)
    return result


@dataclass(frozen=True)
class FlightPoint:
    """What a flight's real-time features depend on; times in epoch seconds."""

    key: str
    carrier: str
    origin: str
    dest: str
    tailnum: str | None
    sched: float
    at: float  # the prediction point


def schedule_range(point: FlightPoint) -> TimeRange:
    return TimeRange(FLIGHT, point.key, point.sched, point.sched)


def _ranges(point: FlightPoint) -> list[TimeRange]:
    """The entries a flight's as-of lookups need (weather, its aircraft's previous departure)."""
    at = point.at
    ranges = [TimeRange(WEATHER, point.origin, at - TREND_S - WEATHER_MAX_AGE_S, at)]
    if point.tailnum:
        ranges.append(TimeRange(AIRCRAFT, point.tailnum, at - AIRCRAFT_LOOKBACK_S, at))
    return ranges


def tallies(point: FlightPoint) -> list[Tally]:
    """The counts (and sums of delays) a flight's trailing windows need, in the order
    `RealtimeView` reads them: the departure windows, then flights due, on time, cancelled, nearby."""
    at, sched = point.at, point.sched
    recent, limit, bank = RECENT_S, ON_TIME_LIMIT_S, BANK_S
    windows = [Tally(DEPARTURES, group_entity(by, point), at - window, at) for by, window in DEPARTURE_WINDOWS.values()]
    # flights due in (at - recent, at]: scheduled `limit` before, so known to be on time or late
    return windows + [
        Tally(SCHEDULED, point.origin, at - recent - limit, at - limit, summed=False),
        Tally(ON_TIME, point.origin, at - recent - limit, at - limit, summed=False),
        Tally(CANCELLED, point.origin, at - recent, at, summed=False),
        Tally(SCHEDULED, point.origin, sched - bank, sched + bank, summed=False),
    ]


def realtime_ranges(points: Sequence[FlightPoint]) -> list[TimeRange]:
    """The entries a batch of flights needs: one range per series and entity, covering every flight
    (the aircraft of a flight without a known tailnum is read by name, see `aircraft_window`)."""
    merged: dict[tuple[str, str], list[float]] = {}
    for point in points:
        for r in _ranges(point):
            bounds = merged.setdefault((r.series, r.entity), [r.start, r.end])
            bounds[0], bounds[1] = min(bounds[0], r.start), max(bounds[1], r.end)
    return [TimeRange(series, entity, start, end) for (series, entity), (start, end) in merged.items()]


def aircraft_window(point: FlightPoint) -> tuple[float, float]:
    """When the aircraft's previous departure may lie, for a flight's prediction point."""
    return point.at - AIRCRAFT_LOOKBACK_S, point.at


def _columns(found: list) -> tuple[list, list, list]:
    return tuple(map(list, zip(*found))) if found else ([], [], [])


class RealtimeView:
    """What the store answered for a batch of flights: entries (`realtime_ranges`, and per flight
    the aircraft its published schedule names when the client did not give it) and tallies, read
    per flight."""

    def __init__(
        self,
        ranges: Sequence[TimeRange],
        found: Sequence[list],
        counted: dict[Tally, tuple[int, float]],
        aircraft: dict[str, list] | None = None,
    ):
        self._entries = {(r.series, r.entity): _columns(entries) for r, entries in zip(ranges, found)}
        self._counted = counted
        self._named_aircraft = {key: _columns(entries) for key, entries in (aircraft or {}).items()}  # by flight key

    def latest(self, series: str, entity: str, at: float, tolerance_s: float) -> tuple | None:
        """(time, value, payload) of the latest entry with at - tolerance_s <= time <= at."""
        return _latest(self._entries.get((series, entity), ([], [], [])), at, tolerance_s)

    def features(self, point: FlightPoint, counts: list[Tally]) -> dict:
        """The flight's real-time features; `counts` are its `tallies(point)`."""
        at = point.at
        return (
            self._weather(point.origin, at)
            | self._departures(counts)
            | self._origin_operations(counts)
            | self._aircraft(point, at)
        )

    def _weather(self, origin: str, at: float) -> dict:
        latest = self.latest(WEATHER, origin, at, WEATHER_MAX_AGE_S)
        values = dict(zip(WEATHER_VALUES, latest[2])) if latest else {}
        before = self.latest(WEATHER, origin, at - TREND_S, WEATHER_MAX_AGE_S)
        earlier = dict(zip(WEATHER_VALUES, before[2])) if before else {}
        features = {f"wx_{v}": values.get(v) for v in WEATHER_VALUES}
        features["wx_age_minutes"] = _minutes(at - latest[0]) if latest else None
        for v in WEATHER_TREND_VALUES:
            now, then = values.get(v), earlier.get(v)
            features[f"wx_{v}_delta_{TREND_HOURS}h"] = now - then if now is not None and then is not None else None
        return features

    def _departures(self, counts: list[Tally]) -> dict:
        features = {}
        for name, tally in zip(DEPARTURE_WINDOWS, counts):
            count, total = self._counted[tally]
            features[f"{name}_departures"] = count
            features[f"{name}_mean_dep_delay"] = total / count if count else None
        return features

    def _origin_operations(self, counts: list[Tally]) -> dict:
        due, on_time, cancelled, nearby = (self._counted[t][0] for t in counts[len(DEPARTURE_WINDOWS) :])
        return {
            "origin_recent_late_share": (due - on_time) / due if due > 0 else None,
            "origin_recent_cancelled": cancelled,
            "origin_scheduled_nearby": nearby,
        }

    def _aircraft(self, point: FlightPoint, at: float) -> dict:
        entries = self._named_aircraft.get(point.key)
        if entries is not None:
            previous = _latest(entries, at, AIRCRAFT_LOOKBACK_S)
        else:
            previous = self.latest(AIRCRAFT, point.tailnum, at, AIRCRAFT_LOOKBACK_S) if point.tailnum else None
        return {
            "aircraft_prev_dep_delay": previous[1] if previous else None,
            "aircraft_prev_dep_minutes_ago": _minutes(at - previous[0]) if previous else None,
        }


def _latest(entries: tuple[list, list, list], at: float, tolerance_s: float) -> tuple | None:
    times, values, payloads = entries
    index = bisect_right(times, at) - 1
    if index >= 0 and index >= bisect_left(times, at - tolerance_s):
        return times[index], values[index], payloads[index]
    return None


def _minutes(seconds: float) -> int:
    """Whole minutes, truncated like polars' `Duration.total_minutes`."""
    return int(seconds // 60)
