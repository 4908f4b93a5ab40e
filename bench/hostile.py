"""The hostile-target table: one whole `conformance run` per mode of tests/hostile.py, every lane.

For each mode: wall time, the peak RSS of the suite's processes together (pytest, the read-ahead helpers, curl;
sampled every 50 ms), the exit status and the outcome counts. The self-tests (tests/test_hostile.py) assert
the bounds; this prints the figures, as the benchmark does for speed.

    python bench/hostile.py [--mode MODE ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile import MODES, HostileServer, Run, start_run, watch  # type: ignore[attr-defined]  # tests/hostile.py

SLOW_READS = {"huge": "30", "gzip-bomb": "30"}  # the default 32 MiB cap must be read before the deadline


def run_mode(mode: str, tmp: Path) -> Run:
    timeout = SLOW_READS.get(mode, "1")
    with HostileServer("canned") as other, HostileServer(mode, other=other.url) as server:
        proc, reports = start_run(tmp, server.url, "--timeout", timeout, "--html", "none")
        return watch(proc, reports, 600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=[m for m in MODES if m != "canned"])
    parser.add_argument("--json", action="store_true", help="one JSON row per mode instead of the table")
    args = parser.parse_args()
    rows = []
    for mode in args.mode or [m for m in MODES if m != "canned"]:
        with tempfile.TemporaryDirectory() as tmp:
            row = run_mode(mode, Path(tmp)).row(mode)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print("| mode | wall | peak RSS | exit | outcomes |")
        print("| --- | ---: | ---: | ---: | --- |")
        for row in rows:
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted(row["outcomes"].items())) or "-"
            print(f"| {row['mode']} | {row['wall_s']} s | {row['peak_rss_mb']} MB | {row['exit']} | {outcomes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
