"""Injected shifts for replays and the drift benchmark, applied to raw rows as the feed sends them.

A shift is written `COLUMN*FACTOR`, `COLUMN+AMOUNT` or `COLUMN-AMOUNT` on a numeric column of the
raw flights or weather (e.g. `visib*0.3`, `dep_delay+45`), or `schedule+MINUTES` /
`schedule-MINUTES`: every scheduled departure moves by that much, with the flight's other clock
times (`hour`, `minute`, `time_hour`, `dep_time`, arrival times), so the processed layer derives a
consistent flight. A flight the move would take into another day keeps its time, so the day keeps
its flights. Several shifts are separated by commas. Missing values stay missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from ml_assets.flights.contracts import RAW_COLUMNS

SCHEDULE = "schedule"
_SPEC = re.compile(r"^\s*(?P<column>[a-z_]+)\s*(?P<op>[*+-])\s*(?P<value>[0-9.]+)\s*$")
# clock times (HHMM) that move with a schedule shift; arrivals too, so durations stay the same
_CLOCK_COLUMNS = ("sched_dep_time", "dep_time", "sched_arr_time", "arr_time")


class ShiftSpecError(ValueError):
    """A shift that cannot be parsed or names no numeric raw column."""


@dataclass(frozen=True)
class Shift:
    column: str  # a raw column, or SCHEDULE
    op: str  # "*" or "+" ("-" is parsed into a negative amount)
    value: float

    @property
    def dataset(self) -> str:
        return "flights" if self.column == SCHEDULE or self.column in RAW_COLUMNS["flights"] else "weather"

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value:g}"


def parse_shifts(text: str) -> list[Shift]:
    shifts = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _SPEC.match(part)
        if not match:
            raise ShiftSpecError(f"shift {part!r}: expected COLUMN*FACTOR, COLUMN+AMOUNT or COLUMN-AMOUNT")
        column, op, value = match["column"], match["op"], float(match["value"])
        known = column == SCHEDULE or column in RAW_COLUMNS["flights"] + RAW_COLUMNS["weather"]
        if not known or column in ("origin", "carrier", "tailnum", "dest", "time_hour"):
            raise ShiftSpecError(f"shift {part!r}: {column!r} is not a numeric raw column nor {SCHEDULE!r}")
        if column == SCHEDULE and op == "*":
            raise ShiftSpecError(f"shift {part!r}: a schedule moves by minutes (schedule+MINUTES)")
        shifts.append(Shift(column, "*" if op == "*" else "+", -value if op == "-" else value))
    return shifts


def apply_shifts(frame: pl.DataFrame, dataset: str, shifts: list[Shift]) -> pl.DataFrame:
    """The raw rows (all strings) of `dataset` with the shifts that concern it applied."""
    for shift in (s for s in shifts if s.dataset == dataset):
        frame = _move_schedule(frame, int(shift.value)) if shift.column == SCHEDULE else _scale(frame, shift)
    return frame


def _number(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def _as_text(value: pl.Expr, integral: bool | pl.Expr) -> pl.Expr:
    whole = value.round(0).cast(pl.Int64).cast(pl.String)
    return pl.when(integral).then(whole).otherwise(value.cast(pl.String))


def _scale(frame: pl.DataFrame, shift: Shift) -> pl.DataFrame:
    number = _number(shift.column)
    value = number * shift.value if shift.op == "*" else number + shift.value
    # a whole number moved by a whole amount stays written as a whole number
    integral = pl.col(shift.column).str.strip_chars().str.contains(r"^-?\d+$") & pl.lit(
        shift.op == "+" and shift.value.is_integer()
    )
    moved = pl.when(number.is_not_null()).then(_as_text(value, integral))
    return frame.with_columns(moved.otherwise(pl.col(shift.column)).alias(shift.column))


def _move_schedule(frame: pl.DataFrame, minutes: int) -> pl.DataFrame:
    scheduled = _number("hour") * 60 + _number("minute")
    stays_in_day = (scheduled + minutes).is_between(0, 24 * 60 - 1)

    def clock(column: str) -> pl.Expr:
        hhmm = _number(column)
        total = ((hhmm // 100) * 60 + hhmm % 100 + minutes) % (24 * 60)
        return pl.when(hhmm.is_not_null()).then(_as_text((total // 60) * 100 + total % 60, True)).otherwise(pl.col(column))

    time_hour = pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False)
    moved_hour = (time_hour + pl.duration(minutes=_number("minute").cast(pl.Int64) + minutes)).dt.truncate("1h")
    new_minutes = scheduled + minutes
    moves = {
        **{column: clock(column) for column in _CLOCK_COLUMNS},
        "hour": _as_text(new_minutes // 60, True),
        "minute": _as_text(new_minutes % 60, True),
        "time_hour": moved_hour.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return frame.with_columns(
        pl.when(stays_in_day).then(expression).otherwise(pl.col(column)).alias(column)
        for column, expression in moves.items()
    )
