"""Judge one exchange against a case's expectation: status, body form, schema, named checks.

The order matters: a wrong status makes the body checks meaningless, so they are not run; a body that
is not JSON fails once, with the evidence, instead of once per check.
"""

from __future__ import annotations

from typing import Any

from conformance.cases import CaseItem, Step
from conformance.checks import CHECKS, CheckContext
from conformance.client import Exchange
from conformance.config import surfaces
from conformance.schemas import validate

EXCERPT = 300


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def status_matches(expected: Any, actual: int) -> bool:
    if isinstance(expected, int):
        return actual == expected
    if isinstance(expected, list):
        return actual in expected
    return {"2xx": 200 <= actual < 300, "4xx": 400 <= actual < 500}[expected]


def error_forms(item: CaseItem) -> list[str]:
    return surfaces()[item.case.route_surface].get("error_schemas", ["error.databricks"])


def evaluate_steps(item: CaseItem, exchange: Exchange) -> list[str]:
    """Every step of a case is judged by its own expect; a multi-step case prefixes each message with its step."""
    steps, sent = item.case.steps, [*exchange.previous, exchange]
    if len(steps) == 1:
        return evaluate(item, exchange)
    failures = [f"[step {i}] {m}" for i, ex in enumerate(sent) for m in evaluate(item, ex, steps[i])]
    if exchange.unsent and not failures:
        failures.append(f"[step {len(sent) - 1}] {exchange.unsent}")
    return failures


def evaluate(item: CaseItem, exchange: Exchange, step: Step | None = None) -> list[str]:
    step = step or item.case.steps[-1]
    expect = step.expect
    if exchange.transport_failure is not None:
        # the answer broke the contract before any rule about its body applies (conformance/bounds.py: a
        # redirect, a body over the cap, not UTF-8, nested too deep, a 5xx on every attempt): that alone is judged
        return [exchange.transport_failure.finding()]
    if not status_matches(expect["status"], exchange.status):
        return [f"[status] HTTP {exchange.status}, expected {expect['status']}; body: {excerpt(exchange.text)!r}"]

    failures: list[str] = []
    schema = expect.get("schema")
    if step.stream:
        failures += _stream_body(exchange, schema)
    elif exchange.json_error is not None:
        return [f"[json] the {exchange.status} body is not JSON ({exchange.json_error}): {excerpt(exchange.text)!r}"]
    elif schema:
        failures += [f"[schema {schema}] {e}" for e in validate(schema, exchange.json)]

    if expect.get("error_body"):
        failures += _error_body(item, exchange)

    ctx = CheckContext(exchange.request_body, exchange, item.model)
    for name in expect.get("checks", []):
        ctx.args = expect.get("check_args", {}).get(name, {})
        failures += [f"[{name}] {message}" for message in CHECKS[name].fn(ctx)]
    return failures


def _stream_body(exchange: Exchange, schema: str | None) -> list[str]:
    if exchange.events is None:
        return []  # stream_is_sse says so, with the content type as evidence
    failures = []
    for index, event in enumerate(exchange.events):
        if event.is_done:
            continue
        try:
            payload = event.json()
        except ValueError as exc:
            failures.append(f"[json] event[{index}] data is not JSON ({exc}): {excerpt(event.data)!r}")
            continue
        if schema:
            failures += [f"[schema {schema}] event[{index}] {e}" for e in validate(schema, payload)]
    return failures


def _error_body(item: CaseItem, exchange: Exchange) -> list[str]:
    if exchange.json_error is not None:
        return [f"[error_body] the {exchange.status} body is not JSON ({exchange.json_error}): "
                f"{excerpt(exchange.text)!r}"]
    forms = error_forms(item)
    problems = {form: validate(form, exchange.json) for form in forms}
    if any(not errors for errors in problems.values()):
        return []
    detail = "; ".join(f"{form}: {errors[0]}" for form, errors in problems.items())
    return [f"[error_body] the error body has none of the accepted forms ({detail}): {excerpt(exchange.text)!r}"]
