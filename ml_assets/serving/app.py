"""The HTTP API (FastAPI): predictions by flight identity, the Open Inference Protocol (KServe v2)
for full feature vectors, the event feed, health, status and Prometheus metrics.

`/docs` and `/redoc` are served with their own assets (fastapi-offline), so they render without
internet access. Who may call which route is in `access.py`. Bad input is a 4xx that names the
field and rule (`http_errors.py`); an unreachable online store is a 503. Every route that touches
the store, a model or the registry runs in the threadpool, so a slow store never holds up the event
loop (liveness, metrics).
"""


import json
import time
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ml_assets.serving import http_errors
from ml_assets.serving.access import READ, WRITE, AccessControl, AccessDenied
from ml_assets.serving.assembly import FeatureRequestError
from ml_assets.serving.http_errors import problem, problems
from ml_assets.serving.inference_protocol import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    InferenceRequest,
    InferenceResponse,
    InvalidInput,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
    accepted_content_type,
    encode_response,
    model_inputs,
    model_outputs,
    read_request,
)
from ml_assets.serving.request_body import StrictJsonRoute, excerpt, refuse_encoded
from ml_assets.serving.schemas import EventBatch, EventsResponse, PredictResponse, predict_request_model
from ml_assets.serving.service import ServiceUnavailable, ServingService, ServingSettings
from ml_assets.serving.store import OnlineStoreError

RETRY_AFTER_S = "5"


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
    access = AccessControl(settings.access())
    bearer = HTTPBearer(auto_error=False, description="ML_ASSETS_API_TOKEN (any route) or ML_ASSETS_READ_TOKEN (read routes)")

    async def reader(request: Request, _: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
        return access.caller(request, READ)

    async def writer(request: Request, _: HTTPAuthorizationCredentials | None = Security(bearer)) -> str:
        return access.caller(request, WRITE)

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
    app.router.route_class = StrictJsonRoute
    app.state.service = service
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    http_errors.install(app)
    PredictRequest = predict_request_model(settings.max_batch)  # noqa: N806 (a model class)

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, error: AccessDenied) -> JSONResponse:
        return problem(request, error.status, str(error), error.headers)

    @app.exception_handler(FeatureRequestError)
    async def undescribable(request: Request, error: FeatureRequestError) -> JSONResponse:
        listed = [{"loc": ["body", "flights", p.index, p.field], "msg": p.message, "type": p.kind} for p in error.problems]
        return problems(request, 422, listed)

    @app.exception_handler(OnlineStoreError)
    async def store_down(request: Request, error: OnlineStoreError) -> JSONResponse:
        return problem(request, 503, f"online store unavailable: {error}", {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(ServiceUnavailable)
    async def not_ready(request: Request, error: ServiceUnavailable) -> JSONResponse:
        return problem(request, 503, str(error), {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(InvalidInput)
    async def invalid_tensors(request: Request, error: InvalidInput) -> JSONResponse:
        return problem(request, 400, str(error))

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, error: _NotFound) -> JSONResponse:
        return problem(request, 404, str(error))

    unavailable = {503: {"description": "no champion loaded, or the online store is unreachable"}}
    denials = {401: {"description": "missing or wrong bearer token"}, 429: {"description": "rate limit reached (Retry-After)"}}
    write_denials = denials | {403: {"description": "the read token on a write route"}}

    @app.post("/v1/predict", response_model=PredictResponse, tags=["predictions"], responses={**denials, **unavailable})
    def predict(body: PredictRequest, request: Request, caller: str = Depends(reader)) -> Response:
        """Disruption risk of one or many flights by identity and schedule; the service adds every
        feature. Answered by the champion, or in a canary by the challenger for its share of flights."""
        answer = service.predict(body.flights, body.return_features, request.headers.get("x-request-id"), caller)
        return Response(json.dumps(answer), media_type="application/json")

    @app.post("/v1/events", response_model=EventsResponse, tags=["event feed"], responses={**write_denials, **unavailable})
    def events(body: EventBatch, _: str = Depends(writer)) -> EventsResponse:
        """The real-time feed: schedules, departures, cancellations and weather observations, in
        batches; an event id already applied is ignored."""
        return service.ingest(body.events)

    @app.get("/v1/status", tags=["management"], responses=write_denials)
    def status(_: str = Depends(writer)) -> dict:
        """Loaded models, rollout, guardrail figures, online store, prediction log and registry."""
        return service.status()

    @app.get("/v2", response_model=ServerMetadataResponse, tags=["inference protocol"], responses=denials)
    async def server_metadata(_: str = Depends(reader)) -> ServerMetadataResponse:
        return ServerMetadataResponse(name="ml_assets", version=package_version("ml_assets"), extensions=["binary_tensor_data"])

    @app.get("/v2/health/live", response_model=ServerLiveResponse, tags=["inference protocol"])
    async def live() -> ServerLiveResponse:
        return ServerLiveResponse(live=True)

    @app.get("/v2/health/ready", response_model=ServerReadyResponse, tags=["inference protocol"],
             responses={503: {"model": ServerReadyResponse, "description": "not ready, with the reason"}})  # fmt: skip
    def ready():
        is_ready, reason = service.readiness()
        body = ServerReadyResponse(ready=is_ready, reason=reason)
        return body if is_ready else JSONResponse(body.model_dump() | {"error": reason}, status_code=503)

    def served_champion(model_name: str, version: str | None):
        """The champion when it is the model (and version) asked for; else a 404 (503 without one)."""
        if model_name != settings.model_name:
            raise _NotFound(f"model {model_name!r} not found: this service serves {settings.model_name!r}")
        champion = service.deployment.routing.champion
        if champion is None:
            raise ServiceUnavailable(f"no champion model is loaded ({service.deployment.last_error or 'waiting for the registry'})")
        if version is not None and version != champion.version:
            raise _NotFound(f"version {version!r} of {model_name!r} is not served: the champion is version {champion.version!r}")
        return champion

    model_responses = {404: {"description": "unknown model name or version"}, **unavailable}

    def model_metadata(model_name: str, version: str | None = None) -> ModelMetadataResponse:
        champion = served_champion(model_name, version)
        return ModelMetadataResponse(
            name=model_name, versions=[champion.version], platform=champion.kind, inputs=model_inputs(), outputs=model_outputs(),
        )  # fmt: skip

    def model_ready(model_name: str, version: str | None = None):
        try:
            served_champion(model_name, version)
        except ServiceUnavailable as error:
            body = ModelReadyResponse(name=model_name, ready=False).model_dump() | {"error": str(error)}
            return JSONResponse(body, status_code=503)
        return ModelReadyResponse(name=model_name, ready=True)

    async def infer(request: Request, model_name: str, version: str | None, caller: str) -> Response:
        body = await request.body()
        refuse_encoded(request)
        content_type = request.headers.get("content-type")
        if not accepted_content_type(content_type):
            raise HTTPException(415, f"Content-Type must be application/json, {BINARY_CONTENT_TYPE} or none (given: {excerpt(content_type)!r})")

        def score() -> Response:  # in the threadpool: decoding and scoring are CPU work
            served_champion(model_name, version)
            rows = read_request(body, request.headers.get(HEADER_LENGTH), settings.max_batch)
            content, response_headers = encode_response(service.infer(rows, caller), rows.binary_output)
            return Response(content, headers=response_headers)

        return await run_in_threadpool(score)

    metadata_options = dict(response_model=ModelMetadataResponse, response_model_exclude_none=True, tags=["inference protocol"],
                            responses={**denials, **model_responses})  # fmt: skip
    ready_options = dict(response_model=ModelReadyResponse, tags=["inference protocol"],
                         responses={**model_responses, 503: {"model": ModelReadyResponse, "description": "no champion loaded"}})  # fmt: skip
    infer_options = dict(response_model=InferenceResponse, tags=["inference protocol"], openapi_extra=_INFER_BODY,
                         responses={400: {"description": "the tensors do not describe feature rows"}, **denials, **model_responses})  # fmt: skip

    @app.get("/v2/models/{model_name}", **metadata_options)
    def metadata(model_name: str, _: str = Depends(reader)) -> ModelMetadataResponse:
        """Inputs: one tensor per feature column; NaN (or null in JSON) is a missing FP64 value."""
        return model_metadata(model_name)

    @app.get("/v2/models/{model_name}/versions/{version}", **metadata_options)
    def version_metadata(model_name: str, version: str, _: str = Depends(reader)) -> ModelMetadataResponse:
        return model_metadata(model_name, version)

    @app.get("/v2/models/{model_name}/ready", **ready_options)
    def ready_model(model_name: str):
        return model_ready(model_name)

    @app.get("/v2/models/{model_name}/versions/{version}/ready", **ready_options)
    def ready_version(model_name: str, version: str):
        return model_ready(model_name, version)

    @app.post("/v2/models/{model_name}/infer", **infer_options)
    async def infer_model(model_name: str, request: Request, caller: str = Depends(reader)) -> Response:
        """Full feature vectors (one named tensor per `flight_features` column), scored by the champion:
        JSON tensors (flat or nested) or the binary tensor data extension (Inference-Header-Content-Length)."""
        return await infer(request, model_name, None, caller)

    @app.post("/v2/models/{model_name}/versions/{version}/infer", **infer_options)
    async def infer_version(model_name: str, version: str, request: Request, caller: str = Depends(reader)) -> Response:
        return await infer(request, model_name, version, caller)

    @app.get("/metrics", tags=["monitoring"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.openapi = lambda: _with_inference_request(FastAPI.openapi(app))
    return app


# The infer routes read their body themselves (JSON or the binary extension); the docs still show its schema.
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
    }
}


def _with_inference_request(document: dict) -> dict:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if "InferenceRequest" not in schemas:
        schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas["InferenceRequest"] = schema
    return document


class _NotFound(Exception):
    pass
