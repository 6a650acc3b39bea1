"""The flight-disruption feature table contract: which columns are keys, features and labels.

Every column of `flight_features` is one of these. Models read the lists below rather than
guessing from column names, so adding a feature means adding it here and in `features.py`.
"""

PREDICTION_LEAD_HOURS = 2  # the prediction point is this long before the scheduled departure
DISRUPTION_DELAY_MINUTES = 15  # FAA on-time definition: arrival delay >= 15 min is late
ONLINE_WINDOW_HOURS = 3  # "operations right now" look back this far from the prediction point
HISTORY_DAYS = 28  # trailing window of the history (batch) features
LABEL_LAG_DAYS = 1  # a day's outcomes are complete one day later: history ends at D-1-lag

KEY_COLUMNS = ["flight_id", "date", "sched_dep_utc", "prediction_time_utc"]

CATEGORICAL_FEATURES = ["carrier", "origin", "dest"]

NUMERIC_FEATURES = [
    # schedule
    "month",
    "weekday",
    "sched_hour",
    "sched_minute",
    "distance",
    "is_holiday",
    "days_to_holiday",
    # aircraft
    "plane_age",
    "plane_seats",
    "plane_engines",
    # weather at the origin, latest observation not after the prediction point
    "wx_temp",
    "wx_dewp",
    "wx_humid",
    "wx_wind_dir",
    "wx_wind_speed",
    "wx_wind_gust",
    "wx_precip",
    "wx_pressure",
    "wx_visib",
    "wx_age_minutes",
    # weather trend over the last 3 hours
    "wx_temp_delta_3h",
    "wx_pressure_delta_3h",
    "wx_visib_delta_3h",
    "wx_wind_speed_delta_3h",
    # operations at the origin right now (the online features)
    "origin_recent_departures",
    "origin_recent_mean_dep_delay",
    "origin_recent_late_share",
    "origin_recent_cancelled",
    # history: trailing disruption rates from completed days
    "route_hist_flights",
    "route_hist_disruption_rate",
    "carrier_hist_flights",
    "carrier_hist_disruption_rate",
    "origin_hour_hist_flights",
    "origin_hour_hist_disruption_rate",
]

FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES

LABEL = "label_disrupted"  # arrival delay >= 15 min, cancelled, or diverted
LABEL_COLUMNS = [LABEL, "label_arr_delay"]  # label_arr_delay: minutes, null if cancelled/diverted
