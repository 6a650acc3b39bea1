"""Fixtures of the serving tests: a real lake (the data layers materialized for a month), online
stores on both backends (Redis: a key prefix per test, removed afterwards)."""

import shutil
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

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


MODEL_NAME = "flight_disruption"


@pytest.fixture(scope="session")
def registry_template(real_lake, tmp_path_factory) -> Path:
    """A local MLflow store (SQLite + file artifacts) with v1 (LightGBM, champion) and v2 (torch,
    challenger), quickly trained on the real features of the days before the parity day."""
    from ml_assets.flights.feature_spec import FEATURES_TABLE
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
    from ml_assets.models.registry import ModelRegistry
    from ml_assets.models.torch_tabular import TorchTrainConfig, train_torch_tabular
    from ml_assets.models.tracking import log_training_run

    folder = tmp_path_factory.mktemp("registry")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    features = real_lake.scan(FEATURES_TABLE, end=PARITY_DAY - timedelta(days=1)).collect()
    registry = ModelRegistry(tracking, MODEL_NAME)
    models = [
        train_lgbm(features, LgbmSearchConfig(n_trials=1, max_boost_rounds=60, num_threads=1)),
        train_torch_tabular(features, TorchTrainConfig(max_epochs=3, num_threads=1)),
    ]
    for model in models:
        logged = log_training_run(
            model, tracking_uri=tracking, experiment_name=MODEL_NAME, sample_frame=features.head(5),
            params={}, metrics={}, data_versions={}, tags={"model_kind": model.KIND},
            artifact_location=(folder / "artifacts").as_uri(), client=registry.client,
        )  # fmt: skip
        registry.register_version(logged.model_uri, logged.run_id, tags={"model_kind": model.KIND})
    registry.promote("1", "the first champion", moved_by="tests")
    registry.set_challenger("2", "a challenger", moved_by="tests")
    return folder


@pytest.fixture
def registry(registry_template, tmp_path):
    """A copy of the template registry for one test (the artifacts stay shared, read only)."""
    from ml_assets.models.registry import ModelRegistry

    shutil.copy(registry_template / "mlflow.db", tmp_path / "mlflow.db")
    return ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", MODEL_NAME)


@pytest.fixture(scope="session")
def warm_store_file(real_lake, tmp_path_factory) -> Path:
    """A SQLite online store warmed with the parity day (daily features and the events before)."""
    from ml_assets.serving.sqlite_store import SqliteOnlineStore
    from ml_assets.serving.warmup import warm_from_lake

    path = tmp_path_factory.mktemp("warm_store") / "online_store.db"
    store = SqliteOnlineStore(path)
    warm_from_lake(real_lake, store, PARITY_DAY)
    store.close()
    return path


@pytest.fixture
def make_service(registry, warm_store_file, tmp_path):
    """Builds services on the test's registry, each with its own copy of the warm store; stops them."""
    from ml_assets.serving.guardrails import GuardrailLimits
    from ml_assets.serving.feed_guard import FeedClock
    from ml_assets.serving.service import ServingService, ServingSettings
    from ml_assets.settings import REPLAY_CLOCK

    built = []

    def make(*, token=None, loader=None, store=None, limits=None, poll_interval_s=0.2, max_batch=1000, prediction_log=None,
             read_token=None, rate_limit_per_s=None, rate_limit_burst=None):  # fmt: skip
        data_dir = tmp_path / f"service{len(built)}"
        (data_dir / "serving").mkdir(parents=True)
        shutil.copy(warm_store_file, data_dir / "serving" / "online_store.db")
        settings = ServingSettings(
            data_dir=data_dir, store_url=None, tracking_uri=registry.tracking_uri, api_token=token,
            max_batch=max_batch, poll_interval_s=poll_interval_s, guardrails=limits or GuardrailLimits(),
            read_token=read_token, rate_limit_per_s=rate_limit_per_s, rate_limit_burst=rate_limit_burst,
            feed_clock=FeedClock(mode=REPLAY_CLOCK),  # the warm store holds a day of 2013
        )  # fmt: skip
        service = ServingService(settings, store=store, registry=registry, loader=loader, prediction_log=prediction_log)
        built.append(service)
        return service

    yield make
    for service in built:
        service.stop()


def flight_request(row: dict) -> dict:
    """The request contract's six fields for a processed flight row."""
    from ml_assets.serving.realtime import LOCAL

    request = {
        "carrier": row["carrier"], "flight": row["flight"], "origin": row["origin"], "dest": row["dest"],
        "sched_dep": row["sched_dep_utc"].astimezone(LOCAL).isoformat(),
    }  # fmt: skip
    return request | ({"tailnum": row["tailnum"]} if row["tailnum"] else {})


def events_of_days_up_to(storage: DeltaStorage, day: date) -> list:
    """The parsed events of `day` and the DAYS_BEFORE days before it, day by day (each day's in its
    own order), from the processed tables."""
    from ml_assets.serving.events import day_events
    from ml_assets.serving.warmup import DAYS_BEFORE, parse_events

    first = day - timedelta(days=DAYS_BEFORE)
    flights = storage.scan("processed/flights", first, day).collect()
    weather = storage.scan("processed/weather", first, day).collect()
    events = []
    for offset in range(DAYS_BEFORE + 1):
        current = first + timedelta(days=offset)
        batch = day_events(flights.filter(pl.col("date") == current), weather.filter(pl.col("date") == current))
        events += [e for start in range(0, len(batch), 1000) for e in parse_events(batch[start : start + 1000])]
    return events


def json_tensors(rows: pl.DataFrame) -> list[dict]:
    """One v2 JSON input tensor per feature column of the `flight_features` rows."""
    from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES

    return [
        {"name": c, "datatype": "BYTES" if c in CATEGORICAL_FEATURES else "FP64", "shape": [rows.height],
         "data": rows.get_column(c).cast(pl.String if c in CATEGORICAL_FEATURES else pl.Float64).to_list()}
        for c in FEATURES
    ]  # fmt: skip


@contextmanager
def served(app, http: str = "auto"):
    """The app on uvicorn (HTTP implementation `http`) in a thread on a free port of 127.0.0.1;
    yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
