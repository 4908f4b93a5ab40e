"""Whole-suite runs that a test only reads, performed by a background process from the start of the session.

Why: the two longest tests each perform a whole `conformance run` (the reference run under xdist, 50 s on an idle
2-core machine; the token run of tests/test_secrets.py, 35 s) and then only read what it wrote. A worker that
performs one spends most of that time waiting for the run's own processes (its xdist workers, its helpers, its
paced streams), one test after the other; in a process of its own, started with the session, the run's waits
are the other tests' CPU time and its CPU their waits.

How: the session's first process that knows the collected tests (the xdist controller, or pytest without xdist:
conftest) starts this module as a script once per run a collected test reads (READERS), at the normal priority
(the runs time their paced streams). The script performs the run exactly as the test did (the function RUNS names,
in the test's own module, called with the run's folder) and publishes its exit status and console in
`<folder>/result.json`; its reports stay in the folder. The reading test waits for that record (`read`); a run
that died or failed makes the test fail with its log, and without a background (CONFORMANCE_BACKGROUND_MATRIX=0,
or the run not planned) the test performs the run itself.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

PLAN = "plan.json"
POLL_S = 0.1
WAIT_S = 900.0  # a run still alive and silent this long is stuck: the test fails with its log, not a hang
# run name -> "module:function" of tests/ performing it with its folder and returning a conftest.RunResult
RUNS = {
    "reference": "test_reference_run:reference_run",
    "token-bearer": "test_secrets:bearer_run",
}
# the tests that read each run (node id prefixes)
READERS = {
    "tests/test_reference_run.py::test_reference_gateway_passes_every_case_and_writes_the_run_folder": "reference",
    "tests/test_secrets.py::test_token_is_nowhere_in_run_outputs[bearer]": "token-bearer",
}


def plan_for(nodeids: list[str]) -> list[str]:
    """The runs the collected tests read, in the order of their first reader."""
    plan: list[str] = []
    for nodeid in nodeids:
        name = next((run for prefix, run in READERS.items() if nodeid.startswith(prefix)), None)
        if name is not None and name not in plan:
            plan.append(name)
    return plan


def start(folder: Path, plan: list[str]) -> list[subprocess.Popen[bytes]]:
    """One process per planned run, its output in <folder>/<run>/log.txt; none for an empty plan."""
    if not plan:
        return []
    procs = []
    for name in plan:
        (folder / name).mkdir(parents=True, exist_ok=True)
        with (folder / name / "log.txt").open("wb") as log:
            procs.append(subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(folder / name), name],
                                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=Path(__file__).resolve().parents[1]))
    partial = folder / f"{PLAN}.partial"
    partial.write_text(json.dumps({name: proc.pid for name, proc in zip(plan, procs, strict=True)}))
    partial.replace(folder / PLAN)
    return procs


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def read(folder: Path, name: str, perform: Callable[[Path], Any], own: Path) -> Any:
    """The run `name` as its background performed it, waited for; performed here, in `own`, when no background
    was planned for it."""
    plan = folder / PLAN
    pids = json.loads(plan.read_text()) if plan.exists() else {}
    if name not in pids:
        return perform(own)
    from conftest import RunResult  # type: ignore[import-not-found]

    record, failed, log = folder / name / "result.json", folder / name / "error.txt", folder / name / "log.txt"
    deadline = time.monotonic() + WAIT_S
    while not record.exists():
        if failed.exists():
            raise RuntimeError(f"the background run {name} failed:\n{failed.read_text()[-4000:]}")
        if not _alive(pids[name]) and not record.exists():
            raise RuntimeError(f"the background run {name} (pid {pids[name]}) ended without its result:\n"
                               + log.read_text(errors="replace")[-4000:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"the background run {name} gave no result in {WAIT_S:.0f} s:\n"
                               + log.read_text(errors="replace")[-4000:])
        time.sleep(POLL_S)
    data = json.loads(record.read_text())
    return RunResult(data["code"], data["out"], data["err"], Path(data["reports"]))


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the runs still going (a session cut short), each killed if it does not end in 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(folder: Path, name: str) -> int:
    module, _, function = RUNS[name].partition(":")
    try:
        result = getattr(importlib.import_module(module), function)(folder)
        partial = folder / "result.json.partial"
        partial.write_text(json.dumps({"code": result.code, "out": result.out, "err": result.err,
                                       "reports": str(result.reports)}))
        partial.replace(folder / "result.json")
    except BaseException:
        (folder / "error.txt").write_text(traceback.format_exc())
        raise
    finally:
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.pop("PYTEST_XDIST_WORKER", None)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
