"""Warm an online store from the lake (`ml-assets serve --warm-from-lake`, `make serve`): push the
daily features of a day and replay the events its flights' features look back to, so any flight of
that day can be asked about. In production the `online_features` asset and the event feed keep the
store live instead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import polars as pl

from ml_assets.serving.daily_features import daily_rows_from_lake
from ml_assets.serving.events import day_event_batches
from ml_assets.serving.realtime import LOCAL, ingest
from ml_assets.serving.schemas import EventBatch
from ml_assets.serving.store import OnlineStore

# Days replayed before the day: its earliest prediction points (03:00) look back LOOKBACK (12 h)
# into the day before, and the day before that delivers the late departures of its own flights.
DAYS_BEFORE = 2


@dataclass(frozen=True)
class WarmUp:
    day: date
    daily_rows: int
    events_applied: int
    events_expired: int  # older than what the store keeps (it holds newer state)


def last_materialized_day(storage) -> date:
    return storage.scan("processed/flights").select(pl.col("date").max()).collect().item()


def parse_events(batch: list[dict]) -> list:
    """Service events from their JSON form (validated as POST /v1/events validates them)."""
    return EventBatch.model_validate({"events": batch}).events


def warm_from_lake(storage, store: OnlineStore, day: date | None = None) -> WarmUp:
    day = day or last_materialized_day(storage)
    rows, _ = daily_rows_from_lake(storage, day)
    store.write_daily(day, rows, datetime.now(timezone.utc))
    first = day - timedelta(days=DAYS_BEFORE)
    flights = storage.scan("processed/flights", first, day).collect()
    weather = storage.scan("processed/weather", first, day).collect()
    start = datetime.combine(first, datetime.min.time(), LOCAL)
    store.set_coverage_start(start.timestamp())
    applied = expired = 0
    for offset in range(DAYS_BEFORE + 1):
        current = first + timedelta(days=offset)
        for batch in day_event_batches(flights.filter(pl.col("date") == current), weather.filter(pl.col("date") == current)):
            result = ingest(store, parse_events(batch), time.time())
            applied, expired = applied + result.applied, expired + result.expired
    return WarmUp(day, len(rows), applied, expired)
