"""The HTTP client the suite talks to a target with: auth schemes, bounded exchanges, bounded retries.

Every exchange is bounded (conformance/bounds.py): `--timeout` is the deadline of one attempt, connect, headers
and the whole body (every socket read is clamped to what is left of it, so an endless stream or a body sent a
byte a second ends on time); decoded body bytes are capped; nothing is followed or decompressed by httpx.

Retries exist so that a verdict is about the gateway, not the network: 429/502/503/504, resets and timeouts are
retried with exponential backoff and jitter, bounded in attempts and in a budget for the whole request
(RetryPolicy.deadline_s, 1.5 x --timeout; pacer waits and Retry-After waits count in it). A Retry-After is
honoured up to RetryPolicy.max_retry_after_s; a longer or unparseable one ends the retries at once. When they
run out the case is an infrastructure *error*, never a conformance failure. Two answers are not retried as
infrastructure: 501 (the gateway says it does not implement the request; judged at once) and a 5xx other than
502/503/504 that comes back on every attempt to a valid request: that is the gateway's failure
(`transport.server-error`, with the statuses, attempts and body as evidence).
"""

from __future__ import annotations

import base64
import email.utils
import importlib
import json
import math
import os
import random
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from typing import Any

import httpx

from conformance.bounds import (
    ACCEPT_ENCODING,
    Bound,
    DeadlineExceeded,
    Limits,
    OverOwnCap,
    TransportFailure,
    clamp,
    inspect,
    loads,
    read_body,
    status_runs,
)
from conformance.config import Target, merge_headers
from conformance.errors import InfrastructureError
from conformance.pacing import Pacer
from conformance.redact import map_strings
from conformance.sse import SSEEvent, StreamPayload, parse_sse, stream_payloads
from conformance.timing import Timing

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
NOT_IMPLEMENTED = 501  # never retried: the gateway says it does not implement the request
WRONG_TOKEN = "conformance-wrong-token-0000"
BUDGET_FACTOR = 1.5  # a request with its retries gets 1.5 x --timeout


@dataclass
class RetryPolicy:
    attempts: int = 5
    deadline_s: float = 90.0  # every attempt of one request, pacer and backoff waits included
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0

    @classmethod
    def for_timeout(cls, timeout_s: float, attempts: int) -> RetryPolicy:
        return cls(attempts=max(1, attempts), deadline_s=BUDGET_FACTOR * timeout_s)

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * 2**attempt) * random.uniform(0.5, 1.0)

    def plan(self, attempt: int, retry_after: str | None, remaining: float) -> float | str:
        """The wait before attempt `attempt + 1`, or why there is none (the retries end at once)."""
        if attempt + 1 >= self.attempts:
            return f"{self.attempts} attempt(s) allowed (--retries)"
        if retry_after is not None and retry_after.strip():
            seconds = parse_retry_after(retry_after)
            if seconds is None:
                return f"Retry-After {retry_after[:60]!r} is neither seconds nor an HTTP date: not retried"
            if seconds > self.max_retry_after_s:
                return (f"Retry-After {retry_after[:60]!r} asks for {seconds:.0f} s, beyond the "
                        f"{self.max_retry_after_s:g} s the suite waits: not retried")
            delay = seconds
        else:
            delay = self.backoff(attempt)
        if delay >= remaining:
            return (f"a next attempt (after {delay:.1f} s) would end beyond the request's {self.deadline_s:g} s "
                    f"budget (1.5 x --timeout)")
        return delay


    def repeated_server_error(self, statuses: list[int], made: int) -> str | None:
        """The finding when every attempt made got a 5xx other than 501-504 (one attempt counts only when one was
        all --retries allowed), else None: that is the gateway's failure, not infrastructure."""
        if not statuses or len(statuses) != made or (made == 1 and self.attempts > 1):
            return None
        return (f"HTTP {', '.join(map(str, statuses))} on each of the {made} attempt(s) to a valid request: a 5xx "
                f"other than 502/503/504 that repeats is the gateway's failure, not infrastructure")

    @staticmethod
    def why_stopped(stop: str) -> str:
        """What ended the retries, for the message (nothing when they simply ran out)."""
        return f"; {stop}" if stop and not stop.endswith("(--retries)") else ""


def parse_retry_after(value: str) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date (RFC 9110 10.2.3); None when it is neither."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if parsed is None:
            return None
        if parsed.tzinfo is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(repr=False)
class Exchange:
    """One request and its answer, as sent and received (redaction happens when it is written out).

    `transport_failure`: the answer broke the contract at the transport level (conformance/bounds.py: a redirect,
    a body over the cap, not UTF-8, nested too deep, a 5xx on every attempt); evaluate.py judges it first."""

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
    _json: Any = None
    json_error: str | None = None
    # multi-step cases: the exchanges of the earlier steps, and why a later step could not be sent
    previous: list[Exchange] = field(default_factory=list)
    unsent: str | None = None
    transport_failure: TransportFailure | None = None
    timing: Timing | None = None  # the answered attempt in time (conformance/timing.py)
    nonce: str | None = None  # a concurrent case's request: the nonce it asked to be repeated (concurrency.py)

    def __post_init__(self) -> None:
        if self.stream and "text/event-stream" in self.response_headers.get("content-type", ""):
            self.events = parse_sse(self.text)
        try:
            self._json = loads(self.text) if self.text.strip() else None
            if self._json is None:
                self.json_error = "empty body"
        except (ValueError, RecursionError) as exc:
            self.json_error = str(exc)

    def __repr__(self) -> str:
        # never headers or bodies: a traceback (pytest -vvvv, --showlocals) must not print credentials
        failure = f", {self.transport_failure.check}" if self.transport_failure else ""
        return (f"Exchange({self.method} {self.url} -> HTTP {self.status}, {len(self.text)} characters, "
                f"attempts={self.attempts}{failure})")

    @property
    def json(self) -> Any:
        return self._json

    @cached_property
    def payloads(self) -> list[StreamPayload]:
        """Every event of a stream but [DONE], with its JSON payload or its parse error: the one reading of a
        stream that the judge, every check, the usage reader and the shape normaliser share ([] if no stream)."""
        return stream_payloads(self.events) if self.events is not None else []

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


def excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[:limit] + "..."


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


class GatedBody:
    """A request body that waits for its gate before it is sent (the first time only: a retry goes at once).
    httpx sends the headers, then iterates the body: a gate that waits until every concurrent request got this
    far makes them all be in flight at the gateway together."""

    def __init__(self, data: bytes, gate: Callable[[], None]) -> None:
        self.data = data
        self._gate: Callable[[], None] | None = gate
        self.released_at: float | None = None  # when the gate opened: the request's time starts there

    def __iter__(self) -> Iterator[bytes]:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate()
            self.released_at = time.monotonic()
        yield self.data


# --- the bounded transport (shared with the httpx-based SDK lanes) ----------------------------------------


def _clamped(timeout: float | None, error: type[Exception]) -> float | None:
    try:
        return clamp(timeout)
    except DeadlineExceeded as exc:
        raise error(str(exc)) from None


@cache
def _deadline_backend(core: Any) -> type:
    """A network backend of the httpcore module `core` (httpcore, or httpcore2 under httpx2, the fork some SDKs
    moved to) whose connections clamp every read and write to the active bound's deadline: httpx's own timeouts
    limit each read, not the exchange, so a body sent a byte a second would never end."""

    class DeadlineStream(core.NetworkStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _clamped(timeout, core.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _clamped(timeout, core.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                        _clamped(timeout, core.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class DeadlineBackend(core.NetworkBackend):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Iterable[Any] | None = None) -> Any:
            return DeadlineStream(self._inner.connect_tcp(host, port, _clamped(timeout, core.ConnectTimeout),
                                                          local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Iterable[Any] | None = None) -> Any:
            return DeadlineStream(self._inner.connect_unix_socket(path, _clamped(timeout, core.ConnectTimeout),
                                                                  socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return DeadlineBackend


_SSL_CONTEXTS: dict[tuple[str, bool, str | None, str | None], Any] = {}


def ssl_context(http: Any, verify: bool) -> Any:
    """The TLS context `http` (httpx, or httpx2) would make for `verify`, made once per process and shared by
    every transport: making one loads the whole CA bundle (tens of ms of CPU), and an official client's case
    builds a client, so a transport, each time. Keyed by the variables that name another bundle, which `http`
    reads when it makes one; a context is safe to share between threads and connections."""
    key = (http.__name__, verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _SSL_CONTEXTS.get(key)
    if context is None:
        context = _SSL_CONTEXTS.setdefault(key, http.create_ssl_context(verify=verify))
    return context


# The idle connections a transport keeps. A process performs one case at a time (JUDGE_THREADS of the self-tests'
# harness: two), and a case of N concurrent requests opens N connections at once: with httpcore's default (20 kept
# alive) they all stay, and every later request walks and polls each of them twice to find one to use. Any number
# may be open at once (a concurrent case of any N, the read-ahead's lanes).
KEEP_ALIVE_CONNECTIONS = 4


def http_transport(target: Target, http: Any = httpx) -> Any:
    """The HTTP transport of `http` (httpx, or httpx2) with every socket operation clamped to the active bound
    (conformance/bounds.py)."""
    # headers and body go out as separate writes; without NODELAY each request can wait ~40 ms on the peer's
    # delayed ACK
    transport = http.HTTPTransport(verify=ssl_context(http, target.verify_tls),
                                   socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                   limits=http.Limits(max_connections=None,
                                                      max_keepalive_connections=KEEP_ALIVE_CONNECTIONS))
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):  # pragma: no cover - an httpcore we do not know
        raise RuntimeError(f"{http.__name__} changed: cannot bound the exchanges (no connection pool backend)")
    core = importlib.import_module(http.__name__.replace("httpx", "httpcore", 1))
    pool._network_backend = _deadline_backend(core)(pool._network_backend)
    return transport


@dataclass
class Answer:
    """One complete, bounded answer: decoded text, and the transport rule it broke (None: none)."""

    status: int
    headers: dict[str, str]
    text: str
    data: bytes
    failure: TransportFailure | None = None
    over_cap: bool = False
    timing: Timing | None = None


class Unanswered(Exception):
    """No answer within the bound (timeout, reset, a body over the user's own cap): infrastructure."""


def judged_status(status: int) -> bool:
    """Whether an answer's body is judged (a 429 or 5xx is retried or judged by its status alone)."""
    return status not in TRANSIENT_STATUS and status < 500


def read_answer(status: int, headers: Mapping[str, str], chunks: Iterable[bytes], bound: Bound, url: str) -> Answer:
    """The one reading path of every lane: bounded body, capped decoding, then the transport rules. An answer
    that is retried or judged by its status only (429, 5xx) is read up to the cap and kept as evidence."""
    heads = {k.lower(): v for k, v in headers.items()}
    bound.observe(status, heads)
    judged = judged_status(status)
    try:
        body = read_body(chunks, heads, bound)
    except OverOwnCap as exc:
        if judged:
            bound.problem = str(exc)
            raise Unanswered(str(exc)) from None
        return Answer(status, heads, "", b"", over_cap=True)
    text, failure = inspect(status, heads, body.data, url)
    failure = body.failure or failure
    if not judged and not 300 <= status < 400:
        failure = None  # a 503's odd body is no finding: the status decides
    return Answer(status, heads, text, body.data, failure, body.over_cap)


def timeout_cause(bound: Bound, exc: Exception) -> str:
    if bound.timed_out or bound.remaining() <= 0.05:
        bound.timed_out = True
        cause = bound.timeout_text()
    else:
        cause = f"timeout ({type(exc).__name__})"
    bound.problem = bound.problem or cause
    return cause


class GatewayClient:
    """One connection pool per process, reused by every case."""

    def __init__(self, target: Target, retry: RetryPolicy | None = None, pacer: Pacer | None = None) -> None:
        self.target = target
        self.limits = Limits.of(target)
        self.retry = retry or RetryPolicy.for_timeout(target.timeout, 5)
        self.pacer = pacer or Pacer()
        self._http = httpx.Client(
            verify=ssl_context(httpx, target.verify_tls),
            timeout=httpx.Timeout(target.timeout),
            follow_redirects=False,  # the transport's own limits apply (http_transport), not a Client's
            transport=http_transport(target),
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

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                content: bytes | Iterable[bytes] | None = None, bound: Bound | None = None,
                read_body: bool = True) -> Answer:
        """One bounded attempt, no retry: the answer (with the transport rule it broke, if any), or Unanswered.
        `read_body=False` returns once the status line and headers are in (a reachability probe). The answer is
        timed from the moment the request is handed to the connection (conformance/timing.py)."""
        bound = bound or Bound(self.limits)
        heads = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
        with bound.active():
            try:
                timeout = httpx.Timeout(clamp(None))
                started = time.monotonic()
                with self._http.stream(method, url, content=content, headers=heads, timeout=timeout) as response:
                    if not read_body:
                        bound.observe(response.status_code, response.headers)
                        return Answer(response.status_code, dict(response.headers.items()), "", b"")
                    answer = read_answer(response.status_code, response.headers, response.iter_raw(), bound, url)
                    # a gated body's wait for the other concurrent requests is not the gateway's time
                    started = getattr(content, "released_at", None) or started
                    answer.timing = Timing.measure(started, bound.headers_at, bound.arrivals)
                    return answer
            except (httpx.TimeoutException, DeadlineExceeded) as exc:
                raise Unanswered(timeout_cause(bound, exc)) from None
            except httpx.TransportError as exc:
                bound.problem = f"connection error ({type(exc).__name__}: {exc})"
                raise Unanswered(bound.problem) from None

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
        surface: str | None = None,
        gate: Callable[[], None] | None = None,
    ) -> Exchange:
        """Send a case's (or a preflight probe's) request. The target profile's headers for the surface go on
        every request, under the credential and the case's own headers (which name what the case tests).
        `gate`: called before the body of the first attempt is sent, after its headers (concurrency.py holds
        concurrent requests there until every one of them is in flight)."""
        url = self.url_for(route, model)
        framing = {"Accept": "text/event-stream" if stream else "application/json"}
        if method != "GET":
            framing["Content-Type"] = "application/json"
        profile = self.target.headers_for(surface) if surface else self.target.headers
        request_headers = merge_headers(framing, profile, self.auth_headers(auth), headers or {})
        content = raw_body.encode() if raw_body is not None else None if method == "GET" else encode_json(body)
        payload: bytes | GatedBody | None = content
        if gate is not None and content is not None:
            request_headers["Content-Length"] = str(len(content))  # not chunked: the body is one known length
            payload = GatedBody(content, gate)
        started = time.monotonic()
        budget_end = started + self.retry.deadline_s
        last_cause, stop = "no attempt made", ""
        made = 0
        server_errors: list[Answer] = []  # a 5xx other than 501-504 on every attempt: the gateway's failure
        answered: list[int] = []  # statuses of the attempts that got an answer (a later timeout keeps them)

        def exchange(answer: Answer, failure: TransportFailure | None = None) -> Exchange:
            return Exchange(method, url, request_headers, body, raw_body, answer.status, answer.headers,
                            answer.text, stream, made, time.monotonic() - started,
                            transport_failure=failure or answer.failure, timing=answer.timing)

        for attempt in range(self.retry.attempts):
            if not self.pacer.wait_turn(max_wait=budget_end - time.monotonic()):
                stop = (f"the run's learnt request rate has no turn for it within the request's "
                        f"{self.retry.deadline_s:g} s budget")
                break
            made = attempt + 1
            bound = Bound(self.limits, deadline=min(time.monotonic() + self.limits.timeout_s, budget_end))
            retry_after = None
            try:
                answer = self.request(method, url, headers=request_headers, content=payload, bound=bound)
            except Unanswered as exc:
                last_cause = str(exc)
                server_errors.clear()
            else:
                status = answer.status
                answered.append(status)
                if status == 429:
                    self.pacer.throttled()
                elif status < 500:
                    self.pacer.succeeded()
                server_error = retry_server_errors and status >= 500 and status not in TRANSIENT_STATUS \
                    and status != NOT_IMPLEMENTED
                if status not in TRANSIENT_STATUS and not server_error:
                    return exchange(answer)
                if server_error and len(server_errors) == attempt:
                    server_errors.append(answer)
                else:
                    server_errors.clear()
                last_cause = f"HTTP {status}: {excerpt(answer.text)}"
                retry_after = answer.headers.get("retry-after")
            plan = self.retry.plan(attempt, retry_after, budget_end - time.monotonic())
            if isinstance(plan, str):
                stop = plan
                break
            time.sleep(plan)
        repeated = self.retry.repeated_server_error([a.status for a in server_errors], made)
        if repeated:
            return exchange(server_errors[-1], TransportFailure(
                "transport.server-error", f"{repeated}; body: {excerpt(server_errors[-1].text, 300)!r}"))
        earlier = f" (earlier answers: {status_runs(answered)})" if answered and not last_cause.startswith("HTTP") \
            else ""
        raise InfrastructureError(
            f"{url}: no answer after {made} attempt(s) in {time.monotonic() - started:.1f}s; "
            f"last cause: {last_cause}{earlier}{self.retry.why_stopped(stop)}"
        )
