"""Error bodies, bounded: `{"detail": ...}` on the `/v1` routes (FastAPI's shape: a message, or
the list of problems with `loc`, `msg`, `type`) and `{"error": "..."}` on the Open Inference
Protocol routes (`/v2...`), as its clients decode them. A value is quoted only as a short excerpt."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ml_assets.serving.request_body import excerpt, shortened

MAX_PROBLEMS = 20  # listed per response; the rest are counted
INFERENCE_PROTOCOL_PREFIX = "/v2"


def is_inference_protocol(request: Request) -> bool:
    path = request.url.path
    return path == INFERENCE_PROTOCOL_PREFIX or path.startswith(INFERENCE_PROTOCOL_PREFIX + "/")


def problem(request: Request, status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """A one-message error in the shape the route's protocol uses."""
    key = "error" if is_inference_protocol(request) else "detail"
    return JSONResponse({key: message}, status_code=status, headers=headers)


def problems(request: Request, status: int, listed: list[dict]) -> JSONResponse:
    """Several problems (`loc`, `msg`, `type`, optionally `input`): a list on /v1, one message on /v2."""
    shown = listed[:MAX_PROBLEMS]
    more = len(listed) - len(shown)
    if is_inference_protocol(request):
        text = "; ".join(f"{_where(p['loc'])}: {p['msg']}" for p in shown)
        return JSONResponse({"error": text + (f"; and {more} more" if more else "")}, status_code=status)
    body: dict = {"detail": shown}
    if more:
        body["more_problems"] = more
    return JSONResponse(body, status_code=status)


def validation_problem(error: dict, body: object) -> dict:
    """One of pydantic's or FastAPI's errors, with its message naming the rule and no long input."""
    kind, loc = error["type"], [p if isinstance(p, int) else excerpt(str(p)) for p in error["loc"]]
    if kind == "json_invalid":
        position = loc[-1] if isinstance(loc[-1], int) else 0
        text = body if isinstance(body, str) else ""
        line, column = text.count("\n", 0, position) + 1, position - text.rfind("\n", 0, position)
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return {"loc": loc, "msg": f"invalid JSON at line {line} column {column} (char {position}): {reason}", "type": kind}
    found = {"loc": loc, "msg": shortened(error["msg"]), "type": kind}
    if kind not in ("missing", "extra_forbidden") and "input" in error:
        found["input"] = excerpt(error["input"])
    return found


def _where(loc: list) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts).replace(".[", "[") or "body"


def install(app: FastAPI) -> None:
    """The handlers for FastAPI's own errors (validation, unknown routes, methods)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return problems(request, 422, [validation_problem(e, error.body) for e in error.errors()])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return problem(request, error.status_code, str(error.detail), getattr(error, "headers", None))
