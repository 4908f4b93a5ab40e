"""The check registry: named semantic checks that case data refers to, one implementation per rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.client import Exchange


@dataclass
class CheckContext:
    """What a check may look at: the request as sent, the answer, and the case's arguments for the check."""

    request_body: Any
    exchange: Exchange
    model: Any
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> Any:
        return self.exchange.json

    def data_events(self) -> list[Any]:
        """JSON payloads of a stream's events, the [DONE] terminator excluded (framing has its own checks)."""
        return [e.json() for e in self.exchange.events or [] if not e.is_done]


CheckFn = Callable[[CheckContext], Iterable[str]]


@dataclass(frozen=True)
class Check:
    name: str
    spec: str
    fn: CheckFn


CHECKS: dict[str, Check] = {}


def check(name: str, spec: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check; `spec` names the passage it enforces, or says 'ours:' and why it is stricter."""

    def register(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = Check(name, spec, fn)
        return fn

    return register


def get(obj: Any, *path: str | int) -> Any:
    """Walk a JSON value; None where the path does not exist (schemas report absence, checks skip it)."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or key >= len(obj):
                return None
            obj = obj[key]
        else:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(key)
    return obj


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
