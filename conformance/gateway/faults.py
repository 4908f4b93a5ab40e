"""Fault modes of the reference gateway: latency, a rate limit, and a fraction of transport faults.

They exist for the self-tests and the benchmark: the suite must end a run with a verdict about the gateway,
not about the network. Every fault here is an *infrastructure* fault (503, a reset connection, a stream cut
mid-body at the transport level), so a correct suite retries it and never reports a conformance failure.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATS_PATH = "/_reference/stats"


class TransportFault(Exception):
    """Raised mid-response so the server drops the connection: the client sees a reset/incomplete body."""


@dataclass
class FaultConfig:
    latency_s: float = 0.0
    rate_limit: float | None = None  # requests per second; beyond it, 429 with Retry-After
    fault_rate: float = 0.0  # fraction of requests that get a 503, a reset or a cut stream
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.latency_s or self.rate_limit or self.fault_rate)


@dataclass
class Stats:
    requests: int = 0
    throttled: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"503": 0, "reset": 0, "cut": 0})


class TokenBucket:
    """R tokens per second, a burst of at most R: the usual shape of a gateway rate limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


async def _json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


class FaultInjector:
    """ASGI middleware in front of the reference gateway."""

    def __init__(self, app: ASGIApp, config: FaultConfig) -> None:
        self.app = app
        self.config = config
        self.stats = Stats()
        self.bucket = TokenBucket(config.rate_limit) if config.rate_limit else None
        self.random = random.Random(config.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            await _json(send, 200, {"requests": self.stats.requests, "throttled": self.stats.throttled,
                                    "faults": self.stats.faults}, [])
            return
        self.stats.requests += 1
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)
        if self.bucket is not None:
            wait = self.bucket.take()
            if wait:
                self.stats.throttled += 1
                await _json(send, 429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "Rate limit exceeded."},
                            [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
                return
        if self.config.fault_rate and self.random.random() < self.config.fault_rate:
            kind = self.random.choice(("503", "reset", "cut"))
            self.stats.faults[kind] += 1
            if kind == "503":
                await _json(send, 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "Try again."},
                            [(b"retry-after", b"0")])
                return
            await self.app(scope, receive, _cutting_send(send, keep_bodies=0 if kind == "reset" else 2))
            return
        await self.app(scope, receive, send)


def _cutting_send(send: Send, keep_bodies: int) -> Send:
    """Pass the response start and `keep_bodies` body messages, then drop the connection."""
    sent = 0

    async def cut(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            await send({**message, "headers": headers})  # chunked, so a cut is visible as an incomplete body
            return
        if sent >= keep_bodies:
            raise TransportFault("injected fault: connection dropped mid-response")
        sent += 1
        await send({**message, "more_body": True})

    return cut
