"""Concurrent cases: the same request sent N times at once, each with a nonce of its own, and judged together.

A gateway under load may hand one request the answer of another (a shared buffer, a response cache or request
coalescing keyed on too little, a batch whose results are assigned to the wrong requests). A case with
`concurrent:` sends its request N times: N = `concurrent.requests`, else `--concurrency`, at most MAX_REQUESTS and
at least 2 (isolation cannot be judged one request at a time, so even a run of one request after another sends
two here). Each request has a fresh random nonce in place of `{nonce}` in its body, and every body is held until
all N requests' headers are out (client.GatedBody and a barrier): the gateway has all N in flight at once. Each
answer is judged by the case's expect, as a step is ([request i] before its messages), with the whole group in the
check context (CheckContext.group): an answer must carry its own request's nonce and no other's, and no two may
share an id (conformance/checks/behaviour.py). The answers travel as one exchange with the others in `previous`,
in request order, as a multi-step case's do. Nonces are new on every run, so no cache of an earlier run can
answer them.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance.casemodel import Case
from conformance.cases import CaseItem
from conformance.client import Exchange
from conformance.errors import InfrastructureError
from conformance.findings import Finding, ordered
from conformance.redact import REDACTOR, map_strings
from conformance.usage import usage_of

NONCE = "{nonce}"
NONCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: a model that re-spells it cannot confuse them
NONCE_LENGTH = 10
MAX_REQUESTS = 16  # the connection pool holds 32; a helper runs other cases beside a concurrent one
GATE_S = 5.0  # the most a request waits at the gate for the others (a slow pacer turn, a full pool)


def is_concurrent(case: Any) -> bool:
    return getattr(case, "concurrent", None) is not None  # a Case with `concurrent:` (a ClientCase never is)


def new_nonce() -> str:
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH))


MIN_REQUESTS = 2


def requests_of(item: CaseItem[Case], concurrency: int) -> int:
    """How many requests the case sends at once: its own number, else the run's --concurrency (2 at least)."""
    own = item.case.concurrent.requests if item.case.concurrent is not None else None
    return max(MIN_REQUESTS, min(int(own or concurrency), MAX_REQUESTS))


def with_nonce(body: Any, nonce: str) -> Any:
    return map_strings(body, lambda s: s.replace(NONCE, nonce) if NONCE in s else s)


def perform(runtime: Any, item: CaseItem[Case], route: str) -> Any:
    """Send the case's request N times at once (module docstring); a Performed like runner.perform_case's."""
    from conformance.runner import Performed

    count = requests_of(item, runtime.target.concurrency)
    step = item.case.steps[-1]
    request = step.request
    nonces = [new_nonce() for _ in range(count)]
    base = item.body(step)
    barrier = threading.Barrier(count)
    wait_s = min(GATE_S, runtime.target.timeout / 2)

    def gate() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # one is late (pacer, pool): the others go on
            barrier.wait(timeout=wait_s)

    def send(nonce: str) -> Exchange:
        return runtime.client.send(route, model=item.served_model, body=with_nonce(base, nonce),
                                   headers=request.headers, auth=request.auth, stream=step.stream,
                                   surface=item.case.route_surface, gate=gate)

    with ThreadPoolExecutor(count, thread_name_prefix="conformance-concurrent") as pool:
        futures = [pool.submit(send, nonce) for nonce in nonces]
        outcomes: list[Exchange | InfrastructureError] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except InfrastructureError as exc:
                outcomes.append(exc)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, InfrastructureError):
            return Performed(infra=REDACTOR.text(f"infrastructure: request {index} of {count}: {outcome}"))
    exchanges: list[Exchange] = [o for o in outcomes if isinstance(o, Exchange)]
    for exchange, nonce in zip(exchanges, nonces, strict=True):
        exchange.nonce = nonce
    last = exchanges[-1]
    last.previous = exchanges[:-1]
    usages = [u for u in map(usage_of, exchanges) if u]
    usage = (sum(u[0] for u in usages), sum(u[1] for u in usages)) if usages else None
    if usage:
        runtime.budget.spend(usage[0] + usage[1])
    return Performed(exchange=last, usage=usage)


def evaluate(item: CaseItem[Case], exchange: Exchange) -> list[Finding]:
    """Every answer of the group judged by the case's expect, with the group in view of its checks."""
    from conformance.evaluate import evaluate as judge

    group = [*exchange.previous, exchange]
    return ordered(Finding(f.check, f.strength, f"[request {i}] {f.message}")
                   for i, answer in enumerate(group) for f in judge(item, answer, group=group))
