"""The production storages against the real servers on 127.0.0.1: the Dagster instance on PostgreSQL,
configured exactly as the chart renders it from helm-values/, materializing part of the graph; and
the MLflow tracking server started as deploy/manifests/mlflow.yaml starts it, on PostgreSQL, with a
registry promotion and a rollback through `ml-assets rollback`. Each test creates its own database
and drops it."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest
import yaml

from ml_assets.models.registry import CHAMPION, ModelRegistry
from ml_assets.resources.sources import EmbeddedNycflights13
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import run_data_layers
from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.k8s_offline import DEPLOY, chart_instance_config, chart_values, load_all_yaml
from ml_assets_tests.test_metrics_exporter import labels, scrape

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def admin(sql: str) -> None:
    connection = psycopg2.connect(dbname="postgres", **PG)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@contextmanager
def database(prefix: str):
    """A database of its own on the local PostgreSQL, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        admin(f"DROP DATABASE IF EXISTS {name}")


# --- the Dagster instance -----------------------------------------------------------------------------


def production_instance_config(db_name: str) -> dict:
    """The chart's dagster.yaml from our values, its PostgreSQL pointed at the local server; the
    run launcher left out (a K8sRunLauncher needs a cluster; runs here execute in-process)."""
    config = chart_instance_config(chart_values())
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        postgres = config[storage]["config"]["postgres_db"]
        postgres |= {"hostname": PG["host"], "port": PG["port"], "username": PG["user"], "db_name": db_name, "params": {}}
    config.pop("run_launcher")
    return config


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory):
    """A DAGSTER_HOME holding only dagster.yaml, where nothing may be written: the pods' root
    filesystem is read-only (the mode bits stop a non-root user; the test below checks the folder)."""
    with database("ml_assets_dagster") as db_name, pytest.MonkeyPatch.context() as env:
        home = tmp_path_factory.mktemp("dagster_home")
        (home / "dagster.yaml").write_text(yaml.safe_dump(production_instance_config(db_name)))
        home.chmod(0o555)
        env.setenv("DAGSTER_PG_PASSWORD", "trust-auth-ignores-it")  # the chart's instance reads it
        try:
            yield home, db_name
        finally:
            home.chmod(0o755)


@pytest.fixture(scope="module")
def materialized(dagster_home, tmp_path_factory):
    home, _ = dagster_home
    lake = str(tmp_path_factory.mktemp("lake"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        results = run_data_layers(
            instance, date(2013, 1, 1), date(2013, 1, 2),
            {"storage": DeltaStorage(base_uri=lake), "source": EmbeddedNycflights13()}, "ERROR",
        )  # fmt: skip
    return results


def test_the_data_layers_materialize_on_the_postgres_instance(dagster_home, materialized):
    home, db_name = dagster_home
    assert [r.success for r in materialized] == [True, True]

    with dg.DagsterInstance.from_config(str(home)) as fresh:  # another process would see the same
        assert type(fresh.run_storage).__name__ == "PostgresRunStorage"
        runs = fresh.get_run_records(dg.RunsFilter(job_name="data_layers"))
        assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        event = fresh.get_latest_materialization_event(dg.AssetKey("flight_features"))
        assert event.asset_materialization.tags["dagster/data_version"].startswith("features/flight_features@")
        checks = fresh.event_log_storage.get_asset_check_summary_records([dg.AssetCheckKey(dg.AssetKey("flights"), "key_unique")])
        assert checks[dg.AssetCheckKey(dg.AssetKey("flights"), "key_unique")].last_completed_check_execution_record
    connection = psycopg2.connect(dbname=db_name, **PG)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == 2  # dimensions and data_layers, in PostgreSQL
    connection.close()
    assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"]  # nothing written to DAGSTER_HOME


def test_the_instance_applies_the_values_concurrency_settings(dagster_home):
    home, _ = dagster_home
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.default_pool_limit, pools.pool_granularity.value) == (1, "op")
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"


def test_a_bare_postgresql_scheme_would_not_connect(dagster_home, tmp_path):
    """Why the values set postgresqlScheme: SQLAlchemy 2.1 maps postgresql:// to psycopg 3."""
    home, db_name = dagster_home
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    config["run_storage"]["config"]["postgres_db"].pop("scheme")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({k: config[k] for k in ("run_storage", "telemetry")}))
    with pytest.raises(ModuleNotFoundError, match="psycopg"):
        dg.DagsterInstance.from_config(str(tmp_path)).get_run_records()


def test_the_exporter_reads_the_postgres_instance_and_reports_an_outage(dagster_home, materialized):
    from ml_assets.observability.exporter import metrics_registry

    home, db_name = dagster_home
    with dg.DagsterInstance.from_config(str(home)) as instance:
        registry = metrics_registry(instance, window_seconds=3600)
        scraped = scrape(registry)
        assert scraped["ml_assets_dagster_instance_up"] == {(): 1.0}
        assert scraped["ml_assets_dagster_finished_runs"][labels(job="data_layers", status="SUCCESS")] == 1

        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()")
        admin(f"ALTER DATABASE {db_name} RENAME TO {db_name}_away")  # the database is gone for the exporter
        try:
            down = scrape(registry)
        finally:
            admin(f"ALTER DATABASE {db_name}_away RENAME TO {db_name}")
        assert down == {"ml_assets_dagster_instance_up": {(): 0.0}}
        assert scrape(registry)["ml_assets_dagster_instance_up"] == {(): 1.0}  # and back


# --- MLflow -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mlflow_container(kind: str) -> dict:
    (deployment,) = [d for d in load_all_yaml(DEPLOY / "manifests" / "mlflow.yaml") if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    return spec["initContainers"][0] if kind == "init" else spec["containers"][0]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """The Deployment's init container, then its server, on a database of their own; only the
    bind address, port and worker count differ (a free local port, one worker on this machine)."""
    with database("ml_assets_mlflow") as db_name:
        uri = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{db_name}"
        artifacts = tmp_path_factory.mktemp("mlflow_artifacts")
        env = os.environ | {"MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_ARTIFACTS_DESTINATION": artifacts.as_uri()}
        bin_dir = Path(sys.executable).parent

        init = mlflow_container("init")["command"]
        assert init == ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"]
        subprocess.run([str(bin_dir / "mlflow"), "db", "upgrade", uri], env=env, check=True, capture_output=True, timeout=300)

        port = free_port()
        container = mlflow_container("server")
        args = [a for a in container["args"] if not a.startswith(("--host=", "--port=", "--workers="))]
        allowed = next(a for a in args if a.startswith("--allowed-hosts="))
        args[args.index(allowed)] = f"{allowed},127.0.0.1:{port}"  # the test's own address, next to the Service's
        command = [str(bin_dir / container["command"][0]), *container["command"][1:], *args, "--host=127.0.0.1", f"--port={port}", "--workers=1"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(1)
            else:
                pytest.fail("the MLflow server did not answer /health within 180 s")
            yield url, db_name, port
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def test_the_server_answers_only_the_hosts_the_deployment_allows(mlflow_server):
    url, _, port = mlflow_server
    search = "/api/2.0/mlflow/experiments/search?max_results=1"

    for host in ("ml-assets-mlflow:5000", "ml-assets-mlflow.ml-assets.svc.cluster.local:5000", "mlflow.example.com"):
        assert httpx.get(url + search, headers={"Host": host}, timeout=30).status_code == 200, host
    assert httpx.get(url + search, headers={"Host": "attacker.example"}, timeout=30).status_code == 403
    assert httpx.get(url + "/health", headers={"Host": "10.0.0.7:5000"}, timeout=30).status_code == 200  # the probes


def register_two_versions(tracking_uri: str) -> ModelRegistry:
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
    from ml_assets.models.tracking import log_training_run
    from ml_assets_tests.models.conftest import synthetic_features

    features = synthetic_features(rows=1500, days=30)
    model = train_lgbm(features, LgbmSearchConfig(n_trials=1, max_boost_rounds=20))
    registry = ModelRegistry(tracking_uri, "flight_disruption")
    for week in ("2013-03-04", "2013-03-11"):
        logged = log_training_run(
            model, tracking_uri=tracking_uri, experiment_name="flight_disruption", sample_frame=features.head(5),
            params={"n_trials": 1}, metrics=model.validation_metrics, data_versions={"features/flight_features": 3},
            tags={"dagster_partition": week},
        )  # fmt: skip
        registry.register_version(logged.model_uri, logged.run_id)
    return registry


def test_promotion_and_rollback_on_the_postgres_backed_server(mlflow_server, tmp_path):
    url, db_name, _ = mlflow_server
    registry = register_two_versions(url)
    registry.promote("1", "first champion")
    registry.promote("2", "beats v1")  # loads v2's artifact through the server's artifact proxy

    env = os.environ | {
        "ML_ASSETS_ENV": "k8s", "MLFLOW_TRACKING_URI": url, "ML_ASSETS_DATA_DIR": str(tmp_path),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ml_assets.cli", "rollback", "--reason", "v2 over-predicts at EWR"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - began

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "flight_disruption: champion v2 -> v1 (v2 over-predicts at EWR)"
    print(f"\n`ml-assets rollback` against MLflow on PostgreSQL: {seconds:.1f} s")
    fresh = ModelRegistry(url, "flight_disruption")
    assert fresh.version_for(CHAMPION) == "1"
    assert [(m.action, m.from_version, m.to_version) for m in fresh.alias_log()] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("rollback", "2", "1"),
    ]  # fmt: skip
    connection = psycopg2.connect(dbname=db_name, **PG)
    with connection, connection.cursor() as cursor:  # the registry lives in PostgreSQL
        cursor.execute("SELECT alias, version FROM registered_model_aliases WHERE alias = 'champion'")
        assert cursor.fetchall() == [("champion", 1)]
    connection.close()
