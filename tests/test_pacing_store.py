"""The run-wide state file that xdist workers share (pacing, token budget) stays valid JSON under contention.

Found certifying LiteLLM: the lock was released before the buffered write reached the file, so another
worker could read a half-written state ('...}7}') and its case ended as an infrastructure error.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from conformance.pacing import make_store

WORKERS, ROUNDS = 4, 300


def _hammer(path: str, worker: int) -> None:
    store = make_store(Path(path))

    def bump(state: dict) -> None:
        state["count"] = state.get("count", 0) + 1
        # state of varying length, as the pacer's is: a shorter write must not leave the tail of a longer one
        state["pad"] = "x" * ((state["count"] * 7 + worker) % 50)

    for _ in range(ROUNDS):
        store.update(bump)


def test_concurrent_updates_from_processes_are_all_kept(tmp_path):
    path = tmp_path / ".run-limits.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), w)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    assert json.loads(path.read_text())["count"] == WORKERS * ROUNDS


def _hammer_shared(store, worker: int) -> None:  # type: ignore[no-untyped-def]
    def bump(state: dict) -> None:
        state["count"] = state.get("count", 0) + 1
        state["pad"] = "x" * ((state["count"] * 7 + worker) % 50)

    for _ in range(ROUNDS):
        store.update(bump)


def test_shared_memory_store_keeps_every_update_of_helper_processes():
    """The store the pytest process shares with its read-ahead helpers (conformance/helper.py)."""
    store = make_store(None, shared=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer_shared, args=(store, w)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    _hammer_shared(store, WORKERS)  # and this process at the same time
    for proc in procs:
        proc.join(timeout=120)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    assert store.update(lambda state: state["count"]) == (WORKERS + 1) * ROUNDS


def test_a_forked_helper_starts_with_the_preloaded_modules_frozen():
    """The forkserver freezes what it preloaded (conformance/forkfreeze.py, always last in pacing.preload): a
    fork then starts with those objects out of the collector's reach; nothing else would show it was wired."""
    import concurrent.futures
    import gc

    import pytest

    from conformance import pacing

    assert pacing.preload("x.y")[-1] == pacing.FREEZE_PRELOAD and "x.y" in pacing.preload("x.y")
    context = pacing.helper_context()
    if context.get_start_method() != "forkserver":
        pytest.skip("no forkserver on this platform: helpers are spawned, nothing is preloaded")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(gc.get_freeze_count).result(timeout=60) > 10_000
