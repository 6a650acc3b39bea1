"""Small builders shared by the tests: embedded slices, landing zones, runs, MLflow stores."""

import atexit
import contextlib
import functools
import hashlib
import shutil
import tempfile
from datetime import date
from pathlib import Path

import polars as pl

from ml_assets.dates import days_between as days
from ml_assets.flights.contracts import RAW_COLUMNS
from ml_assets.resources.sources import EmbeddedNycflights13
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import run_data_layers




@contextlib.contextmanager
def webhook_receiver():
    """A webhook on 127.0.0.1 that records the JSON bodies posted to it: (its URL, the bodies)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def embedded_rows(dataset: str, day: date | None = None) -> pl.DataFrame:
    """The embedded source's rows (strings, source columns only) for one day or a static table."""
    source = EmbeddedNycflights13()
    frame = source.read_days(dataset, day, day) if day else source.read_table(dataset)
    return frame.select(RAW_COLUMNS[dataset])


def write_landing_zone(root: Path, start: date, end: date) -> Path:
    """A landing zone as the upstream drops it: one CSV per dataset and day, static tables."""
    for dataset in ("flights", "weather"):
        (root / dataset).mkdir(parents=True, exist_ok=True)
        for day in days(start, end):
            embedded_rows(dataset, day).write_csv(root / dataset / f"{day}.csv")
    for dataset in ("planes", "airports", "airlines"):
        embedded_rows(dataset).write_csv(root / f"{dataset}.csv")
    return root


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path: proves files were left untouched."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class Runs:
    """The runs of one day range: the `dimensions` job, then the `data_layers` job."""

    def __init__(self, results: list):
        self.results = results

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def events(self) -> list:
        return [e for r in self.results for e in r.all_events]


def run_days(instance, start: date, end: date, resources: dict) -> Runs:
    """The code location's `dimensions` then `data_layers` jobs over start..end, with test
    resources, exactly as `ml-assets demo` runs them."""
    return Runs(run_data_layers(instance, start, end, resources))


def materializations(runs) -> dict[str, list]:
    """Materialization events by asset key string (of a Runs or one execution result)."""
    found: dict[str, list] = {}
    for result in getattr(runs, "results", [runs]):
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            found.setdefault(materialization.asset_key.to_user_string(), []).append(materialization)
    return found


FRESHNESS_CHECK = "freshness_check"


def check_results(runs) -> dict[tuple[str, str], bool]:
    """(asset, check) -> passed, for every data quality check evaluated. The per-partition
    freshness checks are left out: they judge 2013 partitions against today's clock."""
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for result in getattr(runs, "results", [runs])
        for e in result.get_asset_check_evaluations()
        if e.check_name != FRESHNESS_CHECK
    }


def table_version(storage: DeltaStorage, table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(storage.table_uri(table)).version()


def record_run(
    instance,
    assets: list[str],
    days: list,
    passing: dict[str, list[str]] | None = None,
    failing: dict[str, list[str]] | None = None,
    metadata: dict | None = None,
    severity: str = "ERROR",
) -> str:
    """Record what one run of the code location would: each asset materialized for each day (None:
    unpartitioned), then its checks' results (of `severity`, with `metadata`, by default a `reason`), all under
    one run id so Dagster ties the checks to these materializations (a runless report cannot check
    a partition twice). Returns the run id."""
    import uuid

    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    run_id = str(uuid.uuid4())

    def report(event_type: DagsterEventType, data) -> None:
        instance.report_dagster_event(DagsterEvent(event_type.value, "__RUNLESS__", event_specific_data=data), run_id=run_id)

    for asset in assets:
        for day in days:
            materialization = dg.AssetMaterialization(asset, partition=day and day.isoformat())
            report(DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(materialization))
    for checks, passed in ((passing or {}, True), (failing or {}, False)):
        for asset, names in checks.items():
            for name, day in ((name, day) for name in names for day in days):
                evaluation = dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(asset), check_name=name, passed=passed,
                    partition=day and day.isoformat(), severity=dg.AssetCheckSeverity(severity),
                    metadata={"reason": f"{name} {'passed' if passed else 'failed'} on {day}"} if metadata is None else metadata,
                    target_materialization_data=_latest_materialization(instance, asset, day),
                )  # fmt: skip
                report(DagsterEventType.ASSET_CHECK_EVALUATION, evaluation)
    return run_id


def _latest_materialization(instance, asset: str, day):
    """What a check of `asset` on `day` run in the code location is tied to: the day's latest
    materialization (a partitioned check counts only against the materialization it checked)."""
    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    partitions = [day.isoformat()] if day else None
    (record, *_) = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey(asset), asset_partitions=partitions), limit=1).records or [None]
    return record and AssetCheckEvaluationTargetMaterializationData(storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def mlflow_store(path: Path) -> str:
    """The `sqlite:///` URI of the MLflow store at `path`. A new one starts as a copy of an empty
    store that MLflow's migrations already ran on, instead of running them for each store (about
    1.1 s a store); an existing one is left as it is."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_mlflow_store(), path)
    return f"sqlite:///{path}"


@functools.cache
def _migrated_mlflow_store() -> Path:
    """Once per process: MLflow's tables, migrated, and nothing else. The default experiment is
    left out: each store creates it on opening, with its own artifact root."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables  # what SqlAlchemyStore runs on an empty database

    folder = Path(tempfile.mkdtemp(prefix="ml_assets_mlflow_"))
    atexit.register(shutil.rmtree, folder, True)
    engine = sqlalchemy.create_engine(f"sqlite:///{folder / 'mlflow.db'}")
    _initialize_tables(engine)
    engine.dispose()
    return folder / "mlflow.db"
