"""Processed tables: types, rules, keys and derived columns (pandera on polars).

Imported inside asset bodies only: pandera takes about a second to import.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl

UTC = pl.Datetime("us", "UTC")
CODE3 = r"^[A-Z0-9]{3}$"  # FAA/IATA airport code
CODE2 = r"^[A-Z0-9]{2}$"  # IATA carrier code


@dataclass(frozen=True)
class TableRules:
    schema: pa.DataFrameSchema
    key: list[str]
    derive: Callable[[pl.DataFrame], pl.DataFrame] = field(default=lambda frame: frame)


def _col(dtype, nullable=False, checks=()) -> pa.Column:
    return pa.Column(dtype, checks=list(checks), nullable=nullable, coerce=False)


def _range(low, high) -> pa.Check:
    return pa.Check.in_range(low, high)


def _hhmm(nullable: bool) -> pa.Column:
    """Clock time as HHMM; 2400 is midnight at the end of the day, as the source writes it."""
    return _col(pl.Int32, nullable, [_range(0, 2400), pa.Check(lambda d: d.lazyframe.select(
        pl.col(d.key) % 100 < 60), name="minutes_below_60")])  # fmt: skip


def _derive_flights(frame: pl.DataFrame) -> pl.DataFrame:
    """Scheduled departure in UTC (the source's UTC hour plus the minute), the actual departure
    (scheduled + departure delay, so it crosses midnight correctly) and the outcome flags."""
    sched = pl.col("time_hour") + pl.duration(minutes=pl.col("minute"))
    actual = sched + pl.duration(minutes=pl.col("dep_delay"))
    flight_id = pl.format("{}/{}{}/{}", "date", "carrier", "flight", "origin")
    return frame.with_columns(
        flight_id=flight_id,
        sched_dep_utc=sched,
        actual_dep_utc=pl.when(pl.col("dep_time").is_not_null()).then(actual),
        cancelled=pl.col("dep_time").is_null(),
        diverted=pl.col("dep_time").is_not_null() & pl.col("arr_delay").is_null(),
    )


def _date_matches_partition(data) -> pl.LazyFrame:
    # Parsed leniently: an impossible date (month 13, 30 February) fails this row instead of
    # raising for the whole table; a missing part passes here (its own rule reports it).
    parts = [pl.col(c) for c in ("year", "month", "day")]
    text = pl.concat_str([p.cast(pl.String) for p in parts], separator="-")
    local = text.str.to_date("%Y-%m-%d", strict=False)
    complete = pl.all_horizontal([p.is_not_null() for p in parts])
    return data.lazyframe.select(pl.when(complete).then((local == pl.col("date")).fill_null(False)))


# A row's local date must be the day it was delivered for.
_LOCAL_DATE_CHECK = pa.Check(_date_matches_partition, name="local_date_matches_partition")

FLIGHTS = TableRules(
    schema=pa.DataFrameSchema(
        {
            "date": _col(pl.Date),
            "year": _col(pl.Int32, checks=[_range(1900, 2100)]),
            "month": _col(pl.Int32, checks=[_range(1, 12)]),
            "day": _col(pl.Int32, checks=[_range(1, 31), _LOCAL_DATE_CHECK]),
            "dep_time": _hhmm(nullable=True),
            "sched_dep_time": _hhmm(nullable=False),
            "dep_delay": _col(pl.Float64, True, [_range(-240, 2880)]),
            "arr_time": _hhmm(nullable=True),
            "sched_arr_time": _hhmm(nullable=False),
            "arr_delay": _col(pl.Float64, True, [_range(-240, 2880)]),
            "carrier": _col(pl.String, checks=[pa.Check.str_matches(CODE2)]),
            "flight": _col(pl.Int32, checks=[_range(1, 99999)]),
            "tailnum": _col(pl.String, True, [pa.Check.str_matches(r"^[A-Z0-9]{2,8}$")]),
            "origin": _col(pl.String, checks=[pa.Check.str_matches(CODE3)]),
            "dest": _col(pl.String, checks=[pa.Check.str_matches(CODE3)]),
            "air_time": _col(pl.Float64, True, [_range(1, 1440)]),
            "distance": _col(pl.Float64, checks=[_range(1, 12000)]),
            "hour": _col(pl.Int32, checks=[_range(0, 23)]),
            "minute": _col(pl.Int32, checks=[_range(0, 59)]),
            "time_hour": _col(UTC),
            "flight_id": _col(pl.String),
            "sched_dep_utc": _col(UTC),
            "actual_dep_utc": _col(UTC, nullable=True),
            "cancelled": _col(pl.Boolean),
            "diverted": _col(pl.Boolean),
        },
        strict=True,
        name="flights",
    ),
    key=["date", "carrier", "flight", "origin"],
    derive=_derive_flights,
)

WEATHER = TableRules(
    schema=pa.DataFrameSchema(
        {
            "date": _col(pl.Date),
            "origin": _col(pl.String, checks=[pa.Check.str_matches(CODE3)]),
            "year": _col(pl.Int32, checks=[_range(1900, 2100)]),
            "month": _col(pl.Int32, checks=[_range(1, 12)]),
            "day": _col(pl.Int32, checks=[_range(1, 31), _LOCAL_DATE_CHECK]),
            "hour": _col(pl.Int32, checks=[_range(0, 23)]),
            "temp": _col(pl.Float64, True, [_range(-60, 130)]),  # °F
            "dewp": _col(pl.Float64, True, [_range(-80, 100)]),
            "humid": _col(pl.Float64, True, [_range(0, 100)]),
            "wind_dir": _col(pl.Float64, True, [_range(0, 360)]),
            "wind_speed": _col(pl.Float64, True, [_range(0, 150)]),  # mph
            "wind_gust": _col(pl.Float64, True, [_range(0, 200)]),
            "precip": _col(pl.Float64, True, [_range(0, 10)]),  # inches per hour
            "pressure": _col(pl.Float64, True, [_range(900, 1100)]),  # millibars
            "visib": _col(pl.Float64, True, [_range(0, 10)]),  # miles
            "time_hour": _col(UTC),
        },
        strict=True,
        name="weather",
    ),
    key=["origin", "time_hour"],
)

PLANES = TableRules(
    schema=pa.DataFrameSchema(
        {
            "tailnum": _col(pl.String, checks=[pa.Check.str_matches(r"^[A-Z0-9]{2,8}$")]),
            "year": _col(pl.Int32, True, [_range(1930, 2100)]),
            "type": _col(pl.String, True),
            "manufacturer": _col(pl.String, True),
            "model": _col(pl.String, True),
            "engines": _col(pl.Int32, True, [_range(0, 8)]),
            "seats": _col(pl.Int32, True, [_range(1, 1000)]),
            "speed": _col(pl.Float64, True, [_range(0, 1000)]),
            "engine": _col(pl.String, True),
        },
        strict=True,
        name="planes",
    ),
    key=["tailnum"],
)

AIRPORTS = TableRules(
    schema=pa.DataFrameSchema(
        {
            "faa": _col(pl.String, checks=[pa.Check.str_matches(CODE3)]),
            "name": _col(pl.String),
            "lat": _col(pl.Float64, checks=[_range(-90, 90)]),
            "lon": _col(pl.Float64, checks=[_range(-180, 180)]),
            "alt": _col(pl.Float64, True),
            "tz": _col(pl.Float64, True, [_range(-12, 14)]),
            "dst": _col(pl.String, True),
            "tzone": _col(pl.String, True),
        },
        strict=True,
        name="airports",
    ),
    key=["faa"],
)

AIRLINES = TableRules(
    schema=pa.DataFrameSchema(
        {
            "carrier": _col(pl.String, checks=[pa.Check.str_matches(CODE2)]),
            "name": _col(pl.String),
        },
        strict=True,
        name="airlines",
    ),
    key=["carrier"],
)

TABLES = {
    "flights": FLIGHTS,
    "weather": WEATHER,
    "planes": PLANES,
    "airports": AIRPORTS,
    "airlines": AIRLINES,
}
