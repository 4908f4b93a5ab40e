"""What every official-client runner shares: building typed arguments, reading the documented fields,
and telling an infrastructure problem from a client that breaks on the gateway's answer."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx

from conformance.bounds import (
    ACCEPT_ENCODING,
    DECODABLE,
    Bound,
    DeadlineExceeded,
    Limits,
    TransportRuleBroken,
    current,
)
from conformance.config import Target
from conformance.pacing import Pacer


class ClientFailure(Exception):
    """The client raised or a field the example reads is missing: a conformance failure."""


class ClientInfrastructure(Exception):
    """The client could not reach an answer (connection, timeout, 429, 5xx): an infrastructure error."""


@dataclass
class ClientContext:
    target: Target
    pacer: Pacer
    model: str | None
    tokens_seen: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The target's base URL (a client case runs only against a target with one)."""
        assert self.target.url is not None
        return self.target.url


TRANSPORT_ERROR_NAMES = ("ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
                         "TimeoutException", "RemoteProtocolError", "ReadError", "WriteError",
                         "ConnectionError", "ConnectionResetError", "Timeout",
                         # a body cut short of its HTTP framing (requests, urllib3, http.client)
                         "ChunkedEncodingError", "ProtocolError", "IncompleteRead")


def classify_unexpected(name: str, call: str, exc: Exception) -> Exception:
    """An exception the client's own error types do not cover: a transport problem (by its class name, as SDKs
    bring different HTTP stacks), a deadline, or a client's own retry timing out (the Databricks SDK raises
    TimeoutError after retrying 503s) is infrastructure; anything else means the client broke on the answer."""
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e]
    if isinstance(exc, TimeoutError | DeadlineExceeded) or any(type(e).__name__ in TRANSPORT_ERROR_NAMES
                                                                 for e in chain):
        return ClientInfrastructure(f"{type(exc).__name__}: {exc}")
    return ClientFailure(f"{name} {call} raised {type(exc).__name__}: {exc}")


@cache  # importlib.metadata walks every installed distribution; a run asks once per client case
def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def build_value(value: Any, module: Any, model: str | None) -> Any:
    """YAML -> call arguments. `{"$type": "Content", ...}` builds module.Content(**...) (the typed objects the
    documented examples construct), `{"$enum": "ChatMessageRole.USER"}` an enum member, and `{model}` the
    served model name; `{media:FILE:FORM}` a media fixture (conformance/media.py)."""
    if isinstance(value, str):
        from conformance import media

        return media.expand(value.replace("{model}", model or ""))
    if isinstance(value, list):
        return [build_value(v, module, model) for v in value]
    if isinstance(value, dict):
        if "$enum" in value:
            owner, member = value["$enum"].split(".")
            return getattr(getattr(module, owner), member)
        built = {k: build_value(v, module, model) for k, v in value.items() if k != "$type"}
        if "$type" in value:
            return getattr(module, value["$type"])(**built)
        return built
    return value


_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"([^\"]+)\"\]")


def read_path(obj: Any, path: str) -> Any:
    """Evaluate an access expression exactly as the example writes it: `choices[0].message.content`,
    `content[0]["summary"][0]["text"]`. Attribute steps use getattr, subscripts use [] (as Python would)."""
    position = 0
    for match in _PATH_TOKEN.finditer(path):
        if match.start() != position:
            raise ValueError(f"bad access path {path!r}")
        position = match.end()
        attr, index, key = match.groups()
        if attr is not None:
            obj = getattr(obj, attr)
        elif index is not None:
            obj = obj[int(index)]
        else:
            obj = obj[key]
    if position != len(path):
        raise ValueError(f"bad access path {path!r}")
    return obj


_CACHE: dict[tuple[Any, ...], Any] = {}


def cached(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """One SDK client (and connection pool) per process and base URL, reused by every case: building one
    costs a TLS context and often more than the request itself."""
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


@cache
def _sdk_transport(http: Any) -> type:
    """The transport of every SDK lane built on `http` (httpx, or httpx2, the fork the anthropic and openai SDKs
    moved to): the run's pacing per HTTP request, the active bound's deadline on every socket operation, no
    redirect, no decompression by the library, and the transport rules of conformance/bounds.py. The body is read
    here, within the bound, before the SDK sees it: a broken rule is recorded on the bound and raised into the
    SDK, which never parses that answer; the runner judges what was recorded, whatever the SDK makes of it."""
    from conformance.client import Unanswered, http_transport, read_answer, timeout_cause

    class SDKTransport(http.BaseTransport):  # type: ignore[misc, name-defined]
        def __init__(self, target: Target, pacer: Pacer) -> None:
            self._inner = http_transport(target, http)
            self._target = target
            self._pacer = pacer

        def handle_request(self, request: Any) -> Any:
            bound = current() or Bound(Limits.of(self._target))  # a call outside a case is bounded all the same
            with bound.active():
                return self._handle(request, bound)

        def _handle(self, request: Any, bound: Bound) -> Any:
            if not self._pacer.wait_turn(max_wait=bound.remaining()):
                bound.problem = "the run's learnt request rate has no turn for this request before its deadline"
                raise http.PoolTimeout(bound.problem, request=request)
            offered = request.headers.get("accept-encoding", "")
            if any(c.split(";")[0].strip().lower() not in DECODABLE for c in offered.split(",") if c.strip()):
                request.headers["accept-encoding"] = ACCEPT_ENCODING  # only what is decoded here, within the cap
            try:
                response = self._inner.handle_request(request)
                try:
                    answer = read_answer(response.status_code, response.headers, response.stream, bound,
                                         str(request.url))
                finally:
                    response.close()
            except (http.TimeoutException, DeadlineExceeded) as exc:
                raise http.ReadTimeout(timeout_cause(bound, exc), request=request) from None
            except Unanswered as exc:
                raise http.ReadError(str(exc), request=request) from None
            if answer.status == 429:
                self._pacer.throttled()
            elif answer.status < 500:
                self._pacer.succeeded()
            if answer.failure is not None:
                bound.failure = answer.failure
                raise TransportRuleBroken(answer.failure.finding())
            headers = [(k, v) for k, v in response.headers.multi_items()
                       if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
            headers.append(("content-length", str(len(answer.data))))
            extensions = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
            return http.Response(answer.status, headers=headers, content=answer.data, request=request,
                                 extensions=extensions)

        def close(self) -> None:
            self._inner.close()

    return SDKTransport


def sdk_http(sdk: str) -> Any:
    """The HTTP library an SDK's client takes: httpx2 where its base client uses that fork, else httpx."""
    base = importlib.import_module(f"{sdk}._base_client")
    return getattr(base, "httpx2", None) or httpx


def bounded_http_client(ctx: ClientContext, http: Any = httpx) -> Any:
    """An HTTP client for the SDKs that accept one: bounded and paced (_sdk_transport), following no redirect."""
    return http.Client(transport=_sdk_transport(http)(ctx.target, ctx.pacer), timeout=ctx.target.timeout,
                       follow_redirects=False)


def wait_turn(ctx: ClientContext) -> None:
    """A client call's turn of the run's rate (for lanes with an HTTP stack of their own), within the deadline."""
    bound = current()
    if not ctx.pacer.wait_turn(max_wait=bound.remaining() if bound else None):
        if bound is not None:
            bound.problem = "the run's learnt request rate has no turn for this call before its deadline"
        raise ClientInfrastructure("the run's learnt request rate has no turn for this call before its deadline")


def route_prefix(target: Target, surface: str, suffix: str) -> str | None:
    """The base URL an SDK needs: the target's route for the surface without the part the SDK appends."""
    route = target.route(surface)
    if route is None or not route.endswith(suffix):
        return None
    return route[: -len(suffix)]


@dataclass(frozen=True)
class Runner:
    """One official client: how to import it, build it, classify its exceptions."""

    name: str
    distribution: str
    invoke: Callable[[ClientContext, dict[str, Any]], Any]
    modules: tuple[str, ...] = ()  # what the client imports (warm: before any request's deadline runs)

    def warm(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    @property
    def feature(self) -> str:
        return f"client:{self.name}"

    def unavailable(self) -> str | None:
        if package_version(self.distribution) is None:
            return f"the {self.distribution} package is not installed (pip install '.[clients]')"
        return None


def import_module(name: str) -> Any:
    return importlib.import_module(name)
