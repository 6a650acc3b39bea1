"""Request bodies read strictly: UTF-8 JSON (RFC 8259) without `NaN` or `Infinity`, with the
position of the first fault, and error bodies that quote at most a short excerpt of a value.

`StrictJsonRoute` is the route class of the API: a route with a declared JSON body refuses a
missing or non-JSON Content-Type (415) and parses with `parse_json` instead of Python's lenient
`json.loads` (which takes `NaN`, `Infinity` and UTF-16); FastAPI then validates the result.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from email.message import Message
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

EXCERPT_CHARS = 60
MESSAGE_CHARS = 300
# A JSON string (matched to be skipped), or what is looked for outside strings: Python's
# non-standard constants, brackets.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_OR_CONSTANT = re.compile(_STRING + r"|(-?Infinity|NaN)", re.DOTALL)
_STRING_OR_BRACKET = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
MAX_DEPTH = 100  # where a body nested too deeply for the parser is said to go wrong


class JsonBodyError(json.JSONDecodeError):
    """A body that is not RFC 8259 JSON in UTF-8; `pos` is where the fault is."""


def parse_json(body: bytes, *, constants: Callable[[str], Any] | None = None) -> Any:
    """The JSON value of a UTF-8 body. `NaN`, `Infinity` and `-Infinity` are refused unless
    `constants` maps them to values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonBodyError(
            f"the body is not UTF-8: byte {body[error.start]:#04x} at offset {error.start}",
            body[: error.start].decode("utf-8"), error.start,
        ) from None  # fmt: skip
    try:
        return json.loads(text, parse_constant=constants or (lambda name: _refuse_constant(name, text)))
    except RecursionError:
        raise JsonBodyError(f"arrays and objects nested deeper than {MAX_DEPTH} levels", text, _too_deep(text)) from None
    except json.JSONDecodeError:
        raise
    except ValueError as error:  # an integer of more digits than Python converts
        long_number = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
        raise JsonBodyError(f"a number of too many digits ({error})", text, long_number.start() if long_number else 0) from None


def _refuse_constant(name: str, text: str):
    at = next(m.start(1) for m in _STRING_OR_CONSTANT.finditer(text) if m.group(1))
    raise JsonBodyError(f"{name} is not JSON: numbers must be finite", text, at)


def _too_deep(text: str) -> int:
    """Where the nesting first passes MAX_DEPTH (strings skipped)."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(token.group(), 0)
        if depth > MAX_DEPTH:
            return token.start()
    return 0


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def refuse_encoded(request: Request) -> None:
    """A compressed body is refused by name (it would otherwise read as bytes that are not UTF-8)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise HTTPException(415, f"Content-Encoding {excerpt(encoding)!r} is not supported: send the body uncompressed")


def excerpt(value: Any) -> Any:
    """A short, JSON-safe stand-in for an offending value."""
    if isinstance(value, bool) or value is None or isinstance(value, int) and abs(value) < 10**15:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, bytes)):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return text if len(text) <= EXCERPT_CHARS else f"{text[:EXCERPT_CHARS]}... ({len(text)} characters)"
    if isinstance(value, (list, tuple, dict)):
        return f"{type(value).__name__} of {len(value)} items"
    return excerpt(str(value))


def shortened(message: str) -> str:
    """A message that may quote a value (pydantic's do), cut to a bounded length."""
    return message if len(message) <= MESSAGE_CHARS else f"{message[:MESSAGE_CHARS]}..."


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose declared JSON body must come as `application/json` and parse strictly."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_json(request: Request) -> Response:
            request = _StrictJsonRequest(request.scope, request.receive)
            await request.body()  # read whole first, so that an early answer leaves the connection usable
            refuse_encoded(request)
            content_type = request.headers.get("content-type")
            if not is_json(content_type):
                given = f"{excerpt(content_type)!r}" if content_type else "none"
                raise HTTPException(415, f"Content-Type must be application/json (given: {given})")
            return await handler(request)

        return strict_json
