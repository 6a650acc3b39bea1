"""The metric names the alert rules and the dashboard query, and the names a /metrics page offers."""

import json
import re

import yaml

from ml_assets_tests.k8s_offline import DEPLOY

MONITORING = DEPLOY / "monitoring"
RULES, RULE_TESTS, DASHBOARD = (
    MONITORING / "alert-rules.yaml", MONITORING / "alert-rules.test.yaml", MONITORING / "grafana-dashboard.json",
)  # fmt: skip

# The serving API's metrics as agreed with its issue (ml_assets.serving): name → type.
SERVING_METRICS = {
    "ml_assets_serving_requests_total": "counter",
    "ml_assets_serving_request_duration_seconds": "histogram",
    "ml_assets_serving_predictions_total": "counter",
    "ml_assets_serving_prediction_score": "histogram",
    "ml_assets_serving_feature_age_seconds": "histogram",
    "ml_assets_serving_online_store_errors_total": "counter",
    "ml_assets_serving_rollout_state": "gauge",
    "ml_assets_serving_rollout_percent": "gauge",
    "ml_assets_serving_rollout_aborts_total": "counter",
    "ml_assets_serving_model_info": "gauge",
    "ml_assets_serving_prediction_log_errors_total": "counter",
}


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def queried_metrics() -> set[str]:
    """Every ml_assets_* series name in a rule's or a dashboard panel's query."""
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    return {name for expr in exprs for name in re.findall(r"\b(ml_assets_[a-z0-9_]+)", expr)}


def queryable(families: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for metric families (name → type): a histogram's
    _bucket, _sum and _count, a counter or gauge under its own name."""
    names = set()
    for name, kind in families.items():
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def exposed_families(text: str) -> dict[str, str]:
    """name → type of every `# TYPE` line of a /metrics page (labelled families without samples
    yet show there too)."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
