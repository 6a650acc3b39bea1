"""Feature transforms on tiny hand-made frames: windows, label, weather as-of, history cut-off."""

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from ml_assets.flights.feature_spec import CONTEXT_COLUMNS, FEATURES, KEY_COLUMNS, LABEL, LABEL_COLUMNS
from ml_assets.flights.features import _add_trailing_sums, build_flight_features
from ml_assets.flights.schemas import FLIGHTS
from ml_assets.quality.validation import validate_rows

UTC = timezone.utc
EST = timedelta(hours=-5)  # January: New York local time is UTC-5
DAY = date(2013, 1, 10)


def utc(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def hhmm(moment: datetime) -> str:
    return str(moment.hour * 100 + moment.minute)


def flight(
    sched_utc: datetime,
    dep_delay: int | None,
    number: int,
    origin: str = "EWR",
    dest: str = "IAH",
    carrier: str = "UA",
    arr_delay: float | None = 0.0,
) -> dict:
    """A raw (string) flight scheduled at `sched_utc`; dep_delay None means cancelled."""
    local = sched_utc + EST
    cancelled = dep_delay is None
    return dict(
        year=str(local.year), month=str(local.month), day=str(local.day),
        dep_time="NA" if cancelled else hhmm(local + timedelta(minutes=dep_delay)),
        sched_dep_time=hhmm(local), dep_delay="NA" if cancelled else str(dep_delay),
        arr_time="NA" if cancelled or arr_delay is None else "1200", sched_arr_time="1200",
        arr_delay="NA" if cancelled or arr_delay is None else str(arr_delay),
        carrier=carrier, flight=str(number), tailnum="N14228", origin=origin, dest=dest,
        air_time="NA" if cancelled or arr_delay is None else "200", distance="1400",
        hour=str(local.hour), minute=str(local.minute),
        time_hour=sched_utc.replace(minute=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )  # fmt: skip


def processed_flights(rows: list[dict]) -> pl.DataFrame:
    """The processed flights table for raw rows, through the real cleaning rules."""
    raw = pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})
    raw = raw.with_columns(
        date=pl.date(*(pl.col(c).cast(pl.Int32) for c in ("year", "month", "day"))),
        _source_file=pl.lit("test"),
        _source_row=pl.int_range(1, raw.height + 1, dtype=pl.Int64),
        _malformed=pl.lit(None, pl.String),
    )
    result = validate_rows(raw, FLIGHTS.schema, FLIGHTS.key, FLIGHTS.derive, keep=["date"])
    assert result.quarantine.is_empty(), result.quarantine
    return result.clean


def weather(*observations: tuple[str, datetime, float]) -> pl.DataFrame:
    """Processed weather: (origin, observed at, temperature); the other values fixed."""
    others = ["dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    return pl.DataFrame(
        {
            "origin": [o for o, _, _ in observations],
            "time_hour": [t for _, t, _ in observations],
            "temp": [v for _, _, v in observations],
            **{c: [1.0] * len(observations) for c in others},
        },
        schema={"origin": pl.String, "time_hour": pl.Datetime("us", "UTC"), "temp": pl.Float64}
        | {c: pl.Float64 for c in others},
    )


NO_WEATHER = weather()
PLANES = pl.DataFrame(
    {"tailnum": ["N14228"], "year": [2000], "seats": [149], "engines": [2]},
    schema={"tailnum": pl.String, "year": pl.Int32, "seats": pl.Int32, "engines": pl.Int32},
)


def features(flights, weather_=NO_WEATHER, day=DAY, holidays=()) -> pl.DataFrame:
    return build_flight_features(flights, weather_, PLANES, list(holidays), day, day)


def one(frame: pl.DataFrame, number: int, origin: str = "EWR") -> dict:
    (found,) = frame.filter(pl.col("flight_id").str.ends_with(f"UA{number}/{origin}")).to_dicts()
    return found


# --- _add_trailing_sums ------------------------------------------------------------------------


def test_trailing_sums_cover_exactly_the_window_ending_at_the_target_time():
    t = utc(12)
    targets = pl.DataFrame({"g": ["A", "C"], "at": [t, t]}).sort("at")
    # values are powers of two, so the sum says exactly which events were counted
    events = pl.DataFrame(
        {
            "g": ["A", "A", "A", "A", "A", "A", "B"],
            "time": [t - timedelta(hours=1), t - timedelta(hours=1) + timedelta(seconds=1),
                     t - timedelta(minutes=30), t - timedelta(minutes=30), t,
                     t + timedelta(seconds=1), t - timedelta(minutes=10)],
            "v": [1, 2, 4, 8, 16, 32, 64],
        }  # fmt: skip
    )
    out = _add_trailing_sums(targets, events, "g", "at", timedelta(hours=1))

    # (t - 1h, t]: the event at t - 1h is out, the one at t is in, later ones and group B are out
    assert dict(out.select("g", "v").iter_rows()) == {"A": 2 + 4 + 8 + 16, "C": 0}
    assert out.columns == ["g", "at", "v"]


def test_trailing_sums_group_by_several_keys_and_keep_target_order():
    t = utc(12)
    targets = pl.DataFrame(
        {"o": ["X", "X", "Y"], "h": [1, 2, 1], "at": [t, t + timedelta(hours=1), t + timedelta(hours=2)]}
    )
    events = pl.DataFrame(
        {"o": ["X", "X", "Y", "X"], "h": [1, 2, 1, 1], "time": [t, t, t, t + timedelta(hours=2)],
         "n": [1, 10, 100, 1000], "m": [5, 50, 500, 5000]}  # fmt: skip
    )
    out = _add_trailing_sums(targets, events, ["o", "h"], "at", timedelta(hours=2))

    assert out.select("o", "h", "n", "m").rows() == [("X", 1, 1, 5), ("X", 2, 10, 50), ("Y", 1, 0, 0)]


# --- label --------------------------------------------------------------------------------------


def test_label_is_arrival_delay_of_15_minutes_or_cancelled_or_diverted():
    flights = processed_flights(
        [
            flight(utc(15), 0, 1, arr_delay=14.0),
            flight(utc(15), 0, 2, arr_delay=15.0),
            flight(utc(15), 0, 3, arr_delay=-20.0),
            flight(utc(15), None, 4),  # cancelled
            flight(utc(15), 30, 5, arr_delay=None),  # diverted: departed, never arrived
            flight(utc(15), 90, 6, arr_delay=80.0),
        ]
    )
    out = features(flights)

    labels = {n: (one(out, n)[LABEL], one(out, n)["label_arr_delay"]) for n in range(1, 7)}
    assert labels == {
        1: (False, 14.0), 2: (True, 15.0), 3: (False, -20.0),
        4: (True, None), 5: (True, None), 6: (True, 80.0),
    }  # fmt: skip
    assert out.columns == KEY_COLUMNS + CONTEXT_COLUMNS + FEATURES + LABEL_COLUMNS


def test_schedule_and_aircraft_features():
    flights = processed_flights([flight(utc(15, 45), 0, 1)])
    out = one(features(flights, holidays=[date(2013, 1, 1), date(2013, 1, 21)]), 1)

    assert out["prediction_time_utc"] == utc(13, 45)
    assert (out["month"], out["weekday"], out["sched_hour"], out["sched_minute"]) == (1, 4, 10, 45)
    assert (out["is_holiday"], out["days_to_holiday"]) == (0, 9)
    assert (out["plane_age"], out["plane_seats"], out["plane_engines"]) == (13, 149, 2)


# --- weather as of the prediction point ----------------------------------------------------------


def test_weather_is_the_latest_observation_at_the_origin_not_after_the_prediction_point():
    flights = processed_flights(
        [
            flight(utc(14), 0, 1),  # prediction point 12:00
            flight(utc(13), 0, 2),  # prediction point 11:00, exactly an observation
            flight(utc(23), 0, 3),  # prediction point 21:00, last observation 9 h before
        ]
    )
    observations = weather(
        ("EWR", utc(8), -1.0),
        ("EWR", utc(10), 1.0),
        ("EWR", utc(11), 2.0),
        ("LGA", utc(11, 59), 99.0),  # another airport
        ("EWR", utc(12, 1), 98.0),  # a minute after the prediction point
    )
    out = features(flights, observations)

    first, second, third = one(out, 1), one(out, 2), one(out, 3)
    assert (first["wx_temp"], first["wx_age_minutes"]) == (2.0, 60)
    assert first["wx_temp_delta_3h"] == 2.0 - (-1.0)  # vs the latest observation not after 09:00
    assert (second["wx_temp"], second["wx_age_minutes"]) == (2.0, 0)
    assert second["wx_temp_delta_3h"] == 2.0 - (-1.0)  # 08:00 is the latest not after 08:00
    assert third["wx_temp"] is None and third["wx_age_minutes"] is None  # older than 6 h: unknown


# --- operations at the origin right now ---------------------------------------------------------


def test_origin_operations_count_only_what_is_known_at_the_prediction_point():
    # the target departs 14:00 UTC: prediction point 12:00, window (09:00, 12:00]
    flights = processed_flights(
        [
            flight(utc(14), 0, 1),  # the target
            flight(utc(8, 30), 0, 10),  # departed before the window
            flight(utc(8, 45), 15, 11),  # departed at 09:00, the open end of the window
            flight(utc(10), 30, 12),  # departed 10:30, late
            flight(utc(11), 59, 13),  # departed 11:59, late
            flight(utc(11, 40), 20, 14),  # departed exactly at the prediction point, late
            flight(utc(11, 30), 45, 15),  # departs 12:15: unknown, but already late at 11:45
            flight(utc(11), 5, 16),  # departed 11:05, on time
            flight(utc(11), None, 17),  # cancelled, scheduled before the prediction point
            flight(utc(12, 30), None, 18),  # cancelled, scheduled after it
            flight(utc(11, 50), -5, 19),  # departed 11:45, its 15 minutes not over yet
            flight(utc(11), 100, 20, origin="LGA"),  # another airport
        ]
    )
    target = one(features(flights), 1)

    assert target["origin_recent_departures"] == 5  # flights 12, 13, 14, 16, 19
    assert target["origin_recent_mean_dep_delay"] == pytest.approx((30 + 59 + 20 + 5 - 5) / 5)
    assert target["origin_recent_late_share"] == pytest.approx(5 / 6)  # 12-17 due; 16 on time
    assert target["origin_recent_cancelled"] == 1  # flight 17


def test_origin_operations_are_zero_or_unknown_without_recent_flights():
    target = one(features(processed_flights([flight(utc(14), 0, 1), flight(utc(14), 0, 2)])), 1)

    assert (target["origin_recent_departures"], target["origin_recent_cancelled"]) == (0, 0)
    assert target["origin_recent_mean_dep_delay"] is None
    assert target["origin_recent_late_share"] is None


def test_destination_carrier_schedule_bank_and_aircraft_features():
    # the target: UA1 EWR→IAH at 14:00 UTC, prediction point 12:00; every flight is aircraft N14228
    flights = processed_flights(
        [
            flight(utc(14), 0, 1),  # the target
            flight(utc(11, 30), 20, 2, origin="LGA"),  # to IAH from LGA, departed 11:50
            flight(utc(11), 40, 3, origin="JFK", dest="ORD"),  # departed 11:40, elsewhere
            flight(utc(11, 45), 30, 4, carrier="AA"),  # EWR→IAH, departs 12:15: after the point
            flight(utc(13, 40), 0, 5),  # scheduled 20 min before the target
            flight(utc(14, 25), 0, 6),  # 25 min after
            flight(utc(14, 31), 0, 7),  # 31 min after: outside the bank
            flight(utc(10), 10, 8, carrier="AA", origin="JFK", dest="BOS"),  # departed 10:10
        ]
    )
    target = one(features(flights), 1)

    assert (target["dest_recent_departures"], target["dest_recent_mean_dep_delay"]) == (1, 20)
    assert target["carrier_origin_recent_departures"] == 0  # AA4 is another carrier, and later
    assert target["carrier_origin_recent_mean_dep_delay"] is None
    assert target["origin_last_hour_departures"] == 0
    assert (target["carrier_recent_departures"], target["carrier_recent_mean_dep_delay"]) == (2, 30)  # 2, 3
    assert (target["nyc_recent_departures"], target["nyc_recent_mean_dep_delay"]) == (3, 70 / 3)  # 2, 3, 8
    assert target["origin_scheduled_nearby"] == 3  # flights 1, 5 and 6
    assert target["aircraft_prev_dep_delay"] == 20  # LGA at 11:50, the latest before 12:00
    assert target["aircraft_prev_dep_minutes_ago"] == 10


# --- history: only complete days, D-29 .. D-2 -----------------------------------------------------


def test_history_uses_the_28_days_ending_two_days_before_the_flight():
    """Day D-k has k flights on the route, so any shift of the window changes the count."""
    target_day = date(2013, 2, 5)
    rows = [flight(utc(12, 0, target_day), 0, 1, arr_delay=200.0)]  # the target, disrupted
    for k in range(1, 31):
        day = target_day - timedelta(days=k)
        disrupted = k in (1, 2, 30)  # D-1 and D-30 lie outside the window, D-2 inside
        rows += [
            # the first flight of each day has the target's flight number
            flight(utc(12, m, day), 0, 1 if m == 0 else 100 + m, arr_delay=60.0 if disrupted else 0.0)
            for m in range(k)
        ]
    out = one(features(processed_flights(rows), day=target_day), 1)

    in_window = sum(range(2, 30))  # days D-29 .. D-2
    for name in ("route", "carrier", "origin_hour", "dest_hour"):
        assert out[f"{name}_hist_flights"] == in_window
        assert out[f"{name}_hist_disruption_rate"] == pytest.approx(2 / in_window)
    assert out["flight_number_hist_flights"] == 28  # one a day
    assert out["flight_number_hist_disruption_rate"] == pytest.approx(1 / 28)  # D-2's


def test_history_is_unknown_for_an_unseen_route():
    rows = [flight(utc(12), 0, 1, dest="ORD"), flight(utc(12, 0, DAY - timedelta(days=3)), 0, 2)]
    out = one(features(processed_flights(rows)), 1)

    assert out["route_hist_flights"] == 0 and out["route_hist_disruption_rate"] is None
    assert out["carrier_hist_flights"] == 1 and out["carrier_hist_disruption_rate"] == 0.0


def test_every_feature_table_column_is_described():
    from ml_assets.flights.feature_spec import COLUMN_DESCRIPTIONS

    assert set(COLUMN_DESCRIPTIONS) == set(KEY_COLUMNS + CONTEXT_COLUMNS + FEATURES + LABEL_COLUMNS)
