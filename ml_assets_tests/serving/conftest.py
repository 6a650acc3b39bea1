"""Fixtures of the serving tests: a real lake (the data layers materialized for a month), online
stores on both backends (Redis: a key prefix per test, removed afterwards)."""

import uuid
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from ml_assets.resources.sources import EmbeddedNycflights13
from ml_assets.resources.storage import DeltaStorage
from ml_assets.serving.redis_store import RedisOnlineStore
from ml_assets.serving.store import open_store
from ml_assets_tests.helpers import run_days

# Blizzard Nemo: many cancellations, low visibility; the lake holds its full 28-day history window.
PARITY_DAY = date(2013, 2, 8)
LAKE_START = PARITY_DAY - timedelta(days=29)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def real_lake(tmp_path_factory) -> DeltaStorage:
    """raw → processed → features for LAKE_START..PARITY_DAY, run by the code location's jobs."""
    storage = DeltaStorage(base_uri=str(tmp_path_factory.mktemp("serving") / "lake"))
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_days(instance, LAKE_START, PARITY_DAY, {"storage": storage, "source": EmbeddedNycflights13()})
    assert runs.success
    return storage


@pytest.fixture(scope="session")
def real_flight_keys(real_lake) -> list[str]:
    return real_lake.scan("processed/flights").select("flight_id").collect().get_column("flight_id").to_list()


@pytest.fixture(scope="session")
def parity_flights(real_lake) -> pl.DataFrame:
    """The processed flights of the parity day."""
    return real_lake.scan("processed/flights", PARITY_DAY, PARITY_DAY).collect()


def redis_url_with_prefix() -> str:
    return f"{REDIS}?prefix=ml_assets_test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url():
    url = redis_url_with_prefix()
    yield url
    store = RedisOnlineStore(url)
    store.delete_everything()
    store.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """An empty online store on each backend."""
    url = redis_url_with_prefix() if request.param == "redis" else None
    opened = open_store(url, tmp_path)
    yield opened
    if isinstance(opened, RedisOnlineStore):
        opened.delete_everything()
    opened.close()
