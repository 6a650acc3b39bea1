"""Fixtures for the model layer: a synthetic `flight_features` frame with a planted signal."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ml_assets.flights.feature_spec import NUMERIC_FEATURES
from ml_assets_tests.helpers import mlflow_store

CARRIERS = ["UA", "AA", "B6", "DL", "EV", "WN", "MQ"]
CARRIER_EFFECT = dict(zip(CARRIERS, [0.0, -0.3, 0.3, -0.4, 0.6, 0.1, 0.4]))
ORIGINS = ["JFK", "LGA", "EWR"]
DESTS = ["ATL", "ORD", "LAX", "BOS", "MIA", "SFO", "DCA", "DEN"]


def synthetic_features(rows: int = 8000, days: int = 60, seed: int = 7) -> pl.DataFrame:
    """Flights over `days` days whose disruption depends on origin delays, visibility, carrier,
    hour and route history; every other feature is noise. Same schema as `flight_features`."""
    rng = np.random.default_rng(seed)
    start = datetime(2013, 3, 1, tzinfo=timezone.utc)
    departures = sorted(start + timedelta(minutes=int(m)) for m in rng.integers(0, days * 24 * 60, rows))
    carrier = rng.choice(CARRIERS, rows)
    origin = rng.choice(ORIGINS, rows)
    dest = rng.choice(DESTS, rows)
    sched_hour = np.array([(d - timedelta(hours=5)).hour for d in departures])
    numeric = {name: rng.normal(0.0, 1.0, rows) for name in NUMERIC_FEATURES}
    numeric.update(
        month=np.array([d.month for d in departures], dtype=float),
        weekday=np.array([d.isoweekday() for d in departures], dtype=float),
        sched_hour=sched_hour.astype(float),
        sched_minute=rng.integers(0, 60, rows).astype(float),
        distance=rng.uniform(100, 2500, rows),
        is_holiday=(rng.random(rows) < 0.03).astype(float),
        wx_visib=np.where(rng.random(rows) < 0.8, 10.0, rng.uniform(0.1, 10.0, rows)),
        origin_recent_mean_dep_delay=rng.gamma(1.5, 10.0, rows) - 5.0,
        route_hist_disruption_rate=rng.beta(2, 6, rows),
    )
    # other views of the same recent departures, on their own scales, as in the real table
    delay = numeric["origin_recent_mean_dep_delay"]
    numeric.update(
        origin_last_hour_mean_dep_delay=delay + rng.normal(0.0, 8.0, rows),
        carrier_origin_recent_mean_dep_delay=delay + rng.normal(0.0, 10.0, rows),
        origin_recent_late_share=np.clip(delay / 60.0 + rng.normal(0.2, 0.1, rows), 0.0, 1.0),
    )
    logit = (
        -1.6
        + 0.06 * numeric["origin_recent_mean_dep_delay"]
        - 0.25 * (numeric["wx_visib"] - 10.0)
        + np.array([CARRIER_EFFECT[c] for c in carrier])
        + 0.08 * (sched_hour - 12)
        + 3.0 * (numeric["route_hist_disruption_rate"] - 0.25)
    )
    disrupted = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    # missing values where the real table has them: no gust reported, unknown aircraft
    numeric["wx_wind_gust"] = np.where(rng.random(rows) < 0.7, np.nan, numeric["wx_wind_gust"])
    numeric["plane_age"] = np.where(rng.random(rows) < 0.1, np.nan, numeric["plane_age"])
    arr_delay = np.where(disrupted, rng.gamma(2.0, 30.0, rows), rng.normal(-5.0, 8.0, rows))
    arr_delay = np.where(rng.random(rows) < 0.02, np.nan, arr_delay)

    return pl.DataFrame(
        {
            "flight_id": [
                f"{d:%Y%m%d}-{c}-{i:05d}-{o}"
                for i, (d, c, o) in enumerate(zip(departures, carrier, origin))
            ],
            "date": [d.date() for d in departures],
            "sched_dep_utc": departures,
            "prediction_time_utc": [d - timedelta(hours=2) for d in departures],
            "carrier": carrier,
            "origin": origin,
            "dest": dest,
            **{name: pl.Series(name, values).fill_nan(None) for name, values in numeric.items()},
            "label_disrupted": disrupted,
            "label_arr_delay": pl.Series(arr_delay).fill_nan(None),
        }
    )


@pytest.fixture(scope="session")
def features() -> pl.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="session")
def train_and_test(features) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Out-of-time split: the first 45 days to train, the rest to test."""
    cut = date(2013, 3, 1) + timedelta(days=45)
    return features.filter(pl.col("date") < cut), features.filter(pl.col("date") >= cut)


@pytest.fixture()
def tracking_uri(tmp_path) -> str:
    import mlflow

    uri = mlflow_store(tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(uri)
    return uri


@pytest.fixture()
def artifact_location(tmp_path) -> str:
    return (tmp_path / "artifacts").as_uri()
