"""Performing cases: the requests of a case (or the call of a client case), and running many at once.

A live target is slow (hundreds of ms per answer) and rate-limited; pytest runs tests one after another. So
the runner has the cases pytest is about to run performed ahead of it, in helper processes (conformance/helper.py)
paced by the run's learnt rate, and each test then judges the answer that was fetched for it. With concurrency 1,
and under pytest-xdist (workers are the concurrency there), each test performs its case inline instead.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conformance import cases as case_data
from conformance import concurrency
from conformance.bounds import Bound, Limits
from conformance.casemodel import Case, ClientCase
from conformance.client import NOT_IMPLEMENTED, TRANSIENT_STATUS, Exchange, GatewayClient, RetryPolicy
from conformance.config import Target
from conformance.errors import InfrastructureError
from conformance.pacing import Pacer, TokenBudget
from conformance.redact import REDACTOR
from conformance.usage import usage_of

QUEUED = "queued"
CLIENT_HELPER_NICE = 10  # the client-SDK lane yields the CPU to the lane the tests wait for first
READ_AHEAD_BYTES = 128 << 20  # answers held ahead of the tests, at most (besides `concurrency` in flight)


@dataclass
class Performed:
    """What performing a case gave: an exchange (or a client's result), or why there is none."""

    exchange: Exchange | None = None
    result: Any = None
    failure: str | None = None  # a client broke on the answer: judged as a failure
    failure_rule: str = "client"  # the rule it broke (findings: a transport.* rule, or the case's status)
    infra: str | None = None  # no answer: an infrastructure error
    skip: str | None = None
    usage: tuple[int, int] | None = None
    judged: list[str] | None = None  # a client case judged where it was performed (conformance/helper.py)


class Runtime:
    """Per process: the target, one connection pool, the pacer and budget, and the read-ahead helpers (their
    pacer and budget must then live in a store they share: pacing.make_store(shared=True))."""

    def __init__(self, target: Target, pacer: Pacer, budget: TokenBudget, retry: RetryPolicy,
                 concurrency: int = 1, spawn: Callable[[Runtime, int], Any] | None = None) -> None:
        """`spawn(runtime, nice)` starts a read-ahead lane (helper.spawn_helper); without it (as inside a helper)
        every case is performed inline, one after another."""
        self.target = target
        self.pacer = pacer
        self.budget = budget
        self.retry = retry
        self.client = GatewayClient(target, retry, pacer)
        self._spawn = spawn
        self.concurrency = max(1, concurrency) if spawn is not None else 1
        self._lanes: dict[str, Any] = {}  # "case" or "client:<name>" -> its read-ahead Helper
        self._lane_of: dict[str, str] = {}  # nodeid -> the lane performing it, or QUEUED
        # HTTP cases not yet handed over
        self._queued: OrderedDict[str, tuple[str, case_data.CaseItem[Any]]] = OrderedDict()
        self._outstanding = 0  # HTTP cases handed over and not yet taken

    # --- one case -------------------------------------------------------------------------------------------

    def perform_case(self, item: case_data.CaseItem[Case]) -> Performed:
        case = item.case
        route = self.target.route(case.route_surface)
        if route is None:
            return Performed(skip=f"target has no route for {case.route_surface}")
        if not case.negative and self.budget.exhausted():
            return Performed(skip=f"token budget of {self.budget.limit} spent")
        if not self.target.token and any(s.request.sends_token for s in case.steps):
            # a local target run without a token (allowed) cannot show how a credential is sent
            return Performed(skip="the run has no token, and this case sends one")
        if concurrency.is_concurrent(case):  # the same request N times at once (conformance/concurrency.py)
            return concurrency.perform(self, item, route)
        sent: list[Exchange] = []
        unsent = None
        for step in case.steps:  # one step, or the earlier steps of a multi-step case and then its own
            req = step.request
            try:
                body = item.body(step, [e.json for e in sent]) if req.body is not None else None
            except case_data.Unresolved as exc:
                unsent = str(exc)  # the earlier answer is wrong: judged (and failed) in the call phase
                break
            step_route = self.target.route(req.route) if req.route else route  # a step on another route
            if step_route is None:
                return Performed(skip=f"target has no route for {req.route}")
            try:
                result = self.client.send(step_route, model=item.served_model, body=body, raw_body=req.raw_body,
                                          headers=req.headers, auth=req.auth,
                                          stream=step.stream, retry_server_errors=not step.negative,
                                          surface=req.route or case.route_surface)
            except InfrastructureError as exc:
                where = f"step {step.index}: " if len(case.steps) > 1 else ""
                return Performed(infra=REDACTOR.text(f"infrastructure: {where}{exc}"))
            sent.append(result)
        result = sent[-1]
        result.previous, result.unsent = sent[:-1], unsent
        usages = [u for u in map(usage_of, sent) if u]
        usage = (sum(u[0] for u in usages), sum(u[1] for u in usages)) if usages else None
        if usage:
            self.budget.spend(usage[0] + usage[1])
        return Performed(exchange=result, usage=usage)

    def perform_client(self, item: case_data.CaseItem[ClientCase]) -> Performed:
        from conformance import clients
        from conformance.clients import ClientContext

        call = item.case.client
        spec = call.as_mapping()  # what the client runners read
        reason = clients.unavailable(call.name)
        if reason:
            return Performed(skip=reason)
        if self.target.route(call.route) is None:
            return Performed(skip=f"target has no route for {call.route}")
        if self.budget.exhausted():
            return Performed(skip=f"token budget of {self.budget.limit} spent")
        ctx = ClientContext(self.target, self.pacer, item.served_model)
        runner, what = clients.RUNNERS[call.name], call.call or call.route
        runner.warm()  # importing an SDK (seconds of CPU) is not part of any request's budget
        who = f"{call.name} {what}"
        limits = Limits.of(self.target)
        started = time.monotonic()
        budget_end = math.inf  # set when the first attempt's first request starts (an SDK's set-up is not counted)
        problem, stop, made = "no attempt made", "", 0
        server_errors: list[int] = []  # a 5xx other than 501-504 on every attempt: the gateway's failure
        for attempt in range(self.retry.attempts):
            made = attempt + 1
            bound = Bound(limits, latest=budget_end)  # armed by the client's first request
            tried = _client_attempt(runner, ctx, spec, call.name, what, who, bound)
            if tried.ok:
                return Performed(result=tried.result)
            if math.isinf(budget_end):
                budget_end = (bound.deadline - limits.timeout_s if bound.deadline else time.monotonic()) \
                    + self.retry.deadline_s
            final, problem = _after_client_attempt(who, bound, tried, problem, server_errors, attempt)
            if final is not None:
                return final
            if len(server_errors) != made:
                server_errors.clear()
            retry_after = bound.retry_after if bound.status is not None and bound.status >= 429 else None
            plan = self.retry.plan(attempt, retry_after, budget_end - time.monotonic())
            if isinstance(plan, str):
                stop = plan
                break
            time.sleep(plan)
        repeated = self.retry.repeated_server_error(server_errors, made)
        if repeated:
            return Performed(failure=REDACTOR.text(f"[{who}] [transport.server-error] {repeated}; last: {problem}"),
                             failure_rule="transport.server-error")
        return Performed(infra=REDACTOR.text(f"infrastructure: {call.name}: no answer after {made} attempt(s) in "
                                             f"{time.monotonic() - started:.1f}s; last cause: {problem}"
                                             f"{self.retry.why_stopped(stop)}"))

    def perform(self, kind: str, item: case_data.CaseItem[Any]) -> Performed:
        return self.perform_client(item) if kind == "client" else self.perform_case(item)

    # --- read-ahead -----------------------------------------------------------------------------------------

    def start_helpers(self) -> None:
        """Spawn the HTTP lane's helper (runner docstring) now, so its interpreter starts while pytest collects."""
        if self.concurrency >= 2 and "case" not in self._lanes:
            self._lanes["case"] = self._helper(nice=0)

    def _helper(self, nice: int) -> Any:
        assert self._spawn is not None
        return self._spawn(self, nice)

    def read_ahead(self, work: Iterable[tuple[str, str, case_data.CaseItem[Any]]]) -> None:
        """Start performing (nodeid, kind, item) in helper processes, at most `concurrency` at once per helper
        and, for HTTP cases, a bounded window ahead of the tests that consume them (answers can be megabytes).
        The HTTP cases have one lane; each official client has its own, where its SDK loads (a second or more
        of CPU each) while the HTTP cases run, and where the SDKs load side by side on both cores once the
        HTTP cases are done."""
        if self.concurrency < 2:
            return
        self.start_helpers()
        clients: dict[str, list[tuple[str, str, case_data.CaseItem[Any]]]] = {}
        for nodeid, kind, item in work:
            if kind == "client":
                clients.setdefault(f"client:{item.case.client.name}", []).append((nodeid, kind, item))
            else:
                self._queued[nodeid] = (kind, item)
                self._lane_of[nodeid] = QUEUED
        for lane, tasks in clients.items():
            # a client case's answer is a verdict, not megabytes: those go at once, outside the window
            self._lanes[lane] = self._helper(nice=CLIENT_HELPER_NICE)
            self._lanes[lane].submit(tasks)
            self._lane_of.update((nodeid, lane) for nodeid, _, _ in tasks)
        self._refill()

    def _refill(self) -> None:
        """Keep the window of HTTP cases handed over ahead of the tests full, topping it up in batches."""
        free = self.concurrency * 4 - self._outstanding
        if not self._queued or (free < self.concurrency and free < len(self._queued)):
            return
        if self._lanes["case"].held_bytes > READ_AHEAD_BYTES:
            return  # big answers: what is held for the tests is bounded in bytes too (topped up as they are taken)
        batch: list[tuple[str, str, case_data.CaseItem[Any]]] = []
        while self._queued and len(batch) < free:
            nodeid, (kind, item) = self._queued.popitem(last=False)
            batch.append((nodeid, kind, item))
            self._lane_of[nodeid] = "case"
        self._outstanding += len(batch)
        self._lanes["case"].submit(batch)

    def take(self, nodeid: str, kind: str, item: case_data.CaseItem[Any]) -> Performed:
        lane = self._lane_of.pop(nodeid, None)
        if lane is None or lane == QUEUED:
            self._queued.pop(nodeid, None)  # not handed over (the tests ran in another order): done here
            return self.perform(kind, item)
        performed: Performed = self._lanes[lane].result(nodeid)
        if lane == "case":
            self._outstanding -= 1
            self._refill()
        return performed

    def close(self) -> None:
        lanes, self._lanes = self._lanes, {}
        for helper in lanes.values():
            helper.close()
        self.client.close()


@dataclass
class _ClientAttempt:
    """One call of an official client: its result (ok: the transport saw nothing wrong either), or what the
    client failed with (a broken answer) or on (an infrastructure problem)."""

    result: Any = None
    ok: bool = False
    failure: str | None = None
    problem: str | None = None


def _client_attempt(runner: Any, ctx: Any, spec: dict[str, Any], name: str, what: str, who: str,
                    bound: Bound) -> _ClientAttempt:
    from conformance.clients import ClientFailure, ClientInfrastructure
    from conformance.clients.base import classify_unexpected

    with bound.active():
        try:
            result = runner.invoke(ctx, spec)
        except ClientFailure as exc:
            return _ClientAttempt(failure=f"[{who}] {exc}")
        except ClientInfrastructure as exc:
            return _ClientAttempt(problem=str(exc))
        except Exception as exc:  # any other client exception is classified, never lost
            classified = classify_unexpected(name, what, exc)
            if isinstance(classified, ClientFailure):
                return _ClientAttempt(failure=str(classified))
            return _ClientAttempt(problem=str(classified))
        return _ClientAttempt(result=result, ok=bound.failure is None)


def _after_client_attempt(who: str, bound: Bound, tried: _ClientAttempt, problem: str, server_errors: list[int],
                          attempt: int) -> tuple[Performed | None, str]:
    """What an attempt that gave no result means: the case's verdict, or (None) the cause to retry on. What the
    transport saw outranks what the client made of it (conformance/bounds.py)."""
    failure, problem = tried.failure, tried.problem if tried.problem is not None else problem
    status = bound.status
    if bound.failure is not None:
        return Performed(failure=REDACTOR.text(f"[{who}] {bound.failure.finding()}"),
                         failure_rule=bound.failure.check), problem
    if bound.timed_out or bound.problem:
        cause = bound.problem or bound.timeout_text()
        # a plain timeout after answers (an SDK retried inside the attempt): the answers are the cause to name
        failure, problem = None, bound.timeout_after_answers() if cause == bound.timeout_text() else cause
    elif status == NOT_IMPLEMENTED:
        return Performed(failure=REDACTOR.text(
            f"[{who}] HTTP 501, not retried (the gateway does not implement the documented call): "
            f"{failure or problem}"), failure_rule="status"), problem
    elif status in TRANSIENT_STATUS:
        failure, problem = None, f"HTTP {status}: {failure or problem}"
    elif status is not None and status >= 500:  # retried as the HTTP lane retries it (client.py)
        if len(server_errors) == attempt:
            server_errors.append(status)
        failure, problem = None, f"HTTP {status}: {failure or problem}"
    if failure is not None:
        return Performed(failure=REDACTOR.text(failure)), problem
    return None, problem
