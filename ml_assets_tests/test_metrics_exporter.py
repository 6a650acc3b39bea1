"""The metrics exporter against a real Dagster instance: real failed and successful runs, real
failing and passing asset checks, scraped over HTTP from the server `ml-assets metrics-exporter`
starts."""

import os
import signal
import subprocess
import sys
import time
from datetime import date

import dagster as dg
import httpx
import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from ml_assets.definitions import daily_assets, freshness_checks
from ml_assets.observability.dagster_metrics import DagsterInstanceCollector
from ml_assets.observability.exporter import metrics_registry
from ml_assets.resources.sources import EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.runs import run_data_layers
from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.helpers import write_landing_zone
from ml_assets_tests.metric_names import exposed_families, queried_metrics, queryable

NO_WEATHER_DAY = date(2013, 12, 31)  # 2013's data has no weather observations that day
FLIGHTS_FRESHNESS = dg.AssetCheckKey(dg.AssetKey("flights"), "freshness_check")


def scrape_text(registry) -> str:
    """GET /metrics from a real server on a free local port."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        return httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=30).text
    finally:
        server.shutdown()
        thread.join(timeout=10)


def scrape(registry) -> dict[str, dict[tuple, float]]:
    """The scraped families: family → {label items: value}."""
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(scrape_text(registry))
    }


def labels(**items) -> tuple:
    return tuple(sorted(items.items()))


def populate(instance: dg.DagsterInstance, folder) -> None:
    """Runs that really happened: the per-partition freshness checks before any data arrived (they
    fail); the data layers for the day without weather (the run succeeds, its weather rows-per-day
    check fails as a warning); the freshness check of `flights` again (it passes now); and a day
    range whose landing zone lacks a day (the run fails)."""
    embedded = {"storage": DeltaStorage(base_uri=str(folder / "lake")), "source": EmbeddedNycflights13()}
    checks = dg.Definitions(
        assets=daily_assets,
        asset_checks=freshness_checks,
        jobs=[
            dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(*freshness_checks)),
            dg.define_asset_job("flights_freshness", selection=dg.AssetSelection.checks(FLIGHTS_FRESHNESS)),
        ],
        resources=embedded,
    )
    assert checks.resolve_job_def("freshness").execute_in_process(instance=instance).success
    assert all(r.success for r in run_data_layers(instance, NO_WEATHER_DAY, NO_WEATHER_DAY, embedded, "ERROR"))
    assert checks.resolve_job_def("flights_freshness").execute_in_process(instance=instance).success

    landing = write_landing_zone(folder / "landing", date(2013, 1, 1), date(2013, 1, 1))
    broken = {"storage": DeltaStorage(base_uri=str(folder / "lake2")), "source": LandingZone(root=str(landing))}
    results = run_data_layers(instance, date(2013, 1, 1), date(2013, 1, 2), broken, "CRITICAL")
    assert [r.success for r in results] == [True, False]


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exporter")
    (folder / "home").mkdir()
    (folder / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.local_temp(str(folder / "home")) as instance:
        populate(instance, folder)
        yield instance


@pytest.fixture(scope="module")
def scraped(instance):
    return scrape(metrics_registry(instance, window_seconds=3600))


def test_the_exporter_reports_the_instance_up(scraped):
    assert scraped["ml_assets_dagster_instance_up"] == {(): 1.0}


def test_every_dagster_metric_the_rules_and_the_dashboard_query_is_exported(instance):
    exported = queryable(exposed_families(scrape_text(metrics_registry(instance, window_seconds=3600))))
    queried = {name for name in queried_metrics() if name.startswith("ml_assets_dagster_")}

    assert len(queried) >= 5
    assert queried - exported == set()


def test_finished_runs_by_job_and_status_with_zero_for_what_did_not_happen(scraped):
    runs = scraped["ml_assets_dagster_finished_runs"]

    assert runs[labels(job="data_layers", status="FAILURE")] == 1
    assert runs[labels(job="data_layers", status="SUCCESS")] == 1
    assert runs[labels(job="dimensions", status="SUCCESS")] == 2
    assert runs[labels(job="dimensions", status="FAILURE")] == 0
    assert runs[labels(job="freshness", status="SUCCESS")] == 1  # a failed check does not fail its run
    assert runs[labels(job="flights_freshness", status="SUCCESS")] == 1
    assert scraped["ml_assets_dagster_active_runs"] == {}


def test_the_latest_evaluation_of_every_check_with_its_severity(scraped):
    passed = scraped["ml_assets_dagster_asset_check_passed"]

    assert passed[labels(asset="weather", check="rows_per_day", severity="WARN")] == 0
    assert passed[labels(asset="flights", check="key_unique", severity="ERROR")] == 1
    assert passed[labels(asset="flight_features", check="flight_id_unique", severity="ERROR")] == 1
    freshness = {dict(k)["asset"]: v for k, v in passed.items() if dict(k)["check"] == "freshness_check"}
    assert set(freshness) == {a.key.to_user_string() for a in daily_assets}
    # the latest evaluation counts: only `flights` was checked again once its last partition landed
    assert freshness == {asset: 1.0 if asset == "flights" else 0.0 for asset in freshness}
    assert all(dict(k)["severity"] == "WARN" for k in passed if dict(k)["check"] == "freshness_check")
    evaluated = scraped["ml_assets_dagster_asset_check_evaluation_timestamp_seconds"]
    assert set(evaluated) == set(passed)
    assert all(time.time() - 3600 < t <= time.time() for t in evaluated.values())


def test_a_check_never_evaluated_has_no_series(scraped):
    model_checks = {dict(k)["check"] for k in scraped["ml_assets_dagster_asset_check_passed"]}
    assert "minimum_roc_auc" not in model_checks  # declared by the code location, never run here


def test_runs_older_than_the_window_no_longer_count(instance):
    later = DagsterInstanceCollector(instance, [], window_seconds=3600, clock=lambda: time.time() + 7200)
    registry = dg_registry(later)

    assert scrape(registry)["ml_assets_dagster_finished_runs"] == {}


def test_a_queued_run_shows_as_active_with_its_age(instance):
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.utils import make_new_run_id

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="ml_assets.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "weekly_models")
    queued = instance.add_run(
        dg.DagsterRun(
            job_name="weekly_models", run_id=make_new_run_id(), status=dg.DagsterRunStatus.QUEUED,
            remote_job_origin=origin,
        )  # fmt: skip
    )
    try:
        collector = DagsterInstanceCollector(instance, [], clock=lambda: time.time() + 120)
        scraped = scrape(dg_registry(collector))
    finally:
        instance.delete_run(queued.run_id)

    assert scraped["ml_assets_dagster_active_runs"] == {labels(job="weekly_models", status="QUEUED"): 1}
    (age,) = scraped["ml_assets_dagster_oldest_queued_run_age_seconds"].values()
    assert 119 <= age < 200


def dg_registry(collector):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_the_cli_serves_the_instance_of_dagster_home_until_sigterm(instance):
    env = os.environ | {
        "DAGSTER_HOME": instance.root_directory,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "ml_assets.cli", "metrics-exporter", "--host", "127.0.0.1", "--port", "0"]
    server = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # printed once the server listens
        url = line.split(" on ")[-1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), line + server.stderr.read()
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(url, timeout=30).text)}
        assert families["ml_assets_dagster_instance_up"].samples[0].value == 1
        assert families["ml_assets_dagster_finished_runs"].samples
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
