"""The benchmarks' accounting of processes that outlive their parent: the read-ahead helpers are forks of a
forkserver (conformance/pacing.py: helper_context) that exits a moment after the process that started it. Left
to init, it takes its CPU, and that of the helpers it reaped, with it; adopted here (a Linux child subreaper) and
reaped, both reach RUSAGE_CHILDREN."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (Linux): the read-ahead helpers are forks of a
    forkserver that outlives the run's process by a moment; adopted and reaped here, its CPU and that of the
    helpers it reaped reach RUSAGE_CHILDREN (an orphan adopted by init takes them with it)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_orphans(keep: frozenset[int], timeout_s: float = 10.0) -> None:
    """Wait for this process's children other than `keep` (the gateway) to exit, and reap them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        children = {int(k) for f in Path(f"/proc/{os.getpid()}/task").glob("*/children")
                    for k in f.read_text().split()}
        if not children - keep:
            return
        time.sleep(0.05)
