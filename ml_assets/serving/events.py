"""The event feed as the service takes it: one day of processed flights and weather → event batches
in time order, and a small client that posts them to `POST /v1/events`.

What is known when (as `ml_assets.flights.features` states it): the day's schedule is published
ahead (SCHEDULE_PUBLISHED_AHEAD before the day starts, local time), a departure is known when it
departs, a cancellation by its scheduled departure, an observation at its hour. Event ids are
derived from the flight or observation, so replaying a day twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import polars as pl

from ml_assets.flights.features import WEATHER_VALUES as WEATHER_COLUMNS
from ml_assets.settings import TIMEZONE

SCHEDULE_PUBLISHED_AHEAD = timedelta(hours=6)  # the schedule of day D is out at D-1 18:00 local
BATCH_SIZE = 500
ISO = "%Y-%m-%dT%H:%M:%S%:z"


class EventPostError(RuntimeError):
    """The service refused a batch of events (its status and reason in the message)."""


def _local_iso(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(TIMEZONE).dt.strftime(ISO)


def day_events(flights: pl.DataFrame, weather: pl.DataFrame) -> list[dict]:
    """Every event of one day (the processed `flights` and `weather` rows of that day), ordered by
    the time each becomes known."""
    identity = [
        "carrier", "flight", "origin", "dest",
        _local_iso("sched_dep_utc").alias("sched_dep"),
    ]  # fmt: skip
    published = (
        pl.col("date").cast(pl.Datetime("us")).dt.replace_time_zone(TIMEZONE) - pl.lit(SCHEDULE_PUBLISHED_AHEAD)
    )
    schedule = flights.select(
        pl.lit("schedule").alias("type"),
        pl.format("schedule/{}", "flight_id").alias("event_id"),
        *identity, "tailnum", "distance",
        published.dt.strftime(ISO).alias("published_at"),
        published.dt.convert_time_zone("UTC").alias("_known"),
    )  # fmt: skip
    departed = flights.filter(pl.col("actual_dep_utc").is_not_null())
    departures = departed.select(
        pl.lit("departure").alias("type"),
        pl.format("departure/{}", "flight_id").alias("event_id"),
        *identity, "tailnum",
        _local_iso("actual_dep_utc").alias("actual_dep"),
        pl.col("actual_dep_utc").alias("_known"),
    )  # fmt: skip
    cancellations = flights.filter(pl.col("cancelled")).select(
        pl.lit("cancellation").alias("type"),
        pl.format("cancellation/{}", "flight_id").alias("event_id"),
        *identity,
        pl.col("sched_dep_utc").alias("_known"),
    )
    observations = weather.select(
        pl.lit("weather").alias("type"),
        pl.format("weather/{}/{}", "origin", pl.col("time_hour").dt.strftime("%Y-%m-%dT%H:%MZ")).alias("event_id"),
        "origin",
        _local_iso("time_hour").alias("observed_at"),
        *WEATHER_COLUMNS,
        pl.col("time_hour").alias("_known"),
    )
    events = []
    for frame in (schedule, departures, cancellations, observations):
        events += [
            (row.pop("_known"), order, {k: v for k, v in row.items() if v is not None or k in WEATHER_COLUMNS})
            for order, row in enumerate(frame.iter_rows(named=True), start=len(events))
        ]
    return [event for _, _, event in sorted(events, key=lambda item: (item[0], item[1]))]


def day_event_batches(flights: pl.DataFrame, weather: pl.DataFrame, batch_size: int = BATCH_SIZE) -> list[list[dict]]:
    """`day_events` in batches of at most `batch_size`, in time order: what
    `ml-assets replay --serve-url` posts for each day."""
    events = day_events(flights, weather)
    return [events[i : i + batch_size] for i in range(0, len(events), batch_size)]


def post_events(url: str, events: Iterable[dict], token: str | None = None, batch_size: int = BATCH_SIZE) -> dict:
    """POST the events to `{url}/v1/events` in batches of at most `batch_size`; returns the totals
    (received, applied, duplicates, expired, rejected), the service's latest `events_as_of` and the
    rejections it listed (event id, reason, message). Raises EventPostError when the service refuses a batch."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    totals = {"received": 0, "applied": 0, "duplicates": 0, "expired": 0, "rejected": 0, "events_as_of": None,
              "rejections": []}  # fmt: skip
    pending = list(events)
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as client:
        for start in range(0, len(pending), batch_size):
            response = client.post("/v1/events", json={"events": pending[start : start + batch_size]})
            if response.status_code != 200:
                raise EventPostError(f"POST {url}/v1/events answered {response.status_code}: {response.text[:2000]}")
            answer = response.json()
            for name in ("received", "applied", "duplicates", "expired", "rejected"):
                totals[name] += answer[name]
            totals["events_as_of"] = answer["events_as_of"]
            totals["rejections"] += answer["rejections"]
    return totals
