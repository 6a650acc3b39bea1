"""`ml-assets metrics-exporter`: serve the Dagster instance's metrics on /metrics.

It reads the instance that DAGSTER_HOME's dagster.yaml names (on Kubernetes the chart's instance
ConfigMap, with the PostgreSQL password from its Secret) and the asset checks that the code
location declares; it never launches runs, so the run launcher is never built.
"""

import signal
import threading

import dagster as dg
from prometheus_client import CollectorRegistry, start_http_server

from ml_assets.observability.dagster_metrics import DagsterInstanceCollector


def metrics_registry(instance: dg.DagsterInstance, window_seconds: float) -> CollectorRegistry:
    """A registry with the instance collector, over every asset check of the code location."""
    from ml_assets.definitions import defs

    registry = CollectorRegistry()
    check_keys = sorted(defs.resolve_asset_graph().asset_check_keys, key=str)
    registry.register(DagsterInstanceCollector(instance, check_keys, window_seconds))
    return registry


def serve(host: str, port: int, window_seconds: float) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with dg.DagsterInstance.get() as instance:
        server, _ = start_http_server(port, addr=host, registry=metrics_registry(instance, window_seconds))
        print(f"ml-assets metrics-exporter: Dagster metrics on http://{host}:{server.server_port}/metrics", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        server.shutdown()
