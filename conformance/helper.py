"""Read-ahead in other processes: the cases are performed there while pytest judges and reports here.

Python runs one thread at a time. With the read-ahead threads in the pytest process, every short system call
of the pytest thread (a report file, a capture switch) handed the interpreter lock to a request thread, and the
client SDKs (over 3 s of CPU to import) stalled every other case. A spawned helper process does the requests on
the other core: it receives (nodeid, kind, case item) in batches, performs each on its own pool of
`concurrency` threads with the same Runtime code the inline path uses, and sends back a `Performed`. An HTTP
case comes back with its exchange (plain data, megabyte request strings cut); a client case is judged in the
helper with the same `judge` and comes back as verdict strings (SDK objects stay there). The pacer and the
token budget live in shared memory, so the run keeps one request rate and one budget. If a helper dies, its
pending cases end as infrastructure errors naming that cause.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance import cases as case_data
from conformance.client import RetryPolicy
from conformance.config import Target
from conformance.pacing import Pacer, Store, TokenBudget
from conformance.redact import REDACTOR

POLL_S = 0.5


def perform(runtime: Any, kind: str, item: case_data.CaseItem[Any]) -> Any:
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
    sending = threading.Lock()

    def run(nodeid: str, kind: str, item: case_data.CaseItem[Any]) -> None:
        try:
            performed = perform(runtime, kind, item)
        except Exception as exc:  # never lost: the pytest process would wait for it
            performed = Performed(infra=REDACTOR.text(
                f"infrastructure: the read-ahead helper raised {type(exc).__name__}: {exc}"))
        with sending:  # pickled and written by the thread that has it: no hand-over to a feeder thread
            results.send((nodeid, performed))

    while True:
        batch = tasks.recv()
        if batch is None:
            break
        for nodeid, kind, item in batch:
            pool.submit(run, nodeid, kind, item)
    pool.shutdown(wait=False, cancel_futures=True)


class Helper:
    """The pytest process's side: start the helper, hand it cases, and collect its answers.

    No thread of the pytest process stands between it and a helper: tasks are written (in batches) and answers
    read by the pytest thread itself, when a test needs one. Each hand-over between threads costs a wake-up and
    a switch of the interpreter lock, and at zero latency those were a large part of the suite's time."""

    def __init__(self, target: Target, retry: RetryPolicy, concurrency: int, max_rps: float | None,
                 budget_limit: int | None, store: Store, nice: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._store = store  # its semaphore must outlive the helper's start, which unpickles it
        task_reader, self._tasks = context.Pipe(duplex=False)
        self._results, result_writer = context.Pipe(duplex=False)
        self._pending: set[str] = set()
        self._answers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_helper_main, name="conformance-helper", daemon=True,
            args=(target, retry, concurrency, max_rps, budget_limit, store, task_reader, result_writer, nice))
        self._process.start()
        task_reader.close()
        result_writer.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, tasks: list[tuple[str, str, case_data.CaseItem[Any]]]) -> None:
        """Hand over cases, as one message. The helper reads its tasks at all times, so this blocks only while
        the helper's interpreter starts (its pipe holds 64 KB)."""
        if not tasks:
            return
        with self._lock:
            self._pending.update(nodeid for nodeid, _, _ in tasks)
        with contextlib.suppress(OSError):  # the helper is gone: result() says so for each of them
            self._tasks.send(tasks)

    def result(self, nodeid: str) -> Any:
        """The answer for a submitted case, reading (and keeping) the helper's other answers until it comes."""
        from conformance.runner import Performed

        with self._lock:
            while nodeid not in self._answers:
                if nodeid not in self._pending:
                    raise KeyError(nodeid)
                cause = self._read_one()
                if cause is not None:
                    for pending in self._pending:
                        self._answers[pending] = Performed(infra=f"infrastructure: {cause}")
                    self._pending.clear()
            return self._answers.pop(nodeid)

    def _read_one(self) -> str | None:
        """Read one answer into _answers; or why none will come."""
        try:
            if not self._results.poll(POLL_S):
                if self._process.is_alive() or self._results.poll(0):
                    return None
                return f"the read-ahead helper process exited (code {self._process.exitcode})"
            nodeid, performed = self._results.recv()
        except (EOFError, OSError):
            return f"the read-ahead helper process exited (code {self._process.exitcode})"
        self._pending.discard(nodeid)
        self._answers[nodeid] = performed
        return None

    def close(self) -> None:
        """At the end of the run every answer is in: the helper is stopped, not asked to wind down (its
        interpreter exit with an SDK loaded takes up to a second)."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        for end in (self._tasks, self._results):
            end.close()
