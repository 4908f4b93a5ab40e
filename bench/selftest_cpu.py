"""Benchmark: where the self-tests' CPU goes, test by test (`pytest tests -n 2` is CPU-bound on a 2-core machine, so
its idle wall time is about its CPU seconds / 2, plus whatever the longest test adds at the end).

Runs `pytest tests -n 2` (or the pytest arguments given) with a small plugin in every process that charges each test
the CPU seconds (user + system) of its pytest process and of the child processes it waited for during the test (a
nested run's gateway, helpers and xdist workers, curl, chromium, pip); a session fixture's processes (the harness's
gateway) are charged to the process's `session` line. Prints the slowest tests by CPU, the totals per file, the
sum, and the wall time. CPU seconds hardly depend on what else the machine runs; wall time does.

    python bench/selftest_cpu.py [--top 40] [PYTEST ARGS...]      (default: tests -n 2)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OUT_ENV = "SELFTEST_CPU_OUT"
TICK = os.sysconf("SC_CLK_TCK")


def _live_children_cpu(pid: int) -> float:
    """CPU seconds of the live descendants of `pid` (their own and that of the children they waited for)."""
    total = 0.0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = [int(k) for k in children.read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                fields = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15]) / TICK + _live_children_cpu(kid)
    return total


def _cpu() -> tuple[float, float]:
    """(this process, its children: those it waited for and the live ones, e.g. a session fixture's gateway)"""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime + _live_children_cpu(os.getpid())


class _Recorder:
    """The plugin: one JSON line per test (and one for the rest of the process) into $SELFTEST_CPU_OUT/<pid>.jsonl."""

    def __init__(self, folder: Path, controller: bool) -> None:
        self.file = (folder / f"{os.getpid()}.jsonl").open("a", encoding="utf-8")
        self.controller = controller  # xdist's controller: its children are the workers, which count themselves
        self.charged = self.charged_children = 0.0

    def write(self, test: str, own: float, children: float, wall: float) -> None:
        self.file.write(json.dumps({"test": test, "own": own, "children": children, "wall": wall}) + "\n")
        self.file.flush()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        wall, (own, children) = time.perf_counter(), _cpu()
        yield
        after = _cpu()
        self.charged += after[0] - own
        self.charged_children += after[1] - children
        self.write(item.nodeid, after[0] - own, after[1] - children, time.perf_counter() - wall)

    def pytest_unconfigure(self) -> None:
        own, children = _cpu()
        self.write("session", own - self.charged, 0.0 if self.controller else children - self.charged_children,
                   0.0)
        self.file.close()


def pytest_configure(config: pytest.Config) -> None:
    folder = os.environ.get(OUT_ENV)
    if folder and not config.pluginmanager.has_plugin("selftest-cpu-recorder"):
        controller = not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))
        config.pluginmanager.register(_Recorder(Path(folder), controller), "selftest-cpu-recorder")


def report(folder: Path, top: int) -> float:
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    tests = [r for r in rows if r["test"] != "session"]
    total = sum(r["own"] + r["children"] for r in rows)
    print(f"{'cpu s':>7} {'own':>6} {'child':>6} {'wall s':>7}  test (slowest {top} by CPU)")
    for r in sorted(tests, key=lambda r: -(r["own"] + r["children"]))[:top]:
        print(f"{r['own'] + r['children']:7.1f} {r['own']:6.1f} {r['children']:6.1f} {r['wall']:7.1f}  {r['test']}")
    per_file: dict[str, float] = defaultdict(float)
    for r in rows:
        per_file[r["test"].split("::")[0]] += r["own"] + r["children"]
    print("\ncpu s per file (session: what no test was charged with: start-up, collection, session fixtures)")
    for name, cpu in sorted(per_file.items(), key=lambda kv: -kv[1]):
        print(f"{cpu:7.1f}  {name}")
    longest = max(tests, key=lambda r: r["wall"]) if tests else None
    print(f"\n{len(tests)} tests, {total:.1f} CPU s in the pytest processes and their children")
    if longest:
        print(f"longest test: {longest['wall']:.1f} s wall  {longest['test']}")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=40)
    args, pytest_args = parser.parse_known_args()
    pytest_args = pytest_args or ["tests", "-n", "2"]
    with tempfile.TemporaryDirectory(prefix="selftest-cpu-") as folder:
        env = {**os.environ, OUT_ENV: folder,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        code = subprocess.run([sys.executable, "-m", "pytest", "-p", "selftest_cpu", "-q", *pytest_args],
                              env=env).returncode
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - started
        print()
        report(Path(folder), args.top)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        load = os.getloadavg()
        print(f"whole command: {cpu:.1f} CPU s (user + sys), {wall:.1f} s wall, load average now "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, pytest exit {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
