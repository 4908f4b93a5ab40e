"""The Databricks SDK for Python, as 001 uses it: WorkspaceClient().serving_endpoints.query(name=...,
messages=[ChatMessage(...)], max_tokens=128).

The SDK brings `requests` and a retry loop of its own, and accepts no HTTP client: it is bounded through two
doors it does offer or cannot avoid. Its Config takes a clock, and the SDK sleeps between retries through it:
`_DeadlineClock` refuses a sleep beyond the attempt's deadline or the suite's Retry-After cap (the SDK would
sleep whatever a 429 or 503 says). And every request of `requests` goes through HTTPAdapter.send: while a case's
bound is active in the calling thread (never otherwise) `_bounded_send` reads the body itself, within the
deadline and the cap, applies the transport rules (a redirect is never followed), and hands the SDK the
decoded body. That includes the SDK's own GET of /.well-known/databricks-config when the client is built.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conformance.bounds import ACCEPT_ENCODING, Bound, DeadlineExceeded, Limits, TransportRuleBroken, current
from conformance.clients.base import (
    ClientContext,
    ClientFailure,
    ClientInfrastructure,
    build_value,
    cached,
    wait_turn,
)

SDK_ROUTE = "/serving-endpoints/{model}/invocations"
MAX_SDK_SLEEP_S = 30.0  # the suite's Retry-After cap (client.RetryPolicy.max_retry_after_s)


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    import requests
    from databricks.sdk import WorkspaceClient, errors
    from databricks.sdk.service import serving

    if ctx.target.route("invocations") != SDK_ROUTE:
        raise ClientFailure(f"the SDK posts to {SDK_ROUTE}; the target routes invocations elsewhere")
    if ctx.target.headers_for("invocations"):
        raise ClientFailure("the target needs headers of its own on invocations, which the documented "
                            "WorkspaceClient example does not send")
    # the SDK looks for /.well-known/databricks-config first and only warns when it is absent
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    _bound_requests()
    from databricks.sdk.core import Config

    def make() -> WorkspaceClient:
        # explicit host and token: ~/.databrickscfg and DATABRICKS_* never redirect the example elsewhere. The
        # SDK's discovery GET is best effort (it falls back on any failure): bounded, its findings not judged.
        with Bound(Limits.of(ctx.target)).active(), _discovery():
            clock: Any = _DeadlineClock()  # duck-typed as the SDK's Clock (time and sleep)
            config = Config(host=ctx.target.url, token=ctx.target.token, auth_type="pat", clock=clock,
                            retry_timeout_seconds=max(1, int(ctx.target.timeout)),
                            http_timeout_seconds=max(1, int(ctx.target.timeout)))
        return WorkspaceClient(config=config)

    client = cached(("databricks", ctx.target.url), make)
    kwargs = build_value(spec.get("kwargs", {}), serving, ctx.model)
    wait_turn(ctx)
    try:
        return client.serving_endpoints.query(**kwargs)
    except (errors.TooManyRequests, errors.TemporarilyUnavailable, errors.InternalError,
            errors.DeadlineExceeded, requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:  # the body cut short of its HTTP framing
        raise ClientInfrastructure(f"{type(exc).__name__}: {exc}") from None
    except errors.DatabricksError as exc:
        raise ClientFailure(f"{type(exc).__name__}: {exc}") from None


class _DeadlineClock:
    """The SDK's clock: real time, and sleeps refused past the deadline or the suite's Retry-After cap."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        bound = current()
        if bound is not None:
            after = bound.problem or (f"HTTP {bound.status}" if bound.status else "an error")
            if bound.problem and bound.statuses:  # a timeout after answers: say what they were
                after = f"{bound.answers_seen()}, then {bound.problem}"
            what = f"after {after}, the Databricks SDK's retry asked to wait {seconds:.1f} s"
            if bound.retry_after is not None:
                what += f" (Retry-After {bound.retry_after!r})"
            if seconds > MAX_SDK_SLEEP_S:
                bound.problem = f"{what}, beyond the {MAX_SDK_SLEEP_S:g} s the suite waits: not retried"
                raise DeadlineExceeded(bound.problem)
            if seconds >= bound.remaining():
                bound.timed_out = True
                bound.problem = f"{what}, beyond the deadline of the exchange"
                raise DeadlineExceeded(bound.problem)
        time.sleep(seconds)


_ORIGINAL_SEND: Any = None
_local = threading.local()


@contextmanager
def _discovery() -> Iterator[None]:
    """While the SDK builds its client: its discovery GET retries with a clock of its own (a real sleep of
    whatever a Retry-After says), so here any answer but a success, and any error, ends it at once (the SDK
    falls back to the explicit configuration)."""
    _local.discovery = True
    try:
        yield
    finally:
        _local.discovery = False


class _DiscoveryEnded(Exception):
    """Not a requests exception: the SDK does not retry it."""


def _bound_requests() -> None:
    """Route requests' HTTPAdapter.send through _bounded_send (once per process; inert outside a case's bound)."""
    global _ORIGINAL_SEND
    import requests.adapters

    if _ORIGINAL_SEND is None:
        _ORIGINAL_SEND = requests.adapters.HTTPAdapter.send
        requests.adapters.HTTPAdapter.send = _bounded_send  # type: ignore[method-assign,assignment]


def _bounded_send(adapter: Any, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
                  cert: Any = None, proxies: Any = None) -> Any:
    import requests
    import urllib3.exceptions

    bound = current()
    if bound is None:
        return _ORIGINAL_SEND(adapter, request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                              proxies=proxies)
    from conformance.client import Unanswered, read_answer

    left = bound.remaining()
    if left <= 0:  # not requests.Timeout: the SDK would retry that, sleeping on a clock of its own
        bound.timed_out = True
        raise DeadlineExceeded(bound.timeout_after_answers())
    request.headers["Accept-Encoding"] = ACCEPT_ENCODING
    discovery = getattr(_local, "discovery", False)
    try:
        response = _ORIGINAL_SEND(adapter, request, stream=True, timeout=(left, left), verify=verify, cert=cert,
                                  proxies=proxies)
    except requests.RequestException as exc:
        bound.problem = f"connection error ({type(exc).__name__}: {str(exc)[:200]})"
        if discovery or bound.remaining() <= 0.05:
            raise _DiscoveryEnded(f"{type(exc).__name__}: {exc}") if discovery else DeadlineExceeded(
                bound.timeout_after_answers()) from None
        raise
    if discovery and response.status_code >= 300:
        response.close()
        raise _DiscoveryEnded(f"HTTP {response.status_code}")
    try:
        answer = read_answer(response.status_code, response.headers, _raw_chunks(response.raw, bound), bound,
                             request.url)
    except DeadlineExceeded as exc:
        bound.problem = str(exc)
        response.close()
        raise requests.Timeout(str(exc)) from None
    except Unanswered as exc:
        response.close()
        raise requests.ConnectionError(str(exc)) from None
    except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:  # a reset mid-body: as requests says it
        response.close()
        bound.problem = f"connection error mid-body ({type(exc).__name__}: {str(exc)[:200]})"
        raise requests.ConnectionError(bound.problem) from None
    response.close()
    if answer.failure is not None:
        bound.failure = answer.failure
        raise TransportRuleBroken(answer.failure.finding())
    for name in ("Content-Encoding", "Transfer-Encoding"):
        response.headers.pop(name, None)
    response.headers["Content-Length"] = str(len(answer.data))
    response._content = answer.data  # what requests' .content, .json() and .iter_content() read
    response._content_consumed = True
    return response


def _raw_chunks(raw: Any, bound: Bound) -> Iterator[bytes]:
    """The undecoded body, each read clamped to what is left of the deadline (read1: a read returns what has
    arrived, where read(n) would wait for n bytes that come one a second)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    while True:
        left = bound.remaining()
        if left <= 0:
            bound.timed_out = True
            raise DeadlineExceeded(bound.timeout_text())
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = raw.read1(65536, decode_content=False) if hasattr(raw, "read1") else raw.read(
                65536, decode_content=False)
        except Exception as exc:
            if bound.remaining() <= 0.05:
                bound.timed_out = True
                raise DeadlineExceeded(bound.timeout_text()) from None
            raise exc
        if not chunk:
            return
        yield chunk
