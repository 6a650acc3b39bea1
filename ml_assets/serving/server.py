"""`ml-assets serve`: the service on uvicorn (one process; scale out with replicas)."""

from __future__ import annotations

import gc


def run_server(host: str, port: int, warm_from_lake: bool = False) -> int:
    import uvicorn

    from ml_assets.serving.app import create_app
    from ml_assets.serving.service import ServingService, ServingSettings

    settings = ServingSettings.from_env()
    service = ServingService(settings)
    if warm_from_lake:
        from ml_assets.resources.storage import DeltaStorage
        from ml_assets.serving.warmup import warm_from_lake as warm

        lake = DeltaStorage(base_uri=str(settings.data_dir / "lake"))
        done = warm(lake, service.store)
        print(f"Online store {service.store.url}: daily features of {done.day} ({done.daily_rows} rows), "
              f"{done.events_applied} events of the days before applied", flush=True)  # fmt: skip
        if done.events_expired:
            print(f"  {done.events_expired} events were older than the state the store holds: remove it to warm "
                  "an earlier day", flush=True)  # fmt: skip
    service.start()
    # What is loaded by now lives as long as the process: keep it out of the garbage collector's
    # full passes, which otherwise pause requests for tens of milliseconds.
    gc.collect()
    gc.freeze()
    champion = service.deployment.routing.champion
    print(
        f"Serving {settings.model_name} "
        f"({f'champion v{champion.version}, {champion.kind}' if champion else 'no champion yet: ' + str(service.deployment.last_error)}) "
        f"on http://{host}:{port}  (docs: /docs, metrics: /metrics; "
        f"bearer token {'required' if settings.api_token else 'not set'} for /v1/events and /v1/status)",
        flush=True,
    )
    uvicorn.run(
        create_app(service), host=host, port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=10,
    )  # fmt: skip
    return 0
