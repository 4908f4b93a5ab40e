"""Performing cases: the requests of a case (or the call of a client case), and running many at once.

A live target is slow (hundreds of ms per answer) and rate-limited; pytest runs tests one after another. So
the runner has the cases pytest is about to run performed ahead of it, in helper processes (conformance/helper.py)
paced by the run's learnt rate, and each test then judges the answer that was fetched for it. With concurrency 1,
and under pytest-xdist (workers are the concurrency there), each test performs its case inline instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from conformance import cases as case_data
from conformance.client import Exchange, GatewayClient, RetryPolicy
from conformance.config import Target
from conformance.errors import InfrastructureError
from conformance.pacing import Pacer, TokenBudget
from conformance.redact import REDACTOR
from conformance.usage import usage_of

CLIENT_HELPER_NICE = 10  # the client-SDK lane yields the CPU to the lane the tests wait for first
EXPENSIVE_LEAD = 100  # cases: how much earlier than its turn an `expensive` case is started


@dataclass
class Performed:
    """What performing a case gave: an exchange (or a client's result), or why there is none."""

    exchange: Exchange | None = None
    result: Any = None
    failure: str | None = None  # a client broke on the answer: judged as a failure
    infra: str | None = None  # no answer: an infrastructure error
    skip: str | None = None
    usage: tuple[int, int] | None = None
    judged: list[str] | None = None  # a client case judged where it was performed (conformance/helper.py)


class Runtime:
    """Per process: the target, one connection pool, the pacer and budget, and the read-ahead helpers (their
    pacer and budget must then live in a store they share: pacing.make_store(shared=True))."""

    def __init__(self, target: Target, pacer: Pacer, budget: TokenBudget, retry: RetryPolicy,
                 concurrency: int = 1) -> None:
        self.target = target
        self.pacer = pacer
        self.budget = budget
        self.retry = retry
        self.client = GatewayClient(target, retry, pacer)
        self.concurrency = max(1, concurrency)
        self._futures: dict[str, Future[Performed]] = {}
        self._window: threading.Semaphore | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._lanes: dict[str, Any] = {}  # kind -> its read-ahead Helper
        self._unwindowed: set[str] = set()  # client and expensive cases: outside the read-ahead window

    # --- one case -------------------------------------------------------------------------------------------

    def perform_case(self, item: case_data.CaseItem) -> Performed:
        case = item.case
        route = self.target.route(case.route_surface)
        if route is None:
            return Performed(skip=f"target has no route for {case.route_surface}")
        if not case.negative and self.budget.exhausted():
            return Performed(skip=f"token budget of {self.budget.limit} spent")
        if not self.target.token and any(s.request.get("auth") in ("bearer", "basic") for s in case.steps):
            # a local target run without a token (allowed) cannot show how a credential is sent
            return Performed(skip="the run has no token, and this case sends one")
        sent: list[Exchange] = []
        unsent = None
        for step in case.steps:  # one step, or the earlier steps of a multi-step case and then its own
            req = step.request
            try:
                body = item.body(step, [e.json for e in sent]) if "body" in req else None
            except case_data.Unresolved as exc:
                unsent = str(exc)  # the earlier answer is wrong: judged (and failed) in the call phase
                break
            try:
                result = self.client.send(route, model=item.served_model, body=body, raw_body=req.get("raw_body"),
                                          headers=req.get("headers"), auth=req.get("auth", "default"),
                                          stream=step.stream, retry_server_errors=not step.negative)
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

    def perform_client(self, item: case_data.CaseItem) -> Performed:
        from conformance import clients
        from conformance.clients import ClientContext, ClientFailure, ClientInfrastructure
        from conformance.clients.base import classify_unexpected

        spec = item.case.client
        reason = clients.unavailable(spec["name"])
        if reason:
            return Performed(skip=reason)
        if self.target.route(spec["route"]) is None:
            return Performed(skip=f"target has no route for {spec['route']}")
        if self.budget.exhausted():
            return Performed(skip=f"token budget of {self.budget.limit} spent")
        ctx = ClientContext(self.target, self.pacer, item.served_model)
        who = f"{spec['name']} {spec.get('call', spec['route'])}"
        problem = None
        for attempt in range(self.retry.attempts):
            try:
                return Performed(result=clients.RUNNERS[spec["name"]].invoke(ctx, spec))
            except ClientFailure as exc:
                return Performed(failure=REDACTOR.text(f"[{who}] {exc}"))
            except ClientInfrastructure as exc:
                problem = str(exc)
            except Exception as exc:  # any other client exception is classified, never lost
                classified = classify_unexpected(spec["name"], spec.get("call", spec["route"]), exc)
                if isinstance(classified, ClientFailure):
                    return Performed(failure=REDACTOR.text(str(classified)))
                problem = str(classified)
            if attempt + 1 < self.retry.attempts:
                time.sleep(self.retry.delay(attempt, None))
        return Performed(infra=REDACTOR.text(f"infrastructure: {spec['name']}: no answer after "
                                             f"{self.retry.attempts} attempt(s); last cause: {problem}"))

    def perform(self, kind: str, item: case_data.CaseItem) -> Performed:
        return self.perform_client(item) if kind == "client" else self.perform_case(item)

    # --- read-ahead -----------------------------------------------------------------------------------------

    def start_helpers(self) -> None:
        """Spawn the read-ahead helpers (runner docstring) now, so their interpreters start while pytest
        collects; read_ahead hands them the work."""
        if self.concurrency < 2 or self._lanes:
            return
        from conformance.helper import Helper

        for kind, nice in (("case", 0), ("client", CLIENT_HELPER_NICE)):
            self._lanes[kind] = Helper(self.target, self.retry, self.concurrency, self.pacer.max_rps,
                                       self.budget.limit, self.pacer.store, nice)

    def read_ahead(self, work: Iterable[tuple[str, str, case_data.CaseItem]]) -> None:
        """Start performing (nodeid, kind, item) in helper processes, at most `concurrency` at once per helper
        and, for HTTP cases, a bounded window ahead of the tests that consume them (answers can be megabytes).
        Two lanes: HTTP cases, and client cases (the client SDKs load there while the HTTP cases run)."""
        if self.concurrency < 2:
            return
        self.start_helpers()
        work = list(work)
        self._window = threading.Semaphore(self.concurrency * 4)
        targets: dict[str, Future[Performed]] = {nodeid: Future() for nodeid, _, _ in work}
        with self._lock:
            self._futures.update(targets)  # take() pops them, maybe before the feeder reaches them

        clients = [w for w in work if w[1] == "client"]
        if not clients:
            self._lanes.pop("client").close()
        for nodeid, kind, item in clients:
            # a client case's answer is a verdict, not megabytes: those go at once, outside the window
            self._lanes["client"].submit(nodeid, kind, item).add_done_callback(
                lambda f, t=targets[nodeid]: _copy_result(f, t))
            self._unwindowed.add(nodeid)
        work = ahead_of_time([w for w in work if w[1] != "client"])
        cases = self._lanes["case"]

        # an expensive case is started before tests that come earlier, which the window's slots wait for:
        # it stays outside the window
        self._unwindowed.update(nodeid for nodeid, _, item in work if expensive(item))

        def feed() -> None:
            for nodeid, kind, item in work:
                if nodeid not in self._unwindowed:
                    assert self._window is not None
                    self._window.acquire()
                if self._closed:
                    return
                cases.submit(nodeid, kind, item).add_done_callback(lambda f, t=targets[nodeid]: _copy_result(f, t))

        threading.Thread(target=feed, name="conformance-feed", daemon=True).start()

    def take(self, nodeid: str, kind: str, item: case_data.CaseItem) -> Performed:
        with self._lock:
            future = self._futures.pop(nodeid, None)
        if future is None:
            return self.perform(kind, item)
        try:
            return future.result()
        finally:
            if self._window is not None and nodeid not in self._unwindowed:
                self._window.release()

    def close(self) -> None:
        self._closed = True
        lanes, self._lanes = self._lanes, {}
        for helper in lanes.values():
            helper.close()
        if self._window is not None:
            for _ in range(len(self._futures) + 1):
                self._window.release()  # unblock the feeder so it can see the run is over
        self.client.close()


def expensive(item: case_data.CaseItem) -> bool:
    return "expensive" in item.case.markers


def ahead_of_time(work: list[tuple[str, str, case_data.CaseItem]]) -> list[tuple[str, str, case_data.CaseItem]]:
    """The order to perform HTTP cases in: the tests' order, but each `expensive` case (megabytes of images, or
    thousands of tokens to generate) started EXPENSIVE_LEAD cases before its turn, so that its answer is ready
    when its test comes instead of stalling the run there."""
    def due(index: int) -> int:
        return index - EXPENSIVE_LEAD if expensive(work[index][2]) else index

    return [work[i] for i in sorted(range(len(work)), key=due)]


def _copy_result(source: Future[Performed], target: Future[Performed]) -> None:
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
