"""Benchmark: the CPU of every process of a `pytest tests -n 2` session, by kind, sampled from /proc.

bench/selftest_cpu.py charges each test what its pytest process and the children it waited for spent; it cannot
see the processes nobody waits for during a test: the background matrix (tests/background_matrix.py) and the
gateways it forks, the forkservers' gateways and read-ahead helpers, a module fixture's servers. On a 2-core
machine the session is CPU-bound, so its wall time is about the sum of all of them / 2: this script shows that
sum, and where it goes, to say what a wall-time target asks for.

Runs `pytest tests -n 2` (or the pytest arguments given) and reads /proc every 0.25 s: every process descended
from it, its CPU seconds (user + system) and what it is. A process's last quarter second, and a process that lives
shorter than that (a curl), are missed. Linux only.

    python bench/selftest_processes.py [PYTEST ARGS...]      (default: tests -n 2)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PERIOD_S = 0.25


@dataclass
class Seen:
    cmd: str
    parent: int
    cpu: float = 0.0


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return "?"


def sample(root: int, seen: dict[tuple[int, int], Seen], starts: dict[int, int]) -> None:
    """One look at every process in root's tree. Keyed by (pid, start tick): a pid may be reused."""
    parents: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat
    tree = {root}
    changed = True
    while changed:  # the descendants of root, however deep
        changed = False
        for pid, (parent, _) in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    for pid in tree:
        if pid not in parents:
            continue
        if pid not in starts:
            try:
                starts[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
            except (OSError, IndexError):
                continue
        key = (pid, starts[pid])
        record = seen.get(key)
        if record is None:
            record = seen[key] = Seen(_command(pid), parents[pid][0])
        record.cpu = parents[pid][1]


def kind(pid: int, seen: dict[int, Seen], root: int) -> str:
    """What a process is, told by its command line and its ancestors'."""
    record = seen[pid]
    ancestors = []
    parent = record.parent
    while parent in seen and parent != root:
        ancestors.append(seen[parent].cmd)
        parent = seen[parent].parent
    under_matrix = any("background_matrix.py" in cmd for cmd in [record.cmd, *ancestors])
    xdist = "sys.stdin.readline" in record.cmd  # execnet's bootstrap: an xdist worker
    if pid == root:
        return "pytest (the xdist controller)"
    if under_matrix:
        return "background matrix" if "background_matrix.py" in record.cmd else \
            "background matrix: its gateways (forked)"
    if xdist:
        return "outer xdist workers" if record.parent == root else "nested runs: xdist workers"
    if "multiprocessing.forkserver" in record.cmd or "multiprocessing.resource_tracker" in record.cmd:
        nested = any("-m conformance" in cmd or "conformance run" in cmd for cmd in ancestors) \
            or sum("sys.stdin.readline" in cmd for cmd in ancestors) > 1
        return ("nested runs: their gateways and read-ahead helpers (forked)" if nested
                else "outer workers: their gateways and read-ahead helpers (forked)")
    if "-m conformance" in record.cmd or "/bin/conformance" in record.cmd:
        return "`conformance` subprocesses (hostile whole runs, config, installed)"
    for needle, name in (("allure", "node: Allure"), ("node", "node: other (Portkey, loopback)"),
                         ("chromium", "chromium"), ("pip", "pip (the installed-suite test)"),
                         ("curl", "curl")):
        if needle in record.cmd:
            return name
    return "other"


def main() -> int:
    pytest_args = sys.argv[1:] or ["tests", "-n", "2"]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", *pytest_args])
    seen: dict[tuple[int, int], Seen] = {}
    starts: dict[int, int] = {}
    while proc.poll() is None:
        sample(proc.pid, seen, starts)
        time.sleep(PERIOD_S)
    wall = time.perf_counter() - started
    latest = {pid: record for (pid, _), record in sorted(seen.items(), key=lambda kv: kv[0][1])}
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for (pid, _), record in seen.items():
        name = kind(pid, latest, proc.pid)
        totals[name][0] += record.cpu
        totals[name][1] += 1
    everything = sum(cpu for cpu, _ in totals.values())
    print(f"\n{'cpu s':>7} {'share':>6} {'procs':>5}  kind")
    for name, (cpu, count) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"{cpu:7.1f} {100 * cpu / everything:5.1f}% {int(count):5d}  {name}")
    cores = os.cpu_count() or 1
    print(f"\n{everything:.1f} CPU s in {len(seen)} processes, {wall:.1f} s wall on {cores} cores "
          f"({everything / cores:.1f} s of all cores' time); pytest exit {proc.returncode}")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
