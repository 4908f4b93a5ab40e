"""The HTTP client the suite talks to a target with: auth schemes, SSE reading, bounded retries.

Retries exist so that a verdict is about the gateway, not the network: 429/502/503/504, resets and
timeouts are retried with exponential backoff and jitter (Retry-After honoured), bounded in attempts and
total time; when they run out the case is an infrastructure *error*, never a conformance failure.
"""

from __future__ import annotations

import base64
import email.utils
import json
import random
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from conformance.config import Target
from conformance.errors import InfrastructureError
from conformance.pacing import Pacer
from conformance.redact import map_strings
from conformance.sse import SSEEvent, parse_sse

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
WRONG_TOKEN = "conformance-wrong-token-0000"


@dataclass
class RetryPolicy:
    attempts: int = 5
    deadline_s: float = 90.0
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        backoff = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)


@dataclass
class Exchange:
    """One request and its answer, as sent and received (redaction happens when it is written out)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: Any
    raw_request: str | None
    status: int
    response_headers: dict[str, str]
    text: str
    stream: bool
    attempts: int = 1
    elapsed_s: float = 0.0
    events: list[SSEEvent] | None = None
    _json: Any = field(default=None, repr=False)
    json_error: str | None = None
    # multi-step cases: the exchanges of the earlier steps, and why a later step could not be sent
    previous: list[Exchange] = field(default_factory=list, repr=False)
    unsent: str | None = None

    def __post_init__(self) -> None:
        if self.stream and "text/event-stream" in self.response_headers.get("content-type", ""):
            self.events = parse_sse(self.text)
        try:
            self._json = json.loads(self.text) if self.text.strip() else None
            if self._json is None:
                self.json_error = "empty body"
        except ValueError as exc:
            self.json_error = str(exc)

    @property
    def json(self) -> Any:
        return self._json

    @property
    def content_type(self) -> str:
        return self.response_headers.get("content-type", "")

    def lightened(self) -> Exchange:
        """This exchange with long request strings (base64 images of megabytes) cut, as evidence keeps them:
        what crosses from a helper process to pytest. The checks read request parameters, never image data."""
        self.request_body = shorten(self.request_body, LIGHT_LIMIT)
        for earlier in self.previous:
            earlier.lightened()
        return self


LIGHT_LIMIT = 1 << 16


def shorten(value: Any, limit: int) -> Any:
    """Strings longer than `limit` cut to their start and their length: a report need not carry megabytes."""
    return map_strings(value, lambda s: f"{s[:200]}... ({len(s)} characters)" if len(s) > limit else s)


# --- request bodies -------------------------------------------------------------------------------------------
_MARK = f"conformance-long-{secrets.token_hex(8)}-"
_MARKED = re.compile(f'"{_MARK}(\\d+)"')


def encode_json(body: Any) -> bytes:
    """A request body's JSON. Long strings are encoded once per process and spliced in: the byte-limit cases
    send the same megabytes of base64 to every model, and scanning 14 MB for characters to escape took longer
    than sending it."""
    long: list[str] = []

    def swap(text: str) -> str:
        if len(text) <= LIGHT_LIMIT and _MARK not in text:  # a string holding the mark is swapped too
            return text
        long.append(text)
        return f"{_MARK}{len(long) - 1}"

    skeleton = map_strings(body, swap)
    if not long:
        return json.dumps(body).encode()
    pieces = _MARKED.split(json.dumps(skeleton))
    return b"".join(_encoded(long[int(p)]) if n % 2 else p.encode() for n, p in enumerate(pieces))


@lru_cache(maxsize=8)
def _encoded(text: str) -> bytes:
    return json.dumps(text).encode()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class GatewayClient:
    """One connection pool per process, reused by every case."""

    def __init__(self, target: Target, retry: RetryPolicy | None = None, pacer: Pacer | None = None) -> None:
        self.target = target
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer()
        self._http = httpx.Client(
            verify=target.verify_tls,
            timeout=httpx.Timeout(target.timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            follow_redirects=False,
            # headers and body go out as separate writes; without NODELAY each request can wait ~40 ms on
            # the peer's delayed ACK
            transport=httpx.HTTPTransport(
                verify=target.verify_tls, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            ),
        )

    def close(self) -> None:
        self._http.close()

    def auth_headers(self, mode: str) -> dict[str, str]:
        token = self.target.token or ""
        scheme = self.target.auth if mode == "default" else mode
        if scheme == "none" or (mode == "default" and not token):
            return {}  # a local target run without a token: send no credentials rather than an empty one
        if scheme == "wrong-token":
            scheme, token = self.target.auth, WRONG_TOKEN
        user = "token"
        if scheme == "basic-wrong-user":
            scheme, user = "basic", "notoken"
        if scheme == "basic":
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}
        return {self.target.auth_header: f"Bearer {token}"}

    def url_for(self, route: str, model: str | None) -> str:
        assert self.target.url is not None
        return self.target.url + route.replace("{model}", model or "")

    def send(
        self,
        route: str,
        *,
        model: str | None,
        body: Any = None,
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
        auth: str = "default",
        stream: bool = False,
        retry_server_errors: bool = True,
        method: str = "POST",
    ) -> Exchange:
        url = self.url_for(route, model)
        request_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if method == "GET":
            del request_headers["Content-Type"]
        if stream:
            request_headers["Accept"] = "text/event-stream"
        request_headers.update(self.auth_headers(auth))
        request_headers.update(headers or {})
        content = raw_body.encode() if raw_body is not None else None if method == "GET" else encode_json(body)
        started = time.monotonic()
        last_cause = "no attempt made"
        for attempt in range(self.retry.attempts):
            self.pacer.wait_turn()
            try:
                with self._http.stream(method, url, content=content, headers=request_headers) as response:
                    text = response.read().decode("utf-8", errors="replace")
                status, response_headers = response.status_code, dict(response.headers)
            except httpx.TimeoutException as exc:
                last_cause, retry_after = f"timeout ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                last_cause, retry_after = f"connection error ({type(exc).__name__}: {exc})", None
            else:
                if status == 429:
                    self.pacer.throttled()
                elif status < 500:
                    self.pacer.succeeded()
                transient = status in TRANSIENT_STATUS or (status >= 500 and retry_server_errors)
                if not transient:
                    return Exchange(method, url, request_headers, body, raw_body, status, response_headers,
                                    text, stream, attempt + 1, time.monotonic() - started)
                last_cause = f"HTTP {status}: {text[:200]}"
                retry_after = parse_retry_after(response_headers.get("retry-after"))
            if attempt + 1 == self.retry.attempts:
                break
            delay = self.retry.delay(attempt, retry_after)
            if time.monotonic() - started + delay > self.retry.deadline_s:
                break
            time.sleep(delay)
        raise InfrastructureError(
            f"{url}: no answer after {attempt + 1} attempt(s) in {time.monotonic() - started:.1f}s; "
            f"last cause: {last_cause}"
        )
