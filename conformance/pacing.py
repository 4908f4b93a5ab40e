"""Run-wide pacing and spending: one request rate and one token budget for every thread and worker.

The rate starts unlimited (or at --max-rps) and is learnt from the target: a 429 cuts it to what was just
being sent (less a margin), quiet successes raise it again slowly (additive increase, multiplicative
decrease), so a run goes as fast as the target's rate limit allows without a hand-set rate. Under
pytest-xdist the state lives in a small file guarded by an flock, so the ceiling is global, not per worker.
"""

from __future__ import annotations

import fcntl
import json
import math
import multiprocessing
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DECREASE = 0.85  # on a 429
INCREASE = 0.005  # relative, per success
COOLDOWN_S = 1.0  # one decrease per burst of 429s
WINDOW_S = 1.0


class _MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        with self._lock:
            return fn(self._state)


class _FileStore:
    """The same interface over a JSON file shared by processes; a thread lock keeps threads in order too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.touch(exist_ok=True)

    @contextmanager
    def _locked(self) -> Any:
        with self._lock, self.path.open("r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        with self._locked() as fh:
            text = fh.read()
            state = json.loads(text) if text.strip() else {}
            result = fn(state)
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(state))
            fh.flush()  # before the lock is released: another process must not read a half-written state
            return result


# what a read-ahead helper preloads before it is forked (helper_context): the suite's code up to the client wrappers,
# not the client SDKs (each helper lane imports its own, on its own core)
HELPER_PRELOAD = ["conformance.helper", "conformance.clientcases", "conformance.clients"]
FREEZE_PRELOAD = "conformance.forkfreeze"  # always last: it freezes what the modules before it made


def preload(*extra: str) -> list[str]:
    """The forkserver's preload: the helpers' modules, then `extra`, then the freeze."""
    return [*HELPER_PRELOAD, *(m for m in extra if m not in HELPER_PRELOAD), FREEZE_PRELOAD]


def helper_context() -> Any:
    """The processes of the read-ahead helpers (conformance/helper.py) and their shared memory. A forkserver where
    the platform has one: it imports the suite's code once, and each helper is a fork of it, where a spawned
    helper imported it again (0.6 s of CPU each, with a lane per official client). Spawn elsewhere. Both start
    from a clean interpreter, never a fork of the pytest process and its threads."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload())
    return context


class _SharedStore:
    """The same interface in shared memory, for the helper process this one spawns (conformance/helper.py):
    a process lock and a JSON buffer, microseconds per update where the file store takes a file round trip."""

    SIZE = 4096

    def __init__(self) -> None:
        context = helper_context()
        self._lock = context.Lock()
        self._buffer = context.RawArray("c", self.SIZE)

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        with self._lock:
            raw = self._buffer.value
            state = json.loads(raw) if raw else {}
            result = fn(state)
            data = json.dumps(state).encode()
            if len(data) >= self.SIZE:  # pragma: no cover - the state is a handful of numbers
                raise RuntimeError("pacing state outgrew its shared buffer")
            self._buffer.value = data
            return result


Store = _MemoryStore | _FileStore | _SharedStore


def make_store(path: Path | None, shared: bool = False) -> Store:
    """A file for xdist workers (each starts on its own), shared memory for a helper process, else a dict."""
    if path:
        return _FileStore(path)
    return _SharedStore() if shared else _MemoryStore()


class Pacer:
    def __init__(self, max_rps: float | None = None, store: Store | None = None) -> None:
        self.max_rps = max_rps
        self.store = store or _MemoryStore()

    def _rate(self, state: dict[str, Any]) -> float:
        rate = state.get("rate")
        learnt = math.inf if rate is None else rate
        return min(learnt, self.max_rps) if self.max_rps else learnt

    def wait_turn(self, max_wait: float | None = None) -> bool:
        """Wait for this request's slot of the run's rate. With `max_wait` (what is left of a request's budget:
        pacer waits count in it), a slot further away is not claimed and False comes back at once."""

        def claim(state: dict[str, Any]) -> float | None:
            now = time.time()
            rate = self._rate(state)
            slot = now if math.isinf(rate) else max(now, state.get("next_at", now))
            if max_wait is not None and slot - now > max_wait:
                return None
            if now - state.get("window_start", 0) > WINDOW_S:  # a sliding 1 s count of what was sent
                state["prev_window"] = [state.get("window_start", now), state.get("window_count", 0)]
                state["window_start"], state["window_count"] = now, 0
            state["window_count"] = state.get("window_count", 0) + 1
            if math.isinf(rate):
                return 0.0
            state["next_at"] = slot + 1 / rate
            return slot - now

        delay = self.store.update(claim)
        if delay is None:
            return False
        if delay > 0:
            time.sleep(delay)
        return True

    def throttled(self) -> None:
        def decrease(state: dict[str, Any]) -> None:
            now = time.time()
            if now - state.get("last_decrease", 0) < COOLDOWN_S:
                return
            state["last_decrease"] = now
            state["throttles"] = state.get("throttles", 0) + 1
            rate = self._rate(state)
            if math.isinf(rate):
                start, count = state.get("prev_window", [now - WINDOW_S, 0])
                elapsed = max(WINDOW_S, now - start)
                rate = max(1.0, (count + state.get("window_count", 0)) / elapsed)
            state["rate"] = max(0.5, rate * DECREASE)

        self.store.update(decrease)

    def succeeded(self) -> None:
        def increase(state: dict[str, Any]) -> None:
            if state.get("rate") is not None:
                state["rate"] = state["rate"] * (1 + INCREASE)

        self.store.update(increase)

    def snapshot(self) -> dict[str, Any]:
        return self.store.update(lambda state: {"rate": state.get("rate"), "throttles": state.get("throttles", 0)})


class TokenBudget:
    """--token-budget N: once N tokens are spent, cases that would call a model are skipped."""

    def __init__(self, limit: int | None, store: Store | None = None) -> None:
        self.limit = limit
        self.store = store or _MemoryStore()

    def spend(self, tokens: int) -> None:
        if self.limit is not None and tokens:
            self.store.update(lambda s: s.__setitem__("spent", s.get("spent", 0) + tokens))

    def exhausted(self) -> bool:
        if self.limit is None:
            return False
        return self.store.update(lambda s: s.get("spent", 0)) >= self.limit
