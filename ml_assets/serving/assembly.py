"""Online feature assembly: a flight's identity and schedule in, its `flight_features` row out.

The client sends what it knows; the service adds every feature from the online store, as of the
flight's prediction point: the schedule features from the flight itself, the daily rows pushed for
its day (calendar, aircraft, history rates, route distance) and the real-time features from the
event state (`realtime.RealtimeView`). A flight the store cannot describe (an unknown carrier or
airport, a day without daily features, a prediction point before the real-time state) is refused
with the field and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone

from ml_assets.flights.feature_spec import (
    CATEGORICAL_FEATURES,
    CONTEXT_COLUMNS,
    FEATURES,
    NUMERIC_FEATURES,
    PREDICTION_LEAD_HOURS,
)
from ml_assets.flights.features import HISTORY_GROUPS
from ml_assets.serving.daily_features import (
    AIRCRAFT_COLUMNS,
    CALENDAR,
    CATALOG,
    aircraft_key,
    distance_key,
    history_key,
)
from ml_assets.serving.realtime import (
    AIRCRAFT,
    FLIGHT_TAILNUM,
    LOCAL,
    LOOKBACK,
    FlightPoint,
    RealtimeView,
    aircraft_window,
    flight_key,
    realtime_ranges,
    schedule_range,
    tallies,
)
from ml_assets.serving.store import NamedRead, OnlineStore, StoreStatus

LEAD = timedelta(hours=PREDICTION_LEAD_HOURS)
# A live feed sends an observation per airport every hour: a watermark within this of the
# prediction point means the feed has reached it.
FEED_CADENCE = timedelta(hours=1)


@dataclass(frozen=True)
class FlightQuery:
    carrier: str
    flight: int
    origin: str
    dest: str
    sched_dep: datetime  # aware
    tailnum: str | None = None


@dataclass(frozen=True)
class Problem:
    index: int  # which flight of the request
    field: str
    message: str
    kind: str


class FeatureRequestError(ValueError):
    """Flights the online store cannot describe; every problem names its flight and field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"flights[{p.index}].{p.field}: {p.message}" for p in problems))


@dataclass(frozen=True)
class AssembledFlight:
    key: str
    prediction_time: datetime
    features: dict  # every FEATURES column and the context columns
    freshness: dict

    def categorical(self) -> tuple:
        return tuple(self.features[c] for c in CATEGORICAL_FEATURES)

    def numeric(self) -> list[float]:
        return [math.nan if (v := self.features[c]) is None else float(v) for c in NUMERIC_FEATURES]


class FeatureAssembler:
    def __init__(self, store: OnlineStore):
        self.store = store

    def assemble(self, flights: Sequence[FlightQuery]) -> list[AssembledFlight]:
        """Feature rows for the flights, in order; raises FeatureRequestError or OnlineStoreError.
        The store is read once (`read_snapshot`): the schedules, daily rows, real-time entries and
        tallies of every flight, and the aircraft its published schedule names where the client gave none."""
        local = [f.sched_dep.astimezone(LOCAL) for f in flights]
        keys = [flight_key(f.carrier, f.flight, f.origin, t.date()) for f, t in zip(flights, local)]
        given = [_point(f, k, f.tailnum) for f, k in zip(flights, keys)]
        wanted = [_daily_keys(f, t, f.tailnum) for f, t in zip(flights, local)]
        by_day: dict[date, list[str]] = {}
        for t, daily_keys in zip(local, wanted):
            by_day.setdefault(t.date(), []).extend(daily_keys)
        unnamed = [i for i, f in enumerate(flights) if not f.tailnum]
        ranges = [schedule_range(p) for p in given] + realtime_ranges(given)
        named = [
            NamedRead(schedule_range(given[i]), FLIGHT_TAILNUM, local[i].date(), aircraft_key(""), AIRCRAFT,
                      *aircraft_window(given[i]))  # fmt: skip
            for i in unnamed
        ]
        per_flight = [tallies(p) for p in given]  # the tailnum does not change them
        counts = list(dict.fromkeys(t for flight_tallies in per_flight for t in flight_tallies))
        daily_reads = {day: list(dict.fromkeys(k)) for day, k in by_day.items()}
        snapshot = self.store.read_snapshot(daily_reads, ranges, named, counts)
        status = snapshot.status
        problems = [p for i, f in enumerate(flights) for p in _horizon_problems(i, f, local[i].date(), status)]
        if problems:
            raise FeatureRequestError(problems)

        schedules = snapshot.ranges[: len(flights)]
        published = [found[-1][2] if found else None for found in schedules]  # [dest, distance, tailnum]
        daily = [{key: snapshot.daily[t.date()][key] for key in daily_keys} for t, daily_keys in zip(local, wanted)]
        points, aircraft = list(given), {}
        for i, (tailnum, row, entries) in zip(unnamed, snapshot.named):
            if tailnum:
                points[i] = replace(given[i], tailnum=tailnum)
                daily[i][aircraft_key(tailnum)] = row
                aircraft[keys[i]] = entries
        problems = [p for i, f in enumerate(flights) for p in _catalog_problems(i, f, daily[i], published[i])]
        if problems:
            raise FeatureRequestError(problems)

        view = RealtimeView(ranges[len(flights) :], snapshot.ranges[len(flights) :], dict(zip(counts, snapshot.tallies)), aircraft)
        return [
            self._assembled(f, t, point, daily[i], published[i], view.features(point, per_flight[i]), status)
            for i, (f, t, point) in enumerate(zip(flights, local, points))
        ]

    def _assembled(self, flight, local, point, daily, published, realtime, status) -> AssembledFlight:
        features = {"carrier": flight.carrier, "origin": flight.origin, "dest": flight.dest}
        features |= daily[CALENDAR]
        features |= {"sched_hour": local.hour, "sched_minute": local.minute}
        features["distance"] = _distance(flight, daily, published)
        aircraft = daily.get(aircraft_key(point.tailnum)) if point.tailnum else None
        features |= {c: aircraft[c] if aircraft else None for c in AIRCRAFT_COLUMNS}
        features |= realtime
        for name, columns in HISTORY_GROUPS.items():
            rates = daily[history_key(name, _group_values(flight, local, columns))]
            features[f"{name}_hist_flights"] = rates[f"{name}_hist_flights"] if rates else 0
            features[f"{name}_hist_disruption_rate"] = rates[f"{name}_hist_disruption_rate"] if rates else None
        prediction_time = datetime.fromtimestamp(point.at, timezone.utc)
        watermark = status.watermark
        return AssembledFlight(
            key=point.key,
            prediction_time=prediction_time,
            features={c: features[c] for c in [*FEATURES, *CONTEXT_COLUMNS]},
            freshness={
                "daily_features_for": local.date(),
                "daily_features_pushed_at": datetime.fromisoformat(status.daily[local.date()]),
                "events_as_of": datetime.fromtimestamp(watermark, timezone.utc) if watermark is not None else None,
                "realtime_complete": watermark is not None and watermark >= point.at - FEED_CADENCE.total_seconds(),
                "realtime_lag_seconds": max(0.0, point.at - watermark) if watermark is not None else LOOKBACK.total_seconds(),
                "events_received_at": status.last_received,  # wall clock, for the feature-age metric
            },
        )


def _point(flight: FlightQuery, key: str, tailnum: str | None) -> FlightPoint:
    sched = flight.sched_dep.timestamp()
    return FlightPoint(key, flight.carrier, flight.origin, flight.dest, tailnum, sched, sched - LEAD.total_seconds())


def _group_values(flight: FlightQuery, local: datetime, columns: list[str]) -> list:
    values = {"origin": flight.origin, "dest": flight.dest, "carrier": flight.carrier, "flight": flight.flight,
              "hour": local.hour}  # fmt: skip
    return [values[c] for c in columns]


def _daily_keys(flight: FlightQuery, local: datetime, tailnum: str | None) -> list[str]:
    keys = [CALENDAR, CATALOG, distance_key(flight.origin, flight.dest)]
    keys += [history_key(name, _group_values(flight, local, columns)) for name, columns in HISTORY_GROUPS.items()]
    return keys + ([aircraft_key(tailnum)] if tailnum else [])


def _distance(flight: FlightQuery, daily: dict, published: list | None) -> float:
    """The published schedule's distance for this flight, else the route's."""
    if published and published[0] == flight.dest:
        return published[1]
    return daily[distance_key(flight.origin, flight.dest)]["distance"]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _horizon_problems(index: int, flight: FlightQuery, day: date, status: StoreStatus) -> list[Problem]:
    if day not in status.daily:
        held = f"{min(status.daily)}..{max(status.daily)}" if status.daily else "none"
        message = f"no daily features for {day} in the online store (days held: {held})"
        return [Problem(index, "sched_dep", message, "outside_horizon")]
    since = status.realtime_since
    if since is None:
        return [Problem(index, "sched_dep", "the online store has no real-time state yet", "outside_horizon")]
    at = flight.sched_dep.timestamp() - LEAD.total_seconds()
    if at - LOOKBACK.total_seconds() < since:
        message = (
            f"the prediction point {_iso(at)} needs real-time state from {_iso(at - LOOKBACK.total_seconds())}, "
            f"the online store has it from {_iso(since)}"
        )
        return [Problem(index, "sched_dep", message, "outside_horizon")]
    return []


def _catalog_problems(index: int, flight: FlightQuery, daily: dict, published: list | None) -> list[Problem]:
    catalog = daily[CATALOG]
    if catalog is None or daily[CALENDAR] is None:  # the day was replaced or dropped meanwhile
        return [Problem(index, "sched_dep", "the daily features of this day are being replaced: retry", "outside_horizon")]
    problems = []
    if flight.carrier not in catalog["carriers"]:
        problems.append(Problem(index, "carrier", f"unknown carrier {flight.carrier!r}", "unknown_carrier"))
    served = flight.origin in catalog["origins"]
    if not served:
        message = f"origin {flight.origin!r} is not served (served: {', '.join(catalog['origins'])})"
        problems.append(Problem(index, "origin", message, "unknown_airport"))
    if flight.dest not in catalog["airports"]:
        problems.append(Problem(index, "dest", f"unknown airport {flight.dest!r}", "unknown_airport"))
    elif served and not (published and published[0] == flight.dest) and daily[distance_key(flight.origin, flight.dest)] is None:
        message = f"unknown route {flight.origin}-{flight.dest}: no published schedule or recent flight gives its distance"
        problems.append(Problem(index, "dest", message, "unknown_route"))
    return problems
