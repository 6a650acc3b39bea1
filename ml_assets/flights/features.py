"""Flight features, point-in-time correct at the prediction point (2 h before scheduled departure).

What is known when, the contract the leakage test enforces:
- a flight's schedule (carrier, route, times, aircraft) is published in advance;
- its actual departure (and so its departure delay) is known when it departs;
- a cancellation is known by its scheduled departure (airlines announce them ahead);
- whether it left within 15 min of schedule is known 15 min after its scheduled departure;
- its arrival outcome (the label) is complete LABEL_LAG_DAYS after its day;
- a weather observation is known at its observation hour.
"""

from datetime import date, timedelta

import polars as pl

from ml_assets.flights.feature_spec import (
    CONTEXT_COLUMNS,
    DISRUPTION_DELAY_MINUTES,
    FEATURES,
    HISTORY_DAYS,
    KEY_COLUMNS,
    LABEL,
    LABEL_COLUMNS,
    LABEL_LAG_DAYS,
    ONLINE_WINDOW_HOURS,
    PREDICTION_LEAD_HOURS,
)

WEATHER_VALUES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
                  "pressure", "visib"]  # fmt: skip
WEATHER_TREND_VALUES = ["temp", "pressure", "visib", "wind_speed"]
WEATHER_MAX_AGE = timedelta(hours=6)  # an older observation is treated as missing
TREND_HOURS = 3

# How many days of each input one day of features needs, before the day itself.
FLIGHT_DAYS_BEFORE = HISTORY_DAYS + LABEL_LAG_DAYS
WEATHER_DAYS_BEFORE = 1  # early departures have their prediction point on the previous day


def holidays_around(start: date, end: date) -> list[date]:
    """US federal holidays from the year before `start` to the year after `end` (the distance to
    the nearest one looks across year ends)."""
    import holidays

    return sorted(holidays.US(years=range(start.year - 1, end.year + 2)))


def build_flight_features(
    flights: pl.DataFrame,
    weather: pl.DataFrame,
    planes: pl.DataFrame,
    holidays: list[date],
    start: date,
    end: date,
) -> pl.DataFrame:
    """Features and labels for the flights of days start..end.

    `flights` must cover start - FLIGHT_DAYS_BEFORE .. end and `weather` start -
    WEATHER_DAYS_BEFORE .. end (processed tables); `planes` is the aircraft dimension.
    """
    targets = (
        flights.filter(pl.col("date").is_between(start, end))
        .with_columns(
            prediction_time_utc=pl.col("sched_dep_utc") - pl.duration(hours=PREDICTION_LEAD_HOURS)
        )
        .sort("prediction_time_utc")
    )
    targets = _schedule_features(targets, holidays)
    targets = aircraft_features(targets, planes).sort("prediction_time_utc")
    targets = _weather_features(targets, weather)
    targets = _operations_features(targets, flights)
    targets = history_features(targets, flights)
    targets = targets.with_columns(
        _disrupted(pl.col("arr_delay"), pl.col("cancelled"), pl.col("diverted")).alias(LABEL),
        label_arr_delay=pl.col("arr_delay"),
    )
    columns = KEY_COLUMNS + CONTEXT_COLUMNS + FEATURES + LABEL_COLUMNS
    return targets.select(columns).sort("sched_dep_utc", "flight_id")


def _disrupted(arr_delay: pl.Expr, cancelled: pl.Expr, diverted: pl.Expr) -> pl.Expr:
    """FAA: arrival delay >= 15 min is late; cancelled and diverted flights are disrupted."""
    return (arr_delay >= DISRUPTION_DELAY_MINUTES).fill_null(False) | cancelled | diverted


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    """numerator / denominator, null (unknown) when there is nothing to divide by."""
    return pl.when(pl.col(denominator) > 0).then(pl.col(numerator) / pl.col(denominator))


def calendar_features(days: pl.DataFrame, holidays: list[date]) -> pl.DataFrame:
    """For a frame of days (`date`): month, weekday, is_holiday and days_to_holiday."""
    distance = pl.min_horizontal(
        [(pl.col("date") - pl.lit(h)).dt.total_days().abs() for h in holidays] or [pl.lit(None)]
    )
    return days.with_columns(
        is_holiday=pl.col("date").is_in(holidays).cast(pl.Int8),
        days_to_holiday=distance.cast(pl.Int32),
        month=pl.col("date").dt.month().cast(pl.Int32),
        weekday=pl.col("date").dt.weekday().cast(pl.Int32),
    )


def _schedule_features(targets: pl.DataFrame, holidays: list[date]) -> pl.DataFrame:
    days = calendar_features(targets.select(pl.col("date").unique().sort()), holidays)
    return targets.join(days, on="date", how="left").with_columns(
        sched_hour=pl.col("hour"),
        sched_minute=pl.col("minute"),
    )


def aircraft_features(targets: pl.DataFrame, planes: pl.DataFrame) -> pl.DataFrame:
    """Age (in the year of the target's `date`), seats and engines of the target's `tailnum`."""
    aircraft = planes.select(
        "tailnum",
        plane_built=pl.col("year"),
        plane_seats=pl.col("seats"),
        plane_engines=pl.col("engines"),
    )
    joined = targets.join(aircraft, on="tailnum", how="left")
    age = pl.col("date").dt.year() - pl.col("plane_built")
    return joined.with_columns(plane_age=age.cast(pl.Int32)).drop("plane_built")


def _weather_features(targets: pl.DataFrame, weather: pl.DataFrame) -> pl.DataFrame:
    """Latest observation at the origin not after the prediction point, and its 3-hour trend."""
    observations = weather.select(
        "origin", observed_utc=pl.col("time_hour"), **{f"wx_{v}": pl.col(v) for v in WEATHER_VALUES}
    ).sort("observed_utc")
    latest = targets.join_asof(
        observations,
        left_on="prediction_time_utc",
        right_on="observed_utc",
        by="origin",
        strategy="backward",
        tolerance=WEATHER_MAX_AGE,
        check_sortedness=False,  # both sides sorted by time
    ).with_columns(
        wx_age_minutes=(pl.col("prediction_time_utc") - pl.col("observed_utc")).dt.total_minutes()
    )
    earlier = (
        latest.with_columns(
            trend_time=pl.col("prediction_time_utc") - pl.duration(hours=TREND_HOURS)
        )
        .sort("trend_time")
        .join_asof(
            observations.select(
                "origin", "observed_utc", *[pl.col(f"wx_{v}").alias(f"before_{v}") for v in WEATHER_TREND_VALUES]
            ).rename({"observed_utc": "before_utc"}),
            left_on="trend_time",
            right_on="before_utc",
            by="origin",
            strategy="backward",
            tolerance=WEATHER_MAX_AGE,
            check_sortedness=False,
        )
    )
    deltas = {
        f"wx_{v}_delta_{TREND_HOURS}h": pl.col(f"wx_{v}") - pl.col(f"before_{v}")
        for v in WEATHER_TREND_VALUES
    }
    helper_columns = ["observed_utc", "trend_time", "before_utc"] + [
        f"before_{v}" for v in WEATHER_TREND_VALUES
    ]
    return earlier.with_columns(**deltas).drop(helper_columns).sort("prediction_time_utc")


# Recent departures (count, mean departure delay) by grouping and look-back window.
RECENT_DEPARTURES = {
    "origin_recent": (["origin"], timedelta(hours=ONLINE_WINDOW_HOURS)),
    "origin_last_hour": (["origin"], timedelta(hours=1)),
    "dest_recent": (["dest"], timedelta(hours=ONLINE_WINDOW_HOURS)),  # ground delays at the destination
    "carrier_origin_recent": (["origin", "carrier"], timedelta(hours=ONLINE_WINDOW_HOURS)),
    "carrier_recent": (["carrier"], timedelta(hours=ONLINE_WINDOW_HOURS)),  # the carrier at every airport
    "nyc_recent": ([], timedelta(hours=ONLINE_WINDOW_HOURS)),  # all departures in the data: the system
}  # fmt: skip
SCHEDULE_BANK_MINUTES = 30  # departures scheduled this close to the flight compete for the runway
AIRCRAFT_LOOKBACK = timedelta(hours=12)  # the aircraft's previous departure counts if this recent


def _operations_features(targets: pl.DataFrame, flights: pl.DataFrame) -> pl.DataFrame:
    """Operations right now: recent departures by origin, destination and carrier, punctuality
    and cancellations at the origin, the schedule bank and the aircraft's previous departure."""
    at = "prediction_time_utc"
    departures = flights.filter(pl.col("actual_dep_utc").is_not_null())
    for name, (by, window) in RECENT_DEPARTURES.items():
        events = departures.select(*by, time="actual_dep_utc", _n=pl.lit(1), _delay="dep_delay")
        targets = _add_trailing_sums(targets, events, by, at, window).with_columns(
            **{f"{name}_departures": pl.col("_n"), f"{name}_mean_dep_delay": _ratio("_delay", "_n")}
        ).drop("_n", "_delay")
    window = timedelta(hours=ONLINE_WINDOW_HOURS)
    on_time_limit = pl.duration(minutes=DISRUPTION_DELAY_MINUTES)
    punctuality = flights.select(
        "origin",
        time=pl.col("sched_dep_utc") + on_time_limit,
        _due=pl.lit(1),
        _late=(
            pl.col("actual_dep_utc").is_null()
            | (pl.col("actual_dep_utc") > pl.col("sched_dep_utc") + on_time_limit)
        ).cast(pl.Int64),
    )
    cancellations = flights.filter(pl.col("cancelled")).select(
        "origin", time="sched_dep_utc", _cancelled=pl.lit(1)
    )
    targets = _add_trailing_sums(targets, punctuality, "origin", at, window)
    targets = _add_trailing_sums(targets, cancellations, "origin", at, window)
    targets = targets.with_columns(
        origin_recent_late_share=_ratio("_late", "_due"), origin_recent_cancelled=pl.col("_cancelled")
    ).drop("_due", "_late", "_cancelled")
    return _aircraft_previous_departure(_schedule_bank(targets, flights), departures)


def _schedule_bank(targets: pl.DataFrame, flights: pl.DataFrame) -> pl.DataFrame:
    """Departures scheduled at the origin within SCHEDULE_BANK_MINUTES of the flight (the
    schedule is published in advance, so this is known at any prediction point)."""
    bank = timedelta(minutes=SCHEDULE_BANK_MINUTES)
    scheduled = flights.select("origin", time="sched_dep_utc", _scheduled=pl.lit(1))
    targets = targets.with_columns(_bank_end=pl.col("sched_dep_utc") + bank).sort("_bank_end")
    targets = _add_trailing_sums(targets, scheduled, "origin", "_bank_end", 2 * bank)
    return targets.rename({"_scheduled": "origin_scheduled_nearby"}).drop("_bank_end").sort(
        "prediction_time_utc"
    )


def _aircraft_previous_departure(targets: pl.DataFrame, departures: pl.DataFrame) -> pl.DataFrame:
    """Delay of the same aircraft's latest departure (from the airports in the data) before
    the prediction point, and how long before it was."""
    previous = (
        departures.filter(pl.col("tailnum").is_not_null())
        .select("tailnum", _previous_utc="actual_dep_utc", aircraft_prev_dep_delay="dep_delay")
        .sort("_previous_utc")
    )
    joined = targets.join_asof(
        previous,
        left_on="prediction_time_utc",
        right_on="_previous_utc",
        by="tailnum",
        strategy="backward",
        tolerance=AIRCRAFT_LOOKBACK,
        check_sortedness=False,  # both sides sorted by time
    )
    minutes_ago = (pl.col("prediction_time_utc") - pl.col("_previous_utc")).dt.total_minutes()
    return joined.with_columns(aircraft_prev_dep_minutes_ago=minutes_ago).drop("_previous_utc")


# Trailing disruption rates: name -> the columns of the group they are computed by.
HISTORY_GROUPS = {
    "route": ["origin", "dest"],
    "carrier": ["carrier"],
    "origin_hour": ["origin", "hour"],
    "dest_hour": ["dest", "hour"],
    "flight_number": ["carrier", "flight", "origin"],  # the same scheduled flight, day after day
}


def history_features(
    targets: pl.DataFrame, flights: pl.DataFrame, groups: dict[str, list[str]] = HISTORY_GROUPS
) -> pl.DataFrame:
    """Disruption rates over the HISTORY_DAYS complete days ending LABEL_LAG_DAYS + 1 days
    before the target's `date`, by each of `groups` (`{name}_hist_flights` and
    `{name}_hist_disruption_rate`; 0 and null for a group without history), in target order."""
    outcomes = flights.select(
        "date",
        "origin",
        "dest",
        "carrier",
        "flight",
        "hour",
        _flights=pl.lit(1),
        _disrupted=_disrupted(pl.col("arr_delay"), pl.col("cancelled"), pl.col("diverted")).cast(
            pl.Int64
        ),
    )
    targets = targets.with_row_index("_order").with_columns(
        history_end=pl.col("date") - pl.duration(days=LABEL_LAG_DAYS + 1)
    ).sort("history_end")
    window = timedelta(days=HISTORY_DAYS)
    for name, keys in groups.items():
        events = outcomes.select(*keys, "_flights", "_disrupted", time="date")
        targets = _add_trailing_sums(targets, events, keys, "history_end", window)
        targets = targets.with_columns(
            **{
                f"{name}_hist_flights": pl.col("_flights"),
                f"{name}_hist_disruption_rate": _ratio("_disrupted", "_flights"),
            }
        ).drop("_flights", "_disrupted")
    return targets.sort("_order").drop("history_end", "_order")


def _add_trailing_sums(
    targets: pl.DataFrame,
    events: pl.DataFrame,
    by: str | list[str],
    at: str,
    window: timedelta,
) -> pl.DataFrame:
    """Add, for each target, the sums of the event value columns over events of the same `by`
    group with time in (at - window, at]: cumulative sums looked up at both ends by as-of joins.
    Targets must be sorted by `at`; groups without events get 0; `by=[]` sums over all events."""
    by = [by] if isinstance(by, str) else by
    if not by:
        everything = pl.lit(0).alias("_all")
        summed = _add_trailing_sums(
            targets.with_columns(everything), events.with_columns(everything), ["_all"], at, window
        )
        return summed.drop("_all")
    values = [c for c in events.columns if c not in (*by, "time")]
    cumulative = (
        events.group_by(*by, "time")
        .agg(pl.col(values).sum())
        .sort("time")
        .with_columns(pl.col(values).cum_sum().over(by))
    )

    def lookup(frame: pl.DataFrame, time_column: str, suffix: str) -> pl.DataFrame:
        renamed = cumulative.rename({v: f"{v}{suffix}" for v in values} | {"time": f"time{suffix}"})
        return frame.join_asof(
            renamed,
            left_on=time_column,
            right_on=f"time{suffix}",
            by=by,
            strategy="backward",
            check_sortedness=False,  # sorted above; polars cannot verify it within groups
        ).drop(f"time{suffix}")

    windowed = lookup(targets, at, "_end").with_columns(window_start=pl.col(at) - window)
    windowed = lookup(windowed.sort("window_start"), "window_start", "_start").sort(at)
    return windowed.with_columns(
        (pl.col(f"{v}_end").fill_null(0) - pl.col(f"{v}_start").fill_null(0)).alias(v)
        for v in values
    ).drop("window_start", *[f"{v}{s}" for v in values for s in ("_end", "_start")])
