"""The flight-disruption feature table contract: which columns are keys, features and labels.

Every column of `flight_features` is one of these. Models read the lists below rather than
guessing from column names, so adding a feature means adding it here and in `features.py`.
"""

FEATURES_TABLE = "features/flight_features"  # the Delta table `flight_features` writes

PREDICTION_LEAD_HOURS = 2  # the prediction point is this long before the scheduled departure
DISRUPTION_DELAY_MINUTES = 15  # FAA on-time definition: arrival delay >= 15 min is late
ONLINE_WINDOW_HOURS = 3  # "operations right now" look back this far from the prediction point
HISTORY_DAYS = 28  # trailing window of the history (batch) features
LABEL_LAG_DAYS = 1  # a day's outcomes are complete one day later: history ends at D-1-lag

KEY_COLUMNS = ["flight_id", "date", "sched_dep_utc", "prediction_time_utc"]

CATEGORICAL_FEATURES = ["carrier", "origin", "dest"]

# Kept in the table for slicing reports, not a model input: trained on January..September, a
# model has never seen October; seasonality reaches it through the trailing history rates.
CONTEXT_COLUMNS = ["month"]

NUMERIC_FEATURES = [
    # schedule
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
    # operations right now (the online features)
    "origin_recent_departures",
    "origin_recent_mean_dep_delay",
    "origin_recent_late_share",
    "origin_recent_cancelled",
    "origin_last_hour_departures",
    "origin_last_hour_mean_dep_delay",
    "dest_recent_departures",
    "dest_recent_mean_dep_delay",
    "carrier_origin_recent_departures",
    "carrier_origin_recent_mean_dep_delay",
    "carrier_recent_departures",
    "carrier_recent_mean_dep_delay",
    "nyc_recent_departures",
    "nyc_recent_mean_dep_delay",
    "origin_scheduled_nearby",
    "aircraft_prev_dep_delay",
    "aircraft_prev_dep_minutes_ago",
    # history: trailing disruption rates from completed days
    "route_hist_flights",
    "route_hist_disruption_rate",
    "carrier_hist_flights",
    "carrier_hist_disruption_rate",
    "origin_hour_hist_flights",
    "origin_hour_hist_disruption_rate",
    "dest_hour_hist_flights",
    "dest_hour_hist_disruption_rate",
    "flight_number_hist_flights",
    "flight_number_hist_disruption_rate",
]

FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES

LABEL = "label_disrupted"  # arrival delay >= 15 min, cancelled, or diverted
LABEL_COLUMNS = [LABEL, "label_arr_delay"]  # label_arr_delay: minutes, null if cancelled/diverted

# Shown as column descriptions in the Dagster UI.
COLUMN_DESCRIPTIONS = {
    "flight_id": "date/carrier+flight number/origin: one scheduled departure",
    "date": "local (New York) date of the scheduled departure: the partition",
    "sched_dep_utc": "scheduled departure, UTC",
    "prediction_time_utc": f"the prediction point, {PREDICTION_LEAD_HOURS} h before the scheduled departure (UTC)",
    "carrier": "two-letter carrier code",
    "origin": "departure airport (JFK, LGA, EWR)",
    "dest": "destination airport",
    "month": "month of the scheduled departure",
    "weekday": "1 = Monday .. 7 = Sunday",
    "sched_hour": "scheduled departure hour, local",
    "sched_minute": "scheduled departure minute",
    "distance": "route distance, miles",
    "is_holiday": "1 on a US federal holiday",
    "days_to_holiday": "days to the nearest US federal holiday",
    "plane_age": "years since the aircraft was built (null: unknown aircraft)",
    "plane_seats": "aircraft seats",
    "plane_engines": "aircraft engines",
    "wx_temp": "origin temperature, °F, latest observation not after the prediction point",
    "wx_dewp": "origin dew point, °F",
    "wx_humid": "origin relative humidity, %",
    "wx_wind_dir": "origin wind direction, degrees",
    "wx_wind_speed": "origin wind speed, mph",
    "wx_wind_gust": "origin wind gust, mph",
    "wx_precip": "origin precipitation, inches in the hour",
    "wx_pressure": "origin sea-level pressure, millibars",
    "wx_visib": "origin visibility, miles",
    "wx_age_minutes": "age of that observation at the prediction point",
    "wx_temp_delta_3h": "temperature change over the 3 hours before",
    "wx_pressure_delta_3h": "pressure change over the 3 hours before",
    "wx_visib_delta_3h": "visibility change over the 3 hours before",
    "wx_wind_speed_delta_3h": "wind speed change over the 3 hours before",
    "origin_recent_departures": f"departures from the origin in the {ONLINE_WINDOW_HOURS} h before the prediction point",
    "origin_recent_mean_dep_delay": "their mean departure delay, minutes",
    "origin_recent_late_share": "share of flights due in that window that left more than 15 min late (or not at all)",
    "origin_recent_cancelled": "cancelled flights scheduled in that window",
    "origin_last_hour_departures": "departures from the origin in the hour before the prediction point",
    "origin_last_hour_mean_dep_delay": "their mean departure delay, minutes",
    "dest_recent_departures": f"departures to the same destination (any origin) in the {ONLINE_WINDOW_HOURS} h before",
    "dest_recent_mean_dep_delay": "their mean departure delay (ground delays at the destination show here)",
    "carrier_origin_recent_departures": f"the carrier's departures from the origin in the {ONLINE_WINDOW_HOURS} h before",
    "carrier_origin_recent_mean_dep_delay": "their mean departure delay, minutes",
    "carrier_recent_departures": f"the carrier's departures from all three airports in the {ONLINE_WINDOW_HOURS} h before",
    "carrier_recent_mean_dep_delay": "their mean departure delay, minutes",
    "nyc_recent_departures": f"all departures in the data (the three airports) in the {ONLINE_WINDOW_HOURS} h before",
    "nyc_recent_mean_dep_delay": "their mean departure delay, minutes",
    "origin_scheduled_nearby": "departures scheduled at the origin within 30 min of this one (published schedule)",
    "aircraft_prev_dep_delay": "departure delay of the same aircraft's previous departure, if within 12 h before",
    "aircraft_prev_dep_minutes_ago": "how long before the prediction point that departure was",
    "route_hist_flights": f"flights on the route in the {HISTORY_DAYS} complete days before (ending {LABEL_LAG_DAYS + 1} days before)",
    "route_hist_disruption_rate": "their disruption rate",
    "carrier_hist_flights": "the carrier's flights in the history window",
    "carrier_hist_disruption_rate": "their disruption rate",
    "origin_hour_hist_flights": "flights from the origin in the same scheduled hour in the history window",
    "origin_hour_hist_disruption_rate": "their disruption rate",
    "dest_hour_hist_flights": "flights to the destination in the same scheduled hour in the history window",
    "dest_hour_hist_disruption_rate": "their disruption rate",
    "flight_number_hist_flights": "flights of the same carrier, flight number and origin in the history window",
    "flight_number_hist_disruption_rate": "their disruption rate",
    LABEL: "label: arrival delay >= 15 min, cancelled or diverted",
    "label_arr_delay": "label side: arrival delay in minutes (null if cancelled or diverted)",
}  # fmt: skip
