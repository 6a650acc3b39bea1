"""Who may call what, and how often.

With ML_ASSETS_API_TOKEN set, every route but the health routes, `/metrics` and the docs needs a
bearer token: the read routes (predictions, inference, model metadata) take ML_ASSETS_READ_TOKEN
or ML_ASSETS_API_TOKEN, the write routes (the event feed, status) only ML_ASSETS_API_TOKEN. A
missing or wrong token is a 401, the read token on a write route a 403.

Each caller (the token's role and the client's address; the address alone without tokens) has a
token bucket of ML_ASSETS_RATE_LIMIT_BURST requests refilled at ML_ASSETS_RATE_LIMIT requests per
second (unset: no limit); an empty bucket is a 429 with Retry-After. Buckets are per process.
The caller id goes to the prediction log; it never contains the token.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass

from fastapi import Request

READ, WRITE = "read", "write"
MAX_CALLERS = 10_000  # buckets kept; beyond, the full ones are forgotten (all, when none is full)


class AccessDenied(Exception):
    """A request refused before it reaches the service: 401, 403 or 429."""

    def __init__(self, status: int, message: str, headers: dict[str, str]):
        super().__init__(message)
        self.status, self.headers = status, headers


@dataclass(frozen=True)
class AccessSettings:
    write_token: str | None = None
    read_token: str | None = None
    rate_per_s: float | None = None  # per caller; None: no limit
    burst: int = 1

    def __post_init__(self):
        if self.read_token and not self.write_token:
            raise ValueError("ML_ASSETS_READ_TOKEN is set without ML_ASSETS_API_TOKEN: the write routes would be open")
        if self.read_token and self.read_token == self.write_token:
            raise ValueError("ML_ASSETS_READ_TOKEN equals ML_ASSETS_API_TOKEN: the read token would also write")
        if self.rate_per_s is not None and not (self.rate_per_s > 0 and self.burst >= 1):
            raise ValueError(f"rate limit {self.rate_per_s}/s with burst {self.burst}: both must be positive")


class RateLimiter:
    """A token bucket per caller."""

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate_per_s, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, caller: str) -> float:
        """0 when the caller may go now (a token is taken), else the seconds until it may."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                if len(self._buckets) > MAX_CALLERS:
                    self._forget_full(now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            c: (t, a) for c, (t, a) in self._buckets.items() if t + (now - a) * self.rate < self.burst
        }
        if len(self._buckets) > MAX_CALLERS:
            self._buckets.clear()


class AccessControl:
    def __init__(self, settings: AccessSettings):
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_per_s, settings.burst) if settings.rate_per_s else None

    def caller(self, request: Request, needs: str) -> str:
        """The caller id of a request allowed `needs` (READ or WRITE); raises AccessDenied."""
        role = self._role(request.headers.get("authorization"), needs)
        address = request.client.host if request.client else "unknown"
        caller = f"{role}@{address}"
        if self.limiter is not None and (wait := self.limiter.wait_s(caller)):
            raise AccessDenied(429, f"rate limit of {self.settings.rate_per_s:g} requests/s reached",
                               {"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
        return caller

    def _role(self, authorization: str | None, needs: str) -> str:
        write, read = self.settings.write_token, self.settings.read_token
        if write is None:
            return "anonymous"
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip().encode() if scheme.lower() == "bearer" else b""
        if hmac.compare_digest(given, write.encode()):
            return "write-token"
        if read is not None and hmac.compare_digest(given, read.encode()):
            if needs == WRITE:
                raise AccessDenied(403, "this route needs the write token (ML_ASSETS_API_TOKEN)", {})
            return "read-token"
        raise AccessDenied(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
