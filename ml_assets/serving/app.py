"""The HTTP API (FastAPI): predictions by flight identity, the Open Inference Protocol (KServe v2)
for full feature vectors, the event feed, health, status and Prometheus metrics.

`/docs` and `/redoc` are served with their own assets (fastapi-offline), so they render without
internet access. When ML_ASSETS_API_TOKEN is set, the event feed and the status route need it as a
bearer token. Bad input is a 4xx that names the field; an unreachable online store is a 503.
"""


import hmac
import json
import time
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ml_assets.serving.assembly import FeatureRequestError
from ml_assets.serving.inference_protocol import (
    InferenceRequest,
    InferenceResponse,
    InvalidInput,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
    model_inputs,
)
from ml_assets.serving.schemas import EventBatch, EventsResponse, PredictResponse, predict_request_model
from ml_assets.serving.service import ServiceUnavailable, ServingService, ServingSettings
from ml_assets.serving.store import OnlineStoreError

RETRY_AFTER_S = "5"


def _problem(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class MetricsMiddleware:
    """Counts requests by route template, method and status, and times them (pure ASGI)."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status = {"code": 500}

        async def record_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status["code"])).inc()
            self.metrics.request_duration.labels(route=route).observe(time.perf_counter() - began)


def create_app(service: ServingService | None = None, settings: ServingSettings | None = None) -> FastAPI:
    """The app around `service` (built from `settings`, or the environment, when not given); its
    lifespan starts and stops the service."""
    from fastapi_offline import FastAPIOffline

    service = service or ServingService(settings or ServingSettings.from_env())
    settings = service.settings
    bearer = HTTPBearer(auto_error=False, description="ML_ASSETS_API_TOKEN, when the service sets one")

    def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        expected = settings.api_token
        if expected is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _Unauthorized()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        service.start()
        yield
        service.stop()

    app = FastAPIOffline(
        title="ml_assets flight disruption service",
        version=package_version("ml_assets"),
        description=(
            "Disruption risk (arrival >= 15 min late, cancelled or diverted) of New York departures, "
            "from the flight's identity and schedule: the service assembles every feature from its online "
            "store as of the prediction point, 2 hours before departure."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    PredictRequest = predict_request_model(settings.max_batch)  # noqa: N806 (a model class)

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: _Unauthorized) -> JSONResponse:
        return _problem(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(FeatureRequestError)
    async def undescribable(_: Request, error: FeatureRequestError) -> JSONResponse:
        detail = [
            {"loc": ["body", "flights", p.index, p.field], "msg": p.message, "type": p.kind} for p in error.problems
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(OnlineStoreError)
    async def store_down(_: Request, error: OnlineStoreError) -> JSONResponse:
        return _problem(503, f"online store unavailable: {error}", {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(ServiceUnavailable)
    async def not_ready(_: Request, error: ServiceUnavailable) -> JSONResponse:
        return _problem(503, str(error), {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(InvalidInput)
    async def invalid_tensors(_: Request, error: InvalidInput) -> JSONResponse:
        return _problem(422, str(error))

    unavailable = {503: {"description": "no champion loaded, or the online store is unreachable"}}

    @app.post("/v1/predict", response_model=PredictResponse, tags=["predictions"], responses=unavailable)
    async def predict(body: PredictRequest, request: Request) -> Response:
        """Disruption risk of one or many flights by identity and schedule; the service adds every
        feature. Answered by the champion, or in a canary by the challenger for its share of flights."""
        answer = service.predict(body.flights, body.return_features, request.headers.get("x-request-id"))
        return Response(json.dumps(answer), media_type="application/json")

    @app.post(
        "/v1/events", response_model=EventsResponse, tags=["event feed"], dependencies=[Depends(authorized)],
        responses={401: {"description": "missing or wrong bearer token"}, **unavailable},
    )  # fmt: skip
    def events(body: EventBatch) -> EventsResponse:  # a worker thread: a big batch must not hold up predictions
        """The real-time feed: schedules, departures, cancellations and weather observations, in
        batches; an event id already applied is ignored."""
        return service.ingest(body.events)

    @app.get("/v1/status", tags=["management"], dependencies=[Depends(authorized)],
             responses={401: {"description": "missing or wrong bearer token"}})  # fmt: skip
    def status() -> dict:
        """Loaded models, rollout, guardrail figures, online store, prediction log and registry."""
        return service.status()

    @app.get("/v2", response_model=ServerMetadataResponse, tags=["inference protocol"])
    async def server_metadata() -> ServerMetadataResponse:
        return ServerMetadataResponse(name="ml_assets", version=package_version("ml_assets"), extensions=[])

    @app.get("/v2/health/live", response_model=ServerLiveResponse, tags=["inference protocol"])
    async def live() -> ServerLiveResponse:
        return ServerLiveResponse(live=True)

    @app.get("/v2/health/ready", response_model=ServerReadyResponse, tags=["inference protocol"],
             responses={503: {"model": ServerReadyResponse, "description": "not ready, with the reason"}})  # fmt: skip
    async def ready():
        is_ready, reason = service.readiness()
        body = ServerReadyResponse(ready=is_ready, reason=reason)
        return body if is_ready else JSONResponse(body.model_dump(), status_code=503)

    def known_model(model_name: str) -> None:
        if model_name != settings.model_name:
            raise _NotFound(f"model {model_name!r} not found: this service serves {settings.model_name!r}")

    @app.exception_handler(_NotFound)
    async def not_found(_: Request, error: _NotFound) -> JSONResponse:
        return _problem(404, str(error))

    not_found_response = {404: {"description": "unknown model name"}}

    @app.get("/v2/models/{model_name}", response_model=ModelMetadataResponse, tags=["inference protocol"],
             responses={**not_found_response, **unavailable})  # fmt: skip
    async def model_metadata(model_name: str) -> ModelMetadataResponse:
        known_model(model_name)
        champion = service._routing().champion
        return ModelMetadataResponse(
            name=model_name, versions=[champion.version], platform=champion.kind, inputs=model_inputs(),
            outputs=[{"name": "disruption_probability", "datatype": "FP64", "shape": [-1]}],
        )  # fmt: skip

    @app.get("/v2/models/{model_name}/ready", response_model=ModelReadyResponse, tags=["inference protocol"],
             responses={**not_found_response, 503: {"model": ModelReadyResponse, "description": "no champion loaded"}})  # fmt: skip
    async def model_ready(model_name: str):
        known_model(model_name)
        loaded = service.deployment.routing.champion is not None
        body = ModelReadyResponse(name=model_name, ready=loaded)
        return body if loaded else JSONResponse(body.model_dump(), status_code=503)

    @app.post("/v2/models/{model_name}/infer", response_model=InferenceResponse, tags=["inference protocol"],
              responses={**not_found_response, **unavailable})  # fmt: skip
    async def infer(model_name: str, body: InferenceRequest) -> InferenceResponse:
        """Full feature vectors (one named tensor per `flight_features` column), scored by the champion."""
        known_model(model_name)
        return service.infer(body)

    @app.get("/metrics", tags=["monitoring"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


class _Unauthorized(Exception):
    pass


class _NotFound(Exception):
    pass
