"""Benchmark: the self-tests' deviation/variation matrix through the in-process harness (tests/harness.py).

Prints, for the baseline and for every switch, the wall time, the CPU seconds of this process and of its
gateway processes (the lanes: a third judges the usage-only switches in the background, from the first switch
on, so their rows show only what was left to wait for), and how many items were performed (the items the switch
was applied to); then the totals, and the items the matrix would perform without the applied-items inference
(every item under every switch). The matrix is the self-tests' largest share of `pytest tests -n 2`.

    python bench/selftest_matrix.py [--switch NAME ...] [--full]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import Harness  # type: ignore[import-not-found]  # tests/harness.py

from conformance.gateway.behaviours import switches


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switch", action="append", default=[], help="only these switches (default: all)")
    parser.add_argument("--full", action="store_true", help="perform every item under every switch")
    args = parser.parse_args()
    chosen = [switches()[name] for name in args.switch] if args.switch else list(switches().values())
    harness = Harness()
    try:
        def gateways_cpu() -> float:
            pids = [lane.gateway.pid for lane in harness.lanes()]
            return sum(process_cpu(pid) for pid in pids if pid is not None)

        def measure(label: str, work: object) -> tuple[float, float, float, int]:
            wall, mine, gateway = time.perf_counter(), own_cpu(), gateways_cpu()
            performed = work() if callable(work) else 0
            row = (time.perf_counter() - wall, own_cpu() - mine, gateways_cpu() - gateway, performed)
            print(f"{label:40} wall {row[0]:7.2f} s  cpu {row[1]:6.2f} + gateway {row[2]:6.2f} s  "
                  f"performed {row[3]}", flush=True)
            return row

        base = measure("baseline", lambda: len(harness.baseline()))
        rows = [measure(s.name, lambda s=s: harness.judge(s, full=args.full).performed) for s in chosen]
        total = [sum(r[i] for r in rows) for i in range(4)]
        print(f"{'switches (' + str(len(rows)) + ')':40} wall {total[0]:7.2f} s  cpu {total[1]:6.2f} + gateway "
              f"{total[2]:6.2f} s  performed {total[3]} of {len(rows) * len(harness.items)}")
        print(f"{'baseline + switches':40} wall {base[0] + total[0]:7.2f} s  cpu {base[1] + total[1]:6.2f} + "
              f"gateway {base[2] + total[2]:6.2f} s  (load average {os.getloadavg()[0]:.1f})")
    finally:
        harness.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
