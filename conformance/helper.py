"""Read-ahead in other processes: the cases are performed there while pytest judges and reports here.

Python runs one thread at a time. With the read-ahead threads in the pytest process, every short system call
of the pytest thread (a report file, a capture switch) handed the interpreter lock to a request thread, and the
client SDKs (over 3 s of CPU to import) stalled every other case. A spawned helper process does the requests on
the other core: it receives (nodeid, kind, case item) in batches, performs each on its own pool of
`concurrency` threads with the same Runtime code the inline path uses, and sends back a `Performed`. An HTTP
case comes back with its exchange (plain data, megabyte request strings cut); a client case is judged in the
helper with the same `judge` and comes back as verdict strings (SDK objects stay there). The pacer and the
token budget live in shared memory, so the run keeps one request rate and one budget. If a helper dies, its
pending cases end as infrastructure errors naming that cause; the wait for a helper is bounded too (every case
is, by its requests' budgets: a helper silent for longer is stopped, see Helper.stall_s). A helper exits as soon
as the pytest process is gone, however it went.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.reduction import ForkingPickler
from typing import Any

import httpx

from conformance import cases as case_data
from conformance.client import RetryPolicy, ssl_context
from conformance.config import Target
from conformance.pacing import Pacer, Store, TokenBudget, helper_context
from conformance.redact import REDACTOR
from conformance.runner import Performed, Runtime

# The TLS context every helper's transports verify with, made at import: the forkserver imports this module
# (pacing.HELPER_PRELOAD), so it is made once there and every helper forked from it has it (loading the CA bundle
# is tens of ms of CPU, in each helper of each run otherwise). A helper given other SSL_CERT_* variables than the
# forkserver had makes its own (the cache is keyed by them).
ssl_context(httpx, True)

POLL_S = 0.5
STALL_STEPS = 4  # a case's requests (steps, or a client's build and call), each within its budget
STALL_SLACK_S = 20.0
STARTUP_S = 120.0


def perform(runtime: Runtime, kind: str, item: case_data.CaseItem[Any]) -> Performed:
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


def spawn_helper(runtime: Runtime, nice: int = 0) -> Helper:
    """A read-ahead lane for a Runtime (its `spawn`): a helper process with the runtime's target, retries,
    concurrency, pacer and budget."""
    return Helper(runtime.target, runtime.retry, runtime.concurrency, runtime.pacer.max_rps, runtime.budget.limit,
                  runtime.pacer.store, nice)


def _exit_with_parent() -> None:
    """A helper must not outlive the pytest process (killed, or ended by a signal without cleaning up): a
    thread waits on the parent's sentinel and ends this process at once, curl children included."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        _exit_now()

    threading.Thread(target=watch, name="conformance-parent-watch", daemon=True).start()


def _exit_now() -> None:
    curl = sys.modules.get("conformance.clients.curl_client")
    if curl is not None:
        curl.kill_running()
    os._exit(0)  # not sys.exit: the request threads are not waited for


def _helper_main(target: Target, retry: RetryPolicy, concurrency: int, max_rps: float | None,
                 budget_limit: int | None, store: Store, tasks: Any, results: Any, nice: int,
                 environ: dict[str, str]) -> None:
    from conformance import media

    _exit_with_parent()
    # the environment of the pytest process now, as a spawned helper has it: a forkserver keeps the one it
    # started with (the client SDKs read theirs, e.g. proxies and CA bundles)
    os.environ.clear()
    os.environ.update(environ)
    if nice:
        os.nice(nice)
    for secret in target.secrets():  # the token and credential-carrying profile headers
        REDACTOR.add(secret)
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
        try:
            with sending:  # pickled and written by the thread that has it: no hand-over to a feeder thread
                results.send((nodeid, performed))
        except (BrokenPipeError, EOFError, OSError):
            _exit_now()  # the pytest process is gone
        except Exception as exc:  # the answer would not pickle: say so rather than leave pytest waiting
            with sending:
                results.send((nodeid, Performed(infra=REDACTOR.text(
                    f"infrastructure: the answer could not be sent from the read-ahead helper "
                    f"({type(exc).__name__}: {str(exc)[:200]})"))))

    while True:
        try:
            batch = tasks.recv()
        except (EOFError, OSError):
            _exit_now()
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
                 budget_limit: int | None, store: Store, nice: int = 0, stall_s: float | None = None) -> None:
        context = helper_context()
        # every case is bounded (its requests' budgets), so a helper that sends nothing for longer than a case
        # can take is stuck: the wait for it ends, its pending cases become infrastructure errors
        self.stall_s = stall_s if stall_s is not None else STALL_STEPS * retry.deadline_s + STALL_SLACK_S
        self._last_progress = time.monotonic()
        self._answered = False
        self.held_bytes = 0  # answers read and not yet taken (the read-ahead window is bounded in bytes too)
        self._sizes: dict[str, int] = {}
        self._store = store  # its semaphore must outlive the helper's start, which unpickles it
        task_reader, self._tasks = context.Pipe(duplex=False)
        self._results, result_writer = context.Pipe(duplex=False)
        self._pending: set[str] = set()
        self._answers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_helper_main, name="conformance-helper", daemon=True,
            args=(target, retry, concurrency, max_rps, budget_limit, store, task_reader, result_writer, nice,
                  dict(os.environ)))
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
            if not self._pending:
                self._last_progress = time.monotonic()
            self._pending.update(nodeid for nodeid, _, _ in tasks)
        with contextlib.suppress(OSError):  # the helper is gone: result() says so for each of them
            self._tasks.send(tasks)

    def result(self, nodeid: str) -> Any:
        """The answer for a submitted case, reading (and keeping) the helper's other answers until it comes."""
        with self._lock:
            while nodeid not in self._answers:
                if nodeid not in self._pending:
                    raise KeyError(nodeid)
                cause = self._read_one()
                # its first answer includes starting an interpreter and importing a client SDK, unbounded by
                # any request budget under a loaded machine: that wait gets STARTUP_S more
                limit = self.stall_s + (0 if self._answered else STARTUP_S)
                if cause is None and time.monotonic() - self._last_progress > limit:
                    cause = (f"the read-ahead helper sent no answer for {limit:.0f} s, longer than a case "
                             f"can take (its requests' budgets): stopped")
                    self._process.kill()
                if cause is not None:
                    for pending in self._pending:
                        self._answers[pending] = Performed(infra=f"infrastructure: {cause}")
                    self._pending.clear()
            self.held_bytes -= self._sizes.pop(nodeid, 0)
            return self._answers.pop(nodeid)

    def _read_one(self) -> str | None:
        """Read one answer into _answers; or why none will come."""
        try:
            if not self._results.poll(POLL_S):
                if self._process.is_alive() or self._results.poll(0):
                    return None
                return f"the read-ahead helper process exited (code {self._process.exitcode})"
            message = self._results.recv_bytes()
            nodeid, performed = ForkingPickler.loads(message)
        except (EOFError, OSError):
            return f"the read-ahead helper process exited (code {self._process.exitcode})"
        self._last_progress = time.monotonic()
        self._answered = True
        self._pending.discard(nodeid)
        self._answers[nodeid] = performed
        self._sizes[nodeid] = len(message)
        self.held_bytes += len(message)
        return None

    def close(self) -> None:
        """At the end of the run every answer is in: the helper is stopped, not asked to wind down (its
        interpreter exit with an SDK loaded takes up to a second)."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        for end in (self._tasks, self._results):
            end.close()
