"""`ml-assets serve`: the service on uvicorn, in one process or in `--workers N` processes sharing
the port (uvicorn's supervisor; the kernel spreads connections over them). Every worker builds its
own service from the environment: it loads the champion, polls the registry and follows rollouts
and aborts by itself, and appends to the shared prediction log."""

from __future__ import annotations

import gc

SERVER_OPTIONS = {"log_level": "warning", "access_log": False, "loop": "uvloop", "http": "httptools",
                  "timeout_graceful_shutdown": 10}  # fmt: skip


def run_server(host: str, port: int, warm_from_lake: bool = False, workers: int = 1) -> int:
    import uvicorn

    from ml_assets.serving.service import ServingSettings

    settings = ServingSettings.from_env()
    if warm_from_lake:
        _warm(settings)
    token = "bearer token required but for health, /metrics and the docs" if settings.api_token else "no bearer token set"
    if workers > 1:
        print(f"Serving {settings.model_name} in {workers} worker processes on http://{host}:{port}  "
              f"(docs: /docs, metrics per worker: /metrics; {token})", flush=True)  # fmt: skip
        uvicorn.run(f"{__name__}:worker_app", factory=True, host=host, port=port, workers=workers, **SERVER_OPTIONS)
        return 0
    app, service = _started_app()
    champion = service.deployment.routing.champion
    loaded = f"champion v{champion.version}, {champion.kind}" if champion else f"no champion yet: {service.deployment.last_error}"
    print(f"Serving {settings.model_name} ({loaded}) on http://{host}:{port}  (docs: /docs, metrics: /metrics; {token})",
          flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, **SERVER_OPTIONS)
    return 0


def worker_app():
    """The app of one worker process (uvicorn's factory)."""
    return _started_app()[0]


def _started_app():
    from ml_assets.serving.app import create_app
    from ml_assets.serving.service import ServingService, ServingSettings

    service = ServingService(ServingSettings.from_env())
    service.start()
    # What is loaded by now lives as long as the process: keep it out of the garbage collector's
    # full passes, which otherwise pause requests for tens of milliseconds.
    gc.collect()
    gc.freeze()
    return create_app(service), service


def _warm(settings) -> None:
    from ml_assets.resources.storage import DeltaStorage
    from ml_assets.serving.store import open_store
    from ml_assets.serving.warmup import warm_from_lake

    store = open_store(settings.store_url, settings.data_dir)
    try:
        done = warm_from_lake(DeltaStorage(base_uri=str(settings.data_dir / "lake")), store)
    finally:
        store.close()
    print(f"Online store {store.url}: daily features of {done.day} ({done.daily_rows} rows), "
          f"{done.events_applied} events of the days before applied", flush=True)  # fmt: skip
    if done.events_expired:
        print(f"  {done.events_expired} events were older than the state the store holds: remove it to warm "
              "an earlier day", flush=True)  # fmt: skip
