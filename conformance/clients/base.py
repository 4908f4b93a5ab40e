"""What every official-client runner shares: building typed arguments, reading the documented fields,
and telling an infrastructure problem from a client that breaks on the gateway's answer."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

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
    bring different HTTP stacks) is infrastructure; anything else means the client broke on the answer."""
    if any(type(e).__name__ in TRANSPORT_ERROR_NAMES for e in (exc, exc.__cause__, exc.__context__) if e):
        return ClientInfrastructure(f"{type(exc).__name__}: {exc}")
    return ClientFailure(f"{name} {call} raised {type(exc).__name__}: {exc}")


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


def paced_http_client(ctx: ClientContext) -> httpx.Client:
    """An httpx client for SDKs that accept one: the run's pacing applies to SDK traffic as well."""

    def before(request: httpx.Request) -> None:
        ctx.pacer.wait_turn()

    def after(response: httpx.Response) -> None:
        if response.status_code == 429:
            ctx.pacer.throttled()
        elif response.status_code < 500:
            ctx.pacer.succeeded()

    return httpx.Client(timeout=ctx.target.timeout, verify=ctx.target.verify_tls,
                        event_hooks={"request": [before], "response": [after]})


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

    @property
    def feature(self) -> str:
        return f"client:{self.name}"

    def unavailable(self) -> str | None:
        if package_version(self.distribution) is None:
            return f"the {self.distribution} package is not installed (pip install '.[clients]')"
        return None


def import_module(name: str) -> Any:
    return importlib.import_module(name)
