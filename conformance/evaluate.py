"""Judge one exchange against a case's expectation: status, body form, schema, named checks.

The order matters: a wrong status makes the body checks meaningless, so they are not run; a body that
is not JSON is reported once, with the evidence, instead of once per check. Every broken rule is a Finding
with the strength of its rule (conformance/findings.py), which decides whether the case failed or warned.
"""

from __future__ import annotations

from typing import Any

from conformance import concurrency
from conformance.casemodel import Case, ClientCase, Status, Step, status_text
from conformance.cases import CaseItem
from conformance.checks import CHECKS, CheckContext
from conformance.client import Exchange
from conformance.findings import Finding, ordered, strength_of
from conformance.schemas import validate
from conformance.vocabulary import surfaces

EXCERPT = 300


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def status_matches(expected: Status, actual: int) -> bool:
    if isinstance(expected, int):
        return actual == expected
    if isinstance(expected, tuple):
        return actual in expected
    return {"2xx": 200 <= actual < 300, "4xx": 400 <= actual < 500}[expected]


def error_forms(item: CaseItem[Case]) -> tuple[str, ...]:
    return surfaces()[item.case.route_surface].error_schemas


def evaluate_steps(item: CaseItem[Case], exchange: Exchange) -> list[Finding]:
    """Every step of a case is judged by its own expect; a multi-step case prefixes each message with its step.
    The findings come most specific first (findings.ordered)."""
    if concurrency.is_concurrent(item.case):  # one request sent N times at once: each answer judged
        return concurrency.evaluate(item, exchange)
    steps, sent = item.case.steps, [*exchange.previous, exchange]
    if len(steps) == 1:
        return ordered(evaluate(item, exchange))
    found = [Finding(f.check, f.strength, f"[step {i}] {f.message}")
             for i, ex in enumerate(sent) for f in evaluate(item, ex, steps[i])]
    if exchange.unsent and not any(f.strength == "must" for f in found):
        found.append(Finding("multi_turn", strength_of(item.case, "multi_turn"),
                             f"[step {len(sent) - 1}] {exchange.unsent}"))
    return ordered(found)


def evaluate(item: CaseItem[Case], exchange: Exchange, step: Step | None = None,
             group: list[Exchange] | None = None) -> list[Finding]:
    """One answer against its step's expect; `group`: the answers sent at once with it (a concurrent case)."""
    case = item.case
    step = step or case.steps[-1]
    expect = step.expect

    def finding(check: str, message: str) -> Finding:
        return Finding(check, strength_of(case, check), message)

    failure = exchange.transport_failure
    if failure is not None:
        # the answer broke the contract before any rule about its body applies (conformance/bounds.py: a
        # redirect, a body over the cap, not UTF-8, nested too deep; a 5xx on every attempt): that alone is judged
        return [finding(failure.check, failure.message)]
    if not status_matches(expect.status, exchange.status):
        return [finding("status", f"HTTP {exchange.status}, expected {status_text(expect.status)}; "
                                  f"body: {excerpt(exchange.text)!r}")]
    found: list[Finding] = []
    preferred = expect.preferred_status
    if preferred and not status_matches(preferred.status, exchange.status):
        found.append(Finding("status", preferred.strength, f"HTTP {exchange.status}, {status_text(preferred.status)} "
                                                           f"preferred; body: {excerpt(exchange.text)!r}"))

    schema = expect.schema
    if step.stream:
        found += [finding(check, message) for check, message in _stream_body(exchange, schema)]
    elif exchange.json_error is not None and not expect.error_body:  # an error body: error_body says
        return [*found, finding("json", f"the {exchange.status} body is not JSON ({exchange.json_error}): "
                                        f"{excerpt(exchange.text)!r}")]
    elif schema:
        found += [finding("schema", f"{schema} {e}") for e in validate(schema, exchange.json)]

    if expect.error_body:
        found += [finding(check, message) for check, message in _error_body(item, exchange)]

    ctx = CheckContext(exchange.request_body, exchange, item.model, group=group or [])
    for name in expect.checks:
        ctx.args = expect.args_of(name)
        found += [finding(name, message) for message in run_check(name, ctx)]
    return found


def evaluate_client(item: CaseItem[ClientCase], performed: Any) -> list[Finding]:
    """An official client's verdict as findings: the client broke on the answer (`performed.failure`), a helper
    process judged its result already (`performed.judged`), or its result is judged here; each failure is a
    `client` finding of the case's own strength (findings.CASE_RULES: the client's call is the case itself)."""
    from conformance.clientcases import judge

    if performed.failure:  # a transport rule keeps its strength on every lane (a 300 MB answer is no answer)
        rule = performed.failure_rule
        return [Finding(rule, strength_of(item.case, rule), performed.failure.replace(f"[{rule}] ", "", 1))]
    failures = performed.judged if performed.judged is not None else judge(item, performed.result)
    return [Finding("client", strength_of(item.case, "client"), message) for message in failures]


def run_check(name: str, ctx: CheckContext) -> list[str]:
    """A check's messages; a check that raises on an answer it did not foresee is a finding with the error,
    never a traceback that loses the case's verdict and evidence."""
    messages: list[str] = []
    try:
        for message in CHECKS[name].fn(ctx):
            messages.append(message)
    except Exception as exc:
        messages.append(f"raised {type(exc).__name__}: {excerpt(str(exc))}")
    return messages


def _stream_body(exchange: Exchange, schema: str | None) -> list[tuple[str, str]]:
    if exchange.events is None:
        return []  # stream_is_sse says so, with the content type as evidence
    problems = []
    for event in exchange.payloads:
        if not event.is_json:
            data = exchange.events[event.index].data
            problems.append(("json", f"event[{event.index}] data is not JSON ({event.error}): {excerpt(data)!r}"))
        elif schema:
            problems += [("schema", f"{schema} event[{event.index}] {e}") for e in validate(schema, event.payload)]
    return problems


def _error_body(item: CaseItem[Case], exchange: Exchange) -> list[tuple[str, str]]:
    """Two rules: the error body is JSON (error_body), and it has a form clients of the surface read
    (error_form, one of the surface's error_schemas)."""
    if exchange.json_error is not None:
        return [("error_body", f"the {exchange.status} body is not JSON ({exchange.json_error}): "
                               f"{excerpt(exchange.text)!r}")]
    forms = error_forms(item)
    problems = {form: validate(form, exchange.json) for form in forms}
    if any(not errors for errors in problems.values()):
        return []
    detail = "; ".join(f"{form}: {errors[0]}" for form, errors in problems.items())
    return [("error_form", f"the error body has none of the accepted forms ({detail}): {excerpt(exchange.text)!r}")]
