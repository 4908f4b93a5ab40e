"""The check registry: named semantic checks that case data refers to, one implementation per rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

from conformance.client import Exchange
from conformance.sse import StreamPayload


@dataclass
class CheckContext:
    """What a check may look at: the request as sent, the answer, and the case's arguments for the check."""

    request_body: Any
    exchange: Exchange
    model: Any
    args: dict[str, Any] = field(default_factory=dict)
    group: list[Exchange] = field(default_factory=list)  # a concurrent case: every answer sent at once, in order

    @property
    def body(self) -> Any:
        return self.exchange.json

    def json_events(self) -> list[StreamPayload]:
        """The stream's events that carry JSON, [DONE] excluded, each with its index among all events. An event
        that is not JSON is the judge's finding, reported once with its text; the checks judge the rest."""
        return [p for p in self.exchange.payloads if p.is_json]


CheckFn = Callable[[CheckContext], Iterable[str]]


@dataclass(frozen=True)
class Check:
    name: str
    spec: str
    fn: CheckFn
    strength: str  # the default strength of its findings: must | should | advisory (a case may override it)
    reason: str  # why that strength, in the spec's own words ("..." quotes them verbatim)


CHECKS: dict[str, Check] = {}
STRENGTHS = ("must", "should", "advisory")


def check(name: str, spec: str, *, strength: str, reason: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check. `spec` names the passage it enforces, or says 'ours:' and why it is stricter;
    `strength` is how strongly the spec's words hold the rule (must: a documented example or a stated rule;
    should: described or implied; advisory: ours), `reason` says why."""
    if strength not in STRENGTHS:
        raise ValueError(f"check {name!r}: strength {strength!r} is not one of {STRENGTHS}")
    if spec.startswith("ours") and strength != "advisory":
        raise ValueError(f"check {name!r}: a rule of our own (spec 'ours: ...') is advisory")

    def register(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = Check(name, spec, fn, strength, reason)
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


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def total_is_sum(usage: Any, total_key: str, part_keys: tuple[str, ...]) -> Iterator[str]:
    """The one "usage total is the sum of its parts" rule, in each surface's field names."""
    if not isinstance(usage, dict):
        yield "$.usage: missing"
        return
    parts, total = [usage.get(k) for k in part_keys], usage.get(total_key)
    if all(is_int(v) for v in (*parts, total)) and total != sum(cast(int, v) for v in parts):
        terms = " + ".join(f"{k} {v}" for k, v in zip(part_keys, parts, strict=True))
        yield f"$.usage.{total_key}: {total} != {terms}"


def within_limit(check_name: str, limit: Any, limit_name: str, count: Any, count_at: str) -> Iterator[str]:
    """The one "the answer stays within the requested token limit" rule every surface states in its own names:
    a case without the limit in its request is a case error; an absent count is the schema's business."""
    if not is_int(limit):
        yield f"case error: {check_name} needs {limit_name} in the request"
    elif is_int(count) and count > limit:
        yield f"{count_at}: {count} > {limit_name} {limit}"
