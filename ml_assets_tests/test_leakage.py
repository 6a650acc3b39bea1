"""Leakage on the real embedded data: what becomes known after a flight's prediction point must
not change its features (the contract in the docstring of ml_assets/flights/features.py).

For a cut-off time T on the target day D, every target flight whose prediction point is <= T
must keep all its FEATURES when we rewrite what is only known after T: departures after T,
cancellations of flights scheduled after T, outcomes (arrival delays, diversions) of D-1 and D,
weather observed after T. Positive controls change information known before T and show the
comparison catches it.
"""

from datetime import date, datetime, timedelta, timezone

import holidays
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml_assets.flights.feature_spec import FEATURES
from ml_assets.flights.features import (
    FLIGHT_DAYS_BEFORE,
    WEATHER_DAYS_BEFORE,
    build_flight_features,
)
from ml_assets.flights.schemas import TABLES
from ml_assets.quality.validation import validate_rows
from ml_assets.resources.sources import EmbeddedNycflights13

# (target day, cut-off T in UTC): an ordinary summer Friday and the 8 February blizzard.
CASES = {
    "summer-friday": (date(2013, 6, 28), datetime(2013, 6, 28, 18, 0, tzinfo=timezone.utc)),
    "blizzard": (date(2013, 2, 8), datetime(2013, 2, 8, 16, 30, tzinfo=timezone.utc)),
}


def processed(dataset: str, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    source, rules = EmbeddedNycflights13(), TABLES[dataset]
    raw = source.read_days(dataset, start, end) if start else source.read_table(dataset)
    keep = ["date"] if start else []
    return validate_rows(raw, rules.schema, rules.key, rules.derive, keep=keep).clean


class Inputs:
    """The processed inputs one target day needs, and the features built from them."""

    def __init__(self, day: date):
        self.day = day
        self.flights = processed("flights", day - timedelta(days=FLIGHT_DAYS_BEFORE), day)
        self.weather = processed("weather", day - timedelta(days=WEATHER_DAYS_BEFORE), day)
        self.planes = processed("planes")
        self.holidays = sorted(holidays.US(years=[day.year - 1, day.year, day.year + 1]))

    def features(self, flights: pl.DataFrame | None = None, weather: pl.DataFrame | None = None):
        flights = self.flights if flights is None else flights
        weather = self.weather if weather is None else weather
        return build_flight_features(flights, weather, self.planes, self.holidays, self.day, self.day)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    day, cutoff = CASES[request.param]
    inputs = Inputs(day)
    return inputs, cutoff, inputs.features()


def known_by(frame: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """Feature values of the target flights whose prediction point is not after `cutoff`."""
    known = frame.filter(pl.col("prediction_time_utc") <= cutoff)
    return known.select("flight_id", *FEATURES).sort("flight_id")


def changed_columns(before: pl.DataFrame, after: pl.DataFrame) -> set[str]:
    assert before.get_column("flight_id").to_list() == after.get_column("flight_id").to_list()
    return {c for c in FEATURES if not before.get_column(c).equals(after.get_column(c))}


def when(mask: pl.Expr, value, column: str) -> pl.Expr:
    return pl.when(mask).then(value).otherwise(pl.col(column)).alias(column)


def delay_departures(flights: pl.DataFrame, mask: pl.Expr, minutes: int) -> pl.DataFrame:
    """Make the masked (departed) flights leave `minutes` later."""
    mask = mask & pl.col("actual_dep_utc").is_not_null()
    return flights.with_columns(
        when(mask, pl.col("dep_delay") + minutes, "dep_delay"),
        when(mask, pl.col("actual_dep_utc") + pl.duration(minutes=minutes), "actual_dep_utc"),
    )


def cancel(flights: pl.DataFrame, mask: pl.Expr) -> pl.DataFrame:
    mask = mask & ~pl.col("cancelled")
    return flights.with_columns(
        when(mask, None, "dep_time"),
        when(mask, None, "dep_delay"),
        when(mask, None, "actual_dep_utc"),
        when(mask, None, "arr_delay"),
        when(mask, True, "cancelled"),
        when(mask, False, "diverted"),
    )


def operate(flights: pl.DataFrame, mask: pl.Expr, delay: int) -> pl.DataFrame:
    """Un-cancel the masked cancelled flights: they depart `delay` minutes late and arrive."""
    mask = mask & pl.col("cancelled")
    return flights.with_columns(
        when(mask, delay, "dep_delay"),
        when(mask, pl.col("sched_dep_utc") + pl.duration(minutes=delay), "actual_dep_utc"),
        when(mask, float(delay), "arr_delay"),
        when(mask, False, "cancelled"),
    )


def rewrite_outcomes(flights: pl.DataFrame, mask: pl.Expr) -> pl.DataFrame:
    """Flip the arrival outcome of the masked departed flights: late <-> on time, some diverted."""
    mask = mask & ~pl.col("cancelled")
    divert = mask & (pl.col("flight") % 7 == 0)
    arr_delay = pl.col("arr_delay")
    flipped = pl.when(arr_delay >= 15).then(-10.0).otherwise(arr_delay.fill_null(0) + 120)
    return flights.with_columns(
        pl.when(divert).then(None).when(mask).then(flipped).otherwise(arr_delay).alias("arr_delay"),
        when(mask, divert, "diverted"),
    )


def rewrite_weather(weather: pl.DataFrame, mask: pl.Expr) -> pl.DataFrame:
    values = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    return weather.with_columns(when(mask, pl.col(v).fill_null(0) * 1.5 + 7, v) for v in values)


def not_gone_by(cutoff: datetime) -> pl.Expr:
    """Flights scheduled after `cutoff` that had not departed by then (an early departure
    before its scheduled time is known when it happens)."""
    after = pl.lit(cutoff)
    return (pl.col("sched_dep_utc") > after) & (pl.col("actual_dep_utc").fill_null(after) > after)


def after_cutoff_rewritten(inputs: Inputs, cutoff: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inputs with everything that becomes known after `cutoff` changed."""
    day = inputs.day
    flights = inputs.flights
    after = pl.lit(cutoff)
    # outcomes of D-1 and D are complete only a day later (label lag)
    flights = rewrite_outcomes(flights, pl.col("date") >= day - timedelta(days=1))
    # cancellations announced after T: half of the flights scheduled (and departing) after T
    # are cancelled, and the flights cancelled after T operate after all
    flights = operate(flights, pl.col("sched_dep_utc") > after, delay=5)
    flights = cancel(flights, not_gone_by(cutoff) & (pl.col("flight") % 2 == 0))
    # departures after T happen 97 minutes later than they did
    flights = delay_departures(flights, pl.col("actual_dep_utc") > after, minutes=97)

    weather = rewrite_weather(inputs.weather, pl.col("time_hour") > after)
    # and an extra observation half an hour after T at every airport
    extra = weather.filter(pl.col("time_hour") <= after).sort("time_hour").group_by("origin").last()
    extra = extra.with_columns(
        time_hour=after + timedelta(minutes=30), temp=pl.lit(-40.0), visib=pl.lit(0.0)
    )
    return flights, pl.concat([weather, extra.select(weather.columns)])


def test_the_case_has_targets_on_both_sides_of_the_cutoff(case):
    inputs, cutoff, baseline = case
    before = baseline.filter(pl.col("prediction_time_utc") <= cutoff).height
    assert 100 < before < baseline.height
    assert baseline.height == inputs.flights.filter(pl.col("date") == inputs.day).height


def test_information_after_the_prediction_point_does_not_change_features(case):
    inputs, cutoff, baseline = case
    flights, weather = after_cutoff_rewritten(inputs, cutoff)
    assert not flights.equals(inputs.flights) and not weather.equals(inputs.weather)

    rebuilt = inputs.features(flights, weather)

    assert_frame_equal(known_by(rebuilt, cutoff), known_by(baseline, cutoff))

    # the rewrite is big enough to change the features of flights predicted after T
    def later(frame):
        return frame.filter(pl.col("prediction_time_utc") > cutoff).select("flight_id", *FEATURES)

    assert changed_columns(later(baseline), later(rebuilt)) >= {
        "origin_recent_departures", "origin_recent_mean_dep_delay", "wx_temp",
    }  # fmt: skip


def test_each_target_flights_own_outcome_is_not_a_feature(case):
    inputs, cutoff, baseline = case
    targets = pl.col("date") == inputs.day
    flights = cancel(inputs.flights, targets & not_gone_by(cutoff))
    flights = rewrite_outcomes(flights, targets)

    rebuilt = inputs.features(flights)

    assert_frame_equal(known_by(rebuilt, cutoff), known_by(baseline, cutoff))
    assert not rebuilt.get_column("label_disrupted").equals(baseline.get_column("label_disrupted"))


# --- positive controls: the comparison catches a change known before T ------------------------


def test_control_a_departure_before_the_prediction_point_changes_origin_features(case):
    inputs, cutoff, baseline = case
    window = pl.col("actual_dep_utc").is_between(
        pl.lit(cutoff - timedelta(hours=2)), pl.lit(cutoff - timedelta(minutes=40))
    )
    flights = delay_departures(inputs.flights, window, minutes=30)  # still before T

    changed = changed_columns(known_by(baseline, cutoff), known_by(inputs.features(flights), cutoff))

    assert "origin_recent_mean_dep_delay" in changed
    departure_driven = ("origin_recent_", "origin_last_hour_", "dest_recent_",
                        "carrier_origin_recent_", "carrier_recent_", "nyc_recent_", "aircraft_prev_")  # fmt: skip
    assert all(c.startswith(departure_driven) for c in changed), changed


def test_control_a_cancellation_before_the_prediction_point_is_seen(case):
    inputs, cutoff, baseline = case
    window = pl.col("sched_dep_utc").is_between(pl.lit(cutoff - timedelta(hours=2)), pl.lit(cutoff))
    flights = cancel(inputs.flights, window)

    changed = changed_columns(known_by(baseline, cutoff), known_by(inputs.features(flights), cutoff))

    assert "origin_recent_cancelled" in changed


def test_control_outcomes_two_days_before_change_history_features(case):
    inputs, cutoff, baseline = case
    flights = rewrite_outcomes(inputs.flights, pl.col("date") == inputs.day - timedelta(days=2))

    changed = changed_columns(known_by(baseline, cutoff), known_by(inputs.features(flights), cutoff))

    rates = {f"{name}_hist_disruption_rate" for name in ("route", "carrier", "origin_hour")}
    assert rates <= changed
    assert all(c.endswith("_hist_disruption_rate") for c in changed)


def test_control_weather_before_the_prediction_point_changes_weather_features(case):
    inputs, cutoff, baseline = case
    weather = rewrite_weather(inputs.weather, pl.col("time_hour") <= pl.lit(cutoff))

    rebuilt = inputs.features(weather=weather)
    changed = changed_columns(known_by(baseline, cutoff), known_by(rebuilt, cutoff))

    assert {"wx_temp", "wx_visib", "wx_pressure"} <= changed
    assert all(c.startswith("wx_") for c in changed)
