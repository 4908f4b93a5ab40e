"""The deviation matrix judged by two background processes from the start of a `pytest tests` session, while the
tests run.

Why: most of the self-tests' wall time is spent waiting (deadlines, retry delays, paced streams, ai_query's
window), and the matrix (every switch against every item it applies to, tests/harness.py) is CPU work that needs
no one's timing, but for the few paced streams that streaming_incremental times. So the matrix is split in two
parts (Harness.part_of), each judged by its own process:
- `unpaced`, every item but the paced streams and the cases of concurrent requests, at nice 19: it takes only
  the CPU the tests leave idle, so a test that waits for a deadline or times a stream still has its core when it
  needs it;
- `paced`, the paced streams and the concurrent cases (the gateway pairs requests arriving within a window), at
  the normal priority (a process that got no CPU while the tests are busy would read a stream bunched up, or
  miss the window): they mostly wait.
The judgement is the one a worker would make; it is only made in the session's gaps.

How:
- The session's first process that knows the collected tests (the xdist controller, or pytest itself without
  xdist) writes the plan (each switch of the collected matrix tests, with whether its shapes are compared, in the
  order the tests ask for them) and starts this module as a script once per part (`start`); `stop` ends them at
  the session's end, after every worker.
- The script (`main`) is a Harness of its part: the baseline first (the shared record every worker reads), then
  each planned switch, each judgement published as it is made (the verdicts of the items it performed under it).
- A worker's Harness (`Harness(background=...)`) reads both parts of a planned judgement when a test asks for it,
  waiting if they are not made yet, and performs only the items a background answered with an infrastructure
  error (a starved request past its deadline is no verdict). An unplanned judgement (other items, a subset) is
  made in the worker as before.
A background that dies or reports an error makes the waiting test fail with its log, never a silent fallback.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLAN = "plan.json"
BACKGROUND_PARTS = ("unpaced", "paced")  # tests/harness.py Harness.part_of
NICE = {"unpaced": 19, "paced": 0}
POLL_S = 0.05
# how long a test waits for one publication: the whole matrix takes about two minutes on an idle 2-core machine,
# so a background still alive but silent for this long is stuck, and the test fails with its log, not a hang
WAIT_S = 900.0
# the matrix tests and how each asks for its switch's judgement (tests/test_deviations.py, tests/test_snapshots.py):
# a deviation compares shapes when it drifts (Harness.judge's default), a conformant switch when it compares them
MATRIX_TESTS = {
    "tests/test_deviations.py::test_deviation_fails_and_warns_exactly_its_cases": "deviation",
    "tests/test_deviations.py::test_conformant_switch_passes_every_case": "conformant",
}
SHAPES_TESTS = {"tests/test_snapshots.py::test_text_only_change_is_no_drift": "other-text"}


def plan_for(nodeids: list[str]) -> list[tuple[str, bool]]:
    """The (switch, shapes compared) judgements the collected tests will ask for, in their order."""
    from conformance.gateway.behaviours import switches

    known = switches()
    plan: list[tuple[str, bool]] = []
    for nodeid in nodeids:
        function, _, param = nodeid.partition("[")
        name = param.rstrip("]")
        if function in MATRIX_TESTS and name in known:
            switch = known[name]
            shapes = switch.drifts is not None if MATRIX_TESTS[function] == "deviation" else switch.compares_shapes
        elif nodeid in SHAPES_TESTS:
            name, shapes = SHAPES_TESTS[nodeid], True
        else:
            continue
        if (name, shapes) not in plan:
            plan.append((name, shapes))
    return plan


def record_name(switch: str, full: bool, shapes: bool, part: str) -> str:
    return f"judged-{switch}-{int(full)}-{int(shapes)}-{part}.pickle"


@dataclass
class Published:
    """A switch's judgement as the background made it: the verdicts of the items it performed under the switch
    (the baseline's stand for the rest) and how many it performed."""

    verdicts: dict[str, Any]
    performed: int


def log_of(folder: Path, part: str) -> Path:
    return folder / f"log-{part}.txt"


def start(folder: Path, plan: list[tuple[str, bool]]) -> list[subprocess.Popen[bytes]]:
    """The background processes for this plan, one per part at its priority, their output in folder/log-*.txt;
    none for an empty plan."""
    if not plan:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for part in BACKGROUND_PARTS:
        with log_of(folder, part).open("wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(folder), part], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1],
                preexec_fn=lambda nice=NICE[part]: os.setpriority(os.PRIO_PROCESS, 0, nice)))
    partial = folder / f"{PLAN}.partial"
    partial.write_text(json.dumps({"pids": dict(zip(BACKGROUND_PARTS, (p.pid for p in procs), strict=True)),
                                   "plan": plan}))
    partial.replace(folder / PLAN)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the backgrounds (their gateways close on SIGTERM), each killed if it does not end in 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class BackgroundMatrix:
    """A worker's view of the background's publications in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        data = json.loads((folder / PLAN).read_text())
        self.pids: dict[str, int] = data["pids"]
        self.planned = {(name, bool(shapes)) for name, shapes in data["plan"]}

    @classmethod
    def at(cls, folder: Path) -> BackgroundMatrix | None:
        return cls(folder) if (folder / PLAN).exists() else None

    def _alive(self, part: str) -> bool:
        try:
            with open(f"/proc/{self.pids[part]}/stat") as fh:
                return fh.read().rsplit(") ", 1)[-1].split()[0] != "Z"
        except OSError:
            return False

    def wait_for(self, path: Path, part: str) -> Any:
        """The unpickled publication at `path` (the backgrounds' folder, or the baseline's share), once the
        background of `part` has made it."""
        name, failed = path.name, path.with_name(f"{path.name}.error")
        deadline = time.monotonic() + WAIT_S
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the background matrix ({part}) published no {name} in {WAIT_S:.0f} s:\n"
                                   + log_of(self.folder, part).read_text(errors="replace")[-4000:])
            if failed.exists():
                raise RuntimeError(f"the background matrix failed on {name}:\n{failed.read_text()[-4000:]}")
            if not self._alive(part) and not path.exists():
                log = log_of(self.folder, part).read_text(errors="replace")[-4000:]
                raise RuntimeError(f"the background matrix ({part}, pid {self.pids[part]}) ended before publishing "
                                   f"{name}:\n{log}")
            time.sleep(POLL_S)
        return pickle.loads(path.read_bytes())

    def judgement(self, switch: str, full: bool, shapes: bool) -> Published | None:
        """Both parts of the backgrounds' judgement of the switch (one with shapes compared serves one
        without), None if it is not planned."""
        for compared in (True, shapes):
            if (switch, compared) in self.planned:
                parts = [self.wait_for(self.folder / record_name(switch, full, compared, part), part)
                         for part in BACKGROUND_PARTS]
                return Published({test: v for p in parts for test, v in p.verdicts.items()},
                                 sum(p.performed for p in parts))
        return None


def publish(folder: Path, name: str, value: Any) -> None:
    partial = folder / f"{name}.partial"
    partial.write_bytes(pickle.dumps(value))
    partial.replace(folder / name)


def _end_with_parent() -> None:
    """A background whose session died (the pytest process killed) ends too, closing its gateways."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def main(folder: Path, part: str) -> int:
    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    _end_with_parent()
    from conftest import preload_client_sdks  # type: ignore[import-not-found]
    from harness import FULL_MATRIX_ENV, Harness  # type: ignore[import-not-found]

    from conformance.gateway.behaviours import switches

    preload_client_sdks()
    while not (folder / PLAN).exists():  # written by `start` just after it started this process
        time.sleep(POLL_S)
    plan = json.loads((folder / PLAN).read_text())["plan"]
    full = os.environ.get(FULL_MATRIX_ENV) == "1"
    harness = Harness(share=folder.parent / "harness-baseline", part=part)
    try:
        harness.baseline()
        print(f"{time.time():.2f} baseline", flush=True)
        known = switches()
        for name, shapes in plan:
            record = record_name(name, full, shapes, part)
            try:
                judged = harness.judge(known[name], full=full, shapes=shapes)
                fresh = {test: verdict for test, verdict in judged.verdicts.items() if full or test in judged.applied}
                publish(folder, record, Published(fresh, judged.performed))
                print(f"{time.time():.2f} {record}: {judged.performed} performed", flush=True)
            except Exception:  # the waiting test fails with it; the other switches go on
                (folder / f"{record}.error").write_text(traceback.format_exc())
    finally:
        with contextlib.suppress(Exception):
            harness.close()
        sys.stdout.flush()
    # everything is published and the gateways are closed: no atexit callback (the media file server's shutdown
    # waits for its thread, which at nice 19 may get no CPU for a while) can hold the session's end
    os._exit(0)


if __name__ == "__main__":  # by its module name, so that what it pickles names this module, not __main__
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from background_matrix import main as background_main  # type: ignore[import-not-found]

    sys.exit(background_main(Path(sys.argv[1]), sys.argv[2]))
