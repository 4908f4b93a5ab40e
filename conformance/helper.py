"""Read-ahead in a second process: the cases are performed there while pytest judges and reports here.

Python runs one thread at a time. With the read-ahead threads in the pytest process, every short system call
of the pytest thread (a report file, a capture switch) handed the interpreter lock to a request thread, and the
four client SDKs (about 3.5 s of CPU to import) stalled every other case. A spawned helper process does the
requests on the other core: it receives (nodeid, kind, case item), performs each on its own pool of
`concurrency` threads with the same Runtime code the inline path uses, and sends back a `Performed`. An HTTP
case comes back with its exchange (plain data); a client case is judged in the helper with the same `judge`
and comes back as verdict strings (SDK objects stay there). The pacer and the token budget live in shared
memory, so the run keeps one request rate and one budget. If the helper dies, its pending cases end as
infrastructure errors naming that cause.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from conformance import cases as case_data
from conformance.client import RetryPolicy
from conformance.config import Target
from conformance.pacing import Pacer, Store, TokenBudget
from conformance.redact import REDACTOR

POLL_S = 0.5


def perform(runtime: Any, kind: str, item: case_data.CaseItem) -> Any:
    """One case; a client case to its verdict, as the SDK's result object cannot cross to the pytest process."""
    from conformance.clientcases import judge

    if kind != "client":
        performed = runtime.perform_case(item)
        if performed.exchange is not None:
            performed.exchange.lightened()  # megabytes of request images need not cross to pytest
        return performed
    performed = runtime.perform_client(item)
    if performed.result is not None and performed.failure is None:
        performed.judged = [REDACTOR.text(f) for f in judge(item, performed.result)]
        performed.result = None
    return performed


def _helper_main(target: Target, retry: RetryPolicy, concurrency: int, max_rps: float | None,
                 budget_limit: int | None, store: Store, tasks: Any, results: Any, nice: int) -> None:
    from conformance import media

    if nice:
        os.nice(nice)
    from conformance.runner import Performed, Runtime

    REDACTOR.add(target.token)
    media.use_target(target)  # what case expansion did in the pytest process (media URLs of this target)
    runtime = Runtime(target, Pacer(max_rps, store), TokenBudget(budget_limit, store), retry)
    pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="conformance-helper")

    def finish(nodeid: str, future: Future[Any]) -> None:
        error = future.exception()
        if error is None:
            results.put((nodeid, future.result()))
        else:
            results.put((nodeid, Performed(infra=REDACTOR.text(
                f"infrastructure: the read-ahead helper raised {type(error).__name__}: {error}"))))

    while True:
        task = tasks.get()
        if task is None:
            break
        nodeid, kind, item = task
        pool.submit(perform, runtime, kind, item).add_done_callback(lambda f, n=nodeid: finish(n, f))
    pool.shutdown(wait=False, cancel_futures=True)


class Helper:
    """The pytest process's side: start the helper, hand it cases, turn its answers into futures."""

    def __init__(self, target: Target, retry: RetryPolicy, concurrency: int, max_rps: float | None,
                 budget_limit: int | None, store: Store, nice: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._store = store  # its semaphore must outlive the helper's start, which unpickles it
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_helper_main, name="conformance-helper", daemon=True,
            args=(target, retry, concurrency, max_rps, budget_limit, store, self._tasks, self._results, nice))
        self._process.start()
        self._listener = threading.Thread(target=self._listen, name="conformance-helper-listener", daemon=True)
        self._listener.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, nodeid: str, kind: str, item: case_data.CaseItem) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._futures[nodeid] = future
        self._tasks.put((nodeid, kind, item))
        return future

    def _listen(self) -> None:
        while True:
            try:
                message = self._results.get(timeout=POLL_S)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                self._fail_pending(f"the read-ahead helper process exited (code {self._process.exitcode})")
                return
            except (EOFError, OSError, ValueError):  # the queue was closed under us: the run is over
                self._fail_pending("the read-ahead helper's result channel closed")
                return
            nodeid, performed = message
            with self._lock:
                future = self._futures.pop(nodeid, None)
            if future is not None and not future.done():
                future.set_result(performed)

    def _fail_pending(self, cause: str) -> None:
        from conformance.runner import Performed

        with self._lock:
            pending, self._futures = self._futures, {}
        for future in pending.values():
            if not future.done():
                future.set_result(Performed(infra=f"infrastructure: {cause}"))

    def close(self) -> None:
        """At the end of the run every answer is in: the helper is stopped, not asked to wind down (its
        interpreter exit with four SDKs loaded takes over a second)."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._tasks.cancel_join_thread()  # a stopped helper reads nothing more: never block the exit on it
        self._fail_pending("the run ended before the case was performed")
