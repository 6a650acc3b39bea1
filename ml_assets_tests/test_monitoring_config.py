"""Alert rules and the Grafana dashboard: promtool checks and unit-tests the rules (each alert firing
on one series and silent on another), every alert links a section of the runbook, and every
metric they query is one the code exports (the exporter's: tests/test_metrics_exporter.py, live;
the serving API's: its agreed names, and a live scrape of `ml-assets serve` once the serving
module is in the code location)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from ml_assets.settings import PROJECT_ROOT
from ml_assets_tests.k8s_offline import DEPLOY
from ml_assets_tests.metric_names import (
    DASHBOARD,
    RULE_TESTS,
    RULES,
    SERVING_METRICS,
    alert_rules,
    exposed_families,
    queried_metrics,
    queryable,
)

EXPORTER_METRICS = {  # ml_assets/observability/dagster_metrics.py; checked live in test_metrics_exporter.py
    "ml_assets_dagster_instance_up", "ml_assets_dagster_finished_runs", "ml_assets_dagster_active_runs",
    "ml_assets_dagster_oldest_queued_run_age_seconds", "ml_assets_dagster_asset_check_passed",
    "ml_assets_dagster_asset_check_evaluation_timestamp_seconds",
}  # fmt: skip


def promtool(*args) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (.ci/run does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_promtool_checks_the_rules():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass():
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_shown_firing_on_one_series_and_silent_on_another():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for rule in alert_rules():
        name = rule["alert"]
        cases = [(t, c) for t in tests for c in t["alert_rule_test"] if c["alertname"] == name]
        firing = [(t, c) for t, c in cases if c["exp_alerts"]]
        assert firing, f"{name} is never shown firing"
        silent = any(not c["exp_alerts"] for _, c in cases) or any(
            len(t["input_series"]) > len(c["exp_alerts"]) for t, c in firing
        )
        assert silent, f"{name} is never shown silent on another series"


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{2,4} (.+)$", (DEPLOY / "RUNBOOK.md").read_text(), re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-") for h in headings}


def test_every_alert_links_a_section_of_the_runbook():
    anchors = runbook_anchors()
    for rule in alert_rules():
        link = rule["annotations"]["runbook_url"]
        assert link.startswith("deploy/RUNBOOK.md#") and link.split("#")[1] in anchors, (rule["alert"], link)
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]


def test_the_dashboard_is_grafana_json_over_a_prometheus_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "ml-assets" and dashboard["schemaVersion"] >= 36
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12 and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and panel["targets"], panel["title"]


def test_every_metric_queried_is_one_the_code_exports():
    queried = queried_metrics()
    exported = queryable(SERVING_METRICS) | queryable({name: "gauge" for name in EXPORTER_METRICS})

    assert queried - exported == set()
    # the dashboard shows every serving metric; the alerts use the exporter's as well
    assert {re.sub(r"_(bucket|sum|count)$", "", n) for n in queried if "serving" in n} == set(SERVING_METRICS)
    assert {n for n in queried if "dagster" in n} == EXPORTER_METRICS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_serving_api_exports_every_serving_metric_queried(tmp_path):
    """`ml-assets serve` as the Deployment starts it, scraped live on a free local port."""
    port = free_port()
    env = os.environ | {
        "ML_ASSETS_ENV": "local", "ML_ASSETS_DATA_DIR": str(tmp_path),
        "ML_ASSETS_ONLINE_STORE": "redis://127.0.0.1:6379/15", "ML_ASSETS_API_TOKEN": "test-token",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "ML_ASSETS_FEED_CLOCK": "replay",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    command = [sys.executable, "-m", "ml_assets.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        text, deadline = None, time.monotonic() + 60
        while text is None and time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status().text
            except httpx.HTTPError:
                time.sleep(0.5)
        assert text is not None, "ml-assets serve did not answer /metrics within 60 s"
    finally:
        server.terminate()
        server.wait(timeout=30)
    exported = queryable(exposed_families(text))
    queried = {name for name in queried_metrics() if name.startswith("ml_assets_serving_")}
    assert queried - exported == set()
    assert {n for n, kind in exposed_families(text).items() if n in SERVING_METRICS} == set(SERVING_METRICS)
