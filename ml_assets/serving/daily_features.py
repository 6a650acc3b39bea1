"""The daily online features: what changes once a day (the calendar, aircraft attributes, the
trailing disruption rates, route distances), computed for a coming day by the offline functions
of `ml_assets.flights.features` and keyed by entity for the online store.

Day D needs the processed flights of D - FLIGHT_DAYS_BEFORE .. D - LABEL_LAG_DAYS - 1 (complete
days whose outcomes are in), the aircraft, airline and airport tables: nothing of D itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from ml_assets.flights.feature_spec import LABEL_LAG_DAYS
from ml_assets.flights.features import (
    FLIGHT_DAYS_BEFORE,
    HISTORY_GROUPS,
    aircraft_features,
    calendar_features,
    history_features,
    holidays_around,
)

CALENDAR = "calendar"  # month, weekday, is_holiday, days_to_holiday of the day
CATALOG = "catalog"  # the carriers, served origins and airports the service accepts
FLEET = "fleet"  # the aircraft the event feed accepts: the planes table and those flown in the window
CALENDAR_COLUMNS = ["month", "weekday", "is_holiday", "days_to_holiday"]
AIRCRAFT_COLUMNS = ["plane_age", "plane_seats", "plane_engines"]


def history_key(name: str, values: Sequence) -> str:
    """e.g. `origin_hour/JFK/7` for the group `origin_hour` = (origin, hour)."""
    return "/".join([name, *map(str, values)])


def aircraft_key(tailnum: str) -> str:
    return f"aircraft/{tailnum}"


def distance_key(origin: str, dest: str) -> str:
    return f"distance/{origin}/{dest}"


def history_days(day: date) -> tuple[date, date]:
    """First and last day of processed flights that day's daily features are computed from."""
    return day - timedelta(days=FLIGHT_DAYS_BEFORE), day - timedelta(days=LABEL_LAG_DAYS + 1)


def daily_feature_rows(
    flights: pl.DataFrame,
    planes: pl.DataFrame,
    airlines: pl.DataFrame,
    airports: pl.DataFrame,
    day: date,
) -> dict[str, dict]:
    """Entity key → feature values for flights departing on `day` (processed tables in)."""
    first, last = history_days(day)
    window = flights.filter(pl.col("date").is_between(first, last))
    the_day = pl.DataFrame({"date": [day]})
    calendar = calendar_features(the_day, holidays_around(day, day)).row(0, named=True)
    rows: dict[str, dict] = {CALENDAR: {c: calendar[c] for c in CALENDAR_COLUMNS}}

    aircraft = aircraft_features(planes.select("tailnum").join(the_day, how="cross"), planes)
    for row in aircraft.iter_rows(named=True):
        rows[aircraft_key(row["tailnum"])] = {c: row[c] for c in AIRCRAFT_COLUMNS}

    for name, keys in HISTORY_GROUPS.items():
        targets = window.select(keys).unique().join(the_day, how="cross")
        columns = [f"{name}_hist_flights", f"{name}_hist_disruption_rate"]
        for row in history_features(targets, window, {name: keys}).iter_rows(named=True):
            rows[history_key(name, [row[k] for k in keys])] = {c: row[c] for c in columns}

    distances = window.sort("sched_dep_utc").group_by("origin", "dest").agg(pl.col("distance").last())
    for origin, dest, distance in distances.iter_rows():
        rows[distance_key(origin, dest)] = {"distance": distance}

    rows[CATALOG] = {
        "carriers": sorted(airlines.get_column("carrier")),
        "origins": sorted(window.get_column("origin").unique()),
        "airports": sorted(set(airports.get_column("faa")) | set(window.get_column("dest")) | set(window.get_column("origin"))),
    }
    flown = window.get_column("tailnum").drop_nulls()
    rows[FLEET] = {"tailnums": sorted(set(planes.get_column("tailnum")) | set(flown))}
    return rows


def daily_rows_from_lake(storage, day: date) -> tuple[dict[str, dict], dict[str, int]]:
    """`daily_feature_rows` for `day` from the lake's processed tables, and the Delta versions read."""
    first, last = history_days(day)
    tables = ["processed/flights", "processed/planes", "processed/airlines", "processed/airports"]
    versions = {table: storage.version(table) for table in tables}
    flights = storage.scan("processed/flights", first, last, version=versions["processed/flights"]).collect()
    planes, airlines, airports = (storage.scan(t, version=versions[t]).collect() for t in tables[1:])
    return daily_feature_rows(flights, planes, airlines, airports, day), versions
