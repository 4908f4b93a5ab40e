"""Benchmark: how close a full `conformance run` comes to the physical limit of a rate-limited, slow target.

Starts the reference gateway with latency L and rate limit R, runs the whole `conformance run` command with
default settings (no hand-set rate: the suite learns it from the 429s) and prints:
  N requests, wall time, the limit max(N / R, longest chain of dependent requests x L), efficiency = limit / wall;
  the suite's overhead per further case at zero latency (beyond the fixed cost of a run of one case of each
  kind: start-up, collection, each client SDK loaded); the same run sequential (-n 0 --concurrency 1) as the naive
  baseline; tokens per full run next to what the documented examples' max_tokens would spend.

    python bench/run.py [--latency 0.2] [--rate-limit 20] [--skip-baseline] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from orphans import adopt_orphans, reap_orphans

from conformance.cases import load_cases
from conformance.gateway.faults import STATS_PATH, FaultConfig
from conformance.gateway.server import GatewayProcess


def run_suite(url: str, token: str, extra: list[str], allowed: tuple[int, ...] = (0, 1),
              keep: frozenset[int] = frozenset()) -> tuple[float, float, dict[str, Any], int]:
    """(wall, CPU of the run's processes (the run and its helper processes, not the gateway), summary, exit)."""
    env = {**os.environ, "BENCH_TOKEN": token}
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "conformance", "run", "--url", url, "--token-env", "BENCH_TOKEN",
               "--reports", reports, *extra]
        started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        reap_orphans(keep)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        summary_path = Path(reports) / "latest" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"cases": []}
    if proc.returncode not in allowed:
        sys.exit(f"conformance run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, cpu, summary, proc.returncode


def measure(latency: float, rate: float | None, extra: list[str], allowed: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    token = "bench-" + secrets.token_hex(8)
    with GatewayProcess(token, faults=FaultConfig(latency_s=latency, rate_limit=rate)) as gateway:
        assert gateway.url
        keep = frozenset({gateway.pid}) if gateway.pid is not None else frozenset()
        wall, cpu, summary, code = run_suite(gateway.url, token, [*extra, "--html", "none"], allowed, keep)
        stats = httpx.get(gateway.url + STATS_PATH).json()
    needed = stats["requests"] - stats["throttled"]
    chain = max(len(case.steps) for case in load_cases())
    limit = max(needed / rate if rate else 0.0, chain * latency)
    return {"wall_s": wall, "cpu_s": cpu, "requests": needed, "throttled": stats["throttled"], "chain": chain,
            "limit_s": limit, "efficiency": limit / wall if wall else 0.0, "summary": summary, "code": code}


def one_case_per_kind() -> str:
    """A -k expression selecting one HTTP case and one client case of each official client."""
    from conformance.clientcases import load_client_cases

    chosen = [load_cases()[0].id]
    names: set[str] = set()
    for case in load_client_cases():
        if case.client.name not in names:
            names.add(case.client.name)
            chosen.append(case.id)
    return " or ".join(chosen)


def documented_values() -> dict[str, int]:
    """case id -> the documented output-token limit of its example, where the case asks for fewer (the case
    record's `documented` field; a thinking budget is part of the output limit, not added to it)."""
    from conformance.clientcases import load_client_cases

    found: dict[str, int] = {}
    for case in [*load_cases(), *load_client_cases()]:
        documented = case.documented
        limit = next((documented[k] for k in ("max_tokens", "max_output_tokens", "maxOutputTokens")
                      if k in documented), None)
        if limit:
            found[case.id] = limit
    return found


def documented_spend(summary: dict[str, Any]) -> int:
    """Completion tokens the run would have asked for with the documented examples' max_tokens: per executed
    case, its documented value where the case lowered it, else what it really spent."""
    documented = documented_values()
    total = 0
    for record in summary.get("cases", []):
        value = documented.get(record["id"])
        total += value if value else (record.get("usage") or {}).get("completion", 0)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rate-limit", type=float, default=20.0)
    parser.add_argument("--skip-baseline", action="store_true", help="skip the slow sequential baseline")
    parser.add_argument("--repeat", type=int, default=3, help="zero-latency runs to take the median of")
    args = parser.parse_args()
    adopt_orphans()

    # zero latency, the median of --repeat runs (a 2-core machine's timings vary by 10% from run to run)
    zeros = [measure(0.0, None, []) for _ in range(args.repeat)]
    # the fixed cost: start-up, collection, and one case of each kind (each client SDK is imported once)
    smalls = [measure(0.0, None, ["-k", one_case_per_kind()]) for _ in range(args.repeat)]
    zero = sorted(zeros, key=lambda m: m["wall_s"])[len(zeros) // 2]
    small = sorted(smalls, key=lambda m: m["wall_s"])[len(smalls) // 2]
    cases, few = len(zero["summary"]["cases"]), len(small["summary"]["cases"])
    per_case = (zero["wall_s"] - small["wall_s"]) / (cases - few)
    cpu_per_case = (statistics.median(m["cpu_s"] for m in zeros)
                    - statistics.median(m["cpu_s"] for m in smalls)) / (cases - few)
    spread = ", ".join(f"{m['wall_s']:.2f}" for m in zeros)
    print(f"zero latency : {cases} cases, {zero['requests']} requests in {zero['wall_s']:.2f}s (median of "
          f"{spread}; {1000 * zero['wall_s'] / cases:.2f} ms per case all-in); fixed cost {small['wall_s']:.2f}s "
          f"(start-up and {few} cases: one per kind, every client SDK loaded) -> overhead "
          f"{1000 * per_case:.2f} ms per further case; the suite's own processes spend "
          f"{1000 * cpu_per_case:.2f} ms of CPU per further case (the reference gateway's CPU not counted)")

    loaded = measure(args.latency, args.rate_limit, [])
    print(f"L={args.latency}s R={args.rate_limit}/s : N={loaded['requests']} requests "
          f"(+{loaded['throttled']} answered 429), wall {loaded['wall_s']:.2f}s, "
          f"limit max(N/R={loaded['requests'] / args.rate_limit:.2f}s, chain {loaded['chain']} x L) "
          f"= {loaded['limit_s']:.2f}s, efficiency {loaded['efficiency']:.2f}")
    if not args.skip_baseline:
        naive = measure(args.latency, args.rate_limit, ["-n", "0", "--concurrency", "1"])
        print(f"sequential baseline (-n 0 --concurrency 1): wall {naive['wall_s']:.2f}s, "
              f"efficiency {naive['efficiency']:.2f}")
    tokens = loaded["summary"]["tokens"]
    print(f"tokens per full run: {tokens['prompt']} prompt + {tokens['completion']} completion; "
          f"the documented max_tokens of the same cases would allow {documented_spend(loaded['summary'])} "
          f"completion tokens")


if __name__ == "__main__":
    main()
