"""Prometheus metrics of the service, in a registry of its own (one per service instance).

The names are a contract with the alert rules and the Grafana dashboard in `deploy/`.
"""

from __future__ import annotations

from ml_assets.models.rollouts import MODES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
AGE_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 36 * 3600, 48 * 3600)


class ServingMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no `_created` series next to every counter and histogram
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ml_assets_serving_requests_total", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "ml_assets_serving_request_duration_seconds", "HTTP request duration by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "ml_assets_serving_predictions_total", "Predictions by model version and role (champion, challenger, shadow)",
            ["model_version", "role"], registry=r,
        )  # fmt: skip
        self.prediction_score = Histogram(
            "ml_assets_serving_prediction_score", "Predicted disruption risk by role", ["role"],
            buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.feature_age = Histogram(
            "ml_assets_serving_feature_age_seconds",
            "Age of the features served: daily = since the day's rows were pushed, realtime = since the last event arrived",
            ["kind"], buckets=AGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.store_errors = Counter(
            "ml_assets_serving_online_store_errors_total", "Online store failures by operation",
            ["operation"], registry=r,
        )  # fmt: skip
        self.rollout_state = Gauge(
            "ml_assets_serving_rollout_state", "1 for the active rollout mode", ["mode"], registry=r
        )
        self.rollout_percent = Gauge("ml_assets_serving_rollout_percent", "Share of flights in the rollout", registry=r)
        self.rollout_aborts = Counter(
            "ml_assets_serving_rollout_aborts_total", "Rollouts aborted by this process, by breached figure",
            ["reason"], registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "ml_assets_serving_model_info", "The loaded models (value 1)", ["role", "model_version"], registry=r
        )
        self.log_errors = Counter(
            "ml_assets_serving_prediction_log_errors_total", "Failed writes to the prediction log (retried)", registry=r
        )
        # beyond the contract
        self.log_pending = Gauge(
            "ml_assets_serving_prediction_log_pending", "Predictions waiting to be written to the log", registry=r
        )
        self.events = Counter(
            "ml_assets_serving_events_total", "Events received, by outcome (applied, duplicate, expired, rejected_<reason>)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.model_swaps = Counter(
            "ml_assets_serving_model_swaps_total", "Models loaded and switched to, by role", ["role"], registry=r
        )
        self.model_load_failures = Counter(
            "ml_assets_serving_model_load_failures_total", "Model versions that failed to load or score, by role",
            ["role"], registry=r,
        )  # fmt: skip
        self.registry_poll_errors = Counter(
            "ml_assets_serving_registry_poll_errors_total", "Registry polls that failed", registry=r
        )
        self.challenger_fallbacks = Counter(
            "ml_assets_serving_challenger_fallbacks_total",
            "Canary flights the champion answered because the challenger failed", registry=r,
        )  # fmt: skip
        self.shadow_dropped = Counter(
            "ml_assets_serving_shadow_dropped_total", "Shadow or comparison scorings skipped (queue full)", registry=r
        )
        self.set_rollout("none", 0.0)

    def set_rollout(self, mode: str, percent: float) -> None:
        for known in MODES:
            self.rollout_state.labels(mode=known).set(1.0 if known == mode else 0.0)
        self.rollout_percent.set(percent if mode != "none" else 0.0)

    def set_models(self, versions: dict[str, str | None]) -> None:
        """role → loaded version (None: nothing loaded for that role)."""
        self.model_info.clear()
        for role, version in versions.items():
            if version is not None:
                self.model_info.labels(role=role, model_version=version).set(1.0)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
