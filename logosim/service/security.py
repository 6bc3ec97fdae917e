"""The gate in front of ``/v1/``: API keys, rate limits keyed on the key, body caps.

It runs before any body is read, so an unauthenticated or over-limit client never makes the
service parse 10 MB. Rate limits are keyed on the API key, not the socket address: behind a
proxy every client shares one address. Without configured keys the service is meant for
one machine: it answers loopback clients only (and ``logosim api`` binds 127.0.0.1).
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from logosim.service.config import LOOPBACK

Scope = dict[str, Any]
BODY_TOO_LARGE = "logosim.body_too_large"  # set in the scope when the body passed the cap


class TokenBuckets:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_minute``."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = per_minute / 60.0, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 when allowed (and charged), else the seconds until ``cost`` tokens are there."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _reply(send: Callable, status: int, reason: str, detail: str, headers=()) -> None:
    body = json.dumps({"reason": reason, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Pure ASGI middleware: keys → rate limit → content type → body size."""

    def __init__(
        self,
        app: Callable,
        *,
        keys: frozenset[str],
        local_only: bool,
        searches: TokenBuckets,
        reads: TokenBuckets,
        max_body_bytes: int,
    ) -> None:
        self.app, self.keys, self.local_only = app, keys, local_only
        self.searches, self.reads, self.max_body = searches, reads, max_body_bytes

    def _key_matches(self, given: str) -> bool:
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in self.keys)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("", 0))[0]
        if self.local_only and client not in LOOPBACK:
            return await _reply(
                send, 403, "local_only", "no API key configured: loopback clients only"
            )
        path = scope["path"]
        if not path.startswith("/v1/"):
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-api-key")
        if self.keys:
            if not given:
                return await _reply(send, 401, "missing_api_key", "send the X-API-Key header")
            if not self._key_matches(given):
                return await _reply(send, 401, "invalid_api_key", "unknown API key")
        bucket = f"key:{given}" if self.keys else f"addr:{client}"
        limiter = self.searches if path.startswith("/v1/search") else self.reads
        wait = limiter.take(bucket)
        if wait:
            return await _reply(
                send,
                429,
                "rate_limited",
                f"too many requests for this API key; retry in {wait:.1f}s",
                [(b"retry-after", str(math.ceil(wait)).encode())],
            )
        if scope["method"] == "POST":
            ctype = (_header(scope, b"content-type") or "").lower()
            if not ctype.startswith("multipart/form-data"):
                return await _reply(
                    send,
                    415,
                    "unsupported_media_type",
                    f"send multipart/form-data, not {ctype or 'no content type'}",
                )
            length = _header(scope, b"content-length")
            if length and length.isdigit() and int(length) > self.max_body:
                return await _reply(
                    send, 413, "body_too_large", f"{length} bytes > limit {self.max_body}"
                )
            receive = self._capped(scope, receive)
        return await self.app(scope, receive, send)

    def _capped(self, scope: Scope, receive: Callable) -> Callable:
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                scope[BODY_TOO_LARGE] = True
                raise ValueError(f"request body over {self.max_body} bytes")
            return message

        return counted
