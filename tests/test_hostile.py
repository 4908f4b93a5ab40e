"""A broken or hostile target can never hang the suite, exhaust its memory, crash it or leak the token.

Two levels, against tests/hostile.py:
- every mode x every lane, in this process (the suite's Runtime and judging path, as the helpers run them): an
  HTTP case with and without a stream, a negative case, one case of each official client, all at once; each
  ends within its bound and gets the outcome conformance/bounds.py and conformance/client.py define (the two
  modes that only wait for the deadline, hostile.WAITING_MODES, side by side: each still timed on its own);
- the real `conformance run` in a subprocess for what only a whole run shows: the memory of the suite's
  processes (pytest, the read-ahead helpers, curl) under a 300 MB answer and a gzip bomb, no exit 4 where a
  helper once crashed on pickling, the token in no file written and not on the console, the circuit breaker,
  signals, and helpers that exit with a killed parent.
Small timeouts keep it fast: --timeout 3 and two attempts (30 s where 32 MiB must be read: the default cap).
`python bench/hostile.py` prints the per-mode table (wall time, peak RSS, exit status, outcomes) of whole runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hostile import (
    HTTP_ONLY,
    PROFILE,
    SELECT,
    TOKEN,
    WAITING_MODES,
    HostileServer,
    Run,
    alive,
    leaks,
    start_run,
    tree,
    watch,
)

from conformance import cases as case_data
from conformance import clients
from conformance.client import RetryPolicy
from conformance.clientcases import load_client_cases
from conformance.config import TargetOptions, resolve_target
from conformance.evaluate import evaluate_client, evaluate_steps
from conformance.findings import outcome_of
from conformance.pacing import Pacer, TokenBudget
from conformance.redact import REDACTOR
from conformance.runner import Runtime

LIMIT_RSS = 1 << 30
RUN_BOUND_S = 150.0  # a whole run, start-up on a loaded 2-core machine included (the hangs were endless)
LANE_BOUND_S = 25.0  # every lane of one mode, at once
CASES = {"chat-system-and-user", "chat-stream-system-and-user", "chat-unknown-model"}
CLIENT_CASES = {"client-openai-chat-system-and-user", "client-openai-chat-stream", "client-anthropic-stream",
                "client-genai-stream", "client-databricks-sdk-query", "client-curl-chat-bearer"}


# --- every mode x every lane, in process ----------------------------------------------------------------------


def perform_all(tmp: Path, url: str, timeout: float) -> tuple[dict[str, tuple[str, str]], float]:
    """Each selected case on every lane at once: id@model -> (outcome, message), and the wall time. Judged as the
    test bodies judge (suite/bodies.py): findings, and the outcome their strengths make."""
    REDACTOR.add(TOKEN)
    (tmp / "hostile.yaml").write_text(PROFILE.format(url=url))
    target = resolve_target(TargetOptions(url=url, token_env="HOSTILE_TOKEN", target_file=str(tmp / "hostile.yaml"),
                                          timeout=timeout), {"HOSTILE_TOKEN": TOKEN})
    items = [("case", i) for i in case_data.expand(case_data.load_cases(), target) if i.case.id in CASES]
    items += [("client", i) for i in case_data.expand(load_client_cases(), target) if i.case.id in CLIENT_CASES]
    runtime = Runtime(target, Pacer(), TokenBudget(None), RetryPolicy.for_timeout(timeout, 2))

    def one(kind: str, item: case_data.CaseItem) -> tuple[str, str]:
        performed = runtime.perform(kind, item)
        if performed.skip:
            return "skipped", performed.skip
        if performed.infra:
            return "error", performed.infra
        findings = evaluate_steps(item, performed.exchange) if kind == "case" else evaluate_client(item, performed)
        return outcome_of(findings), REDACTOR.text("\n".join(f.text() for f in findings))

    for runner in clients.RUNNERS.values():
        runner.warm()  # importing the SDKs (the first test of a worker) is not part of any bound
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(len(items)) as pool:
            futures = {item.test_id: pool.submit(one, kind, item) for kind, item in items}
            results = {name: future.result() for name, future in futures.items()}
    finally:
        runtime.close()
    assert {name.split("@")[0] for name in results} == CASES | CLIENT_CASES
    return results, time.monotonic() - started


def expect(results: dict[str, tuple[str, str]], outcome: str, *needles: str, by_case: bool = False) -> None:
    """Every result has the outcome and one of the needles in its message. `by_case`: the broken rule takes the
    case's own strength (findings.CASE_RULES: a redirect, a 5xx on every attempt, a 501 instead of the expected
    status), so a case whose rule is `should` warns where a `must` case fails."""
    def wanted(name: str) -> str:
        if not by_case or outcome != "failed":
            return outcome
        return "failed" if STRENGTH[name.split("@")[0]] == "must" else "warned"

    wrong = {name: r for name, r in results.items() if r[0] != wanted(name) or not any(n in r[1] for n in needles)}
    assert not wrong, wrong


STRENGTH = {c.id: c.strength for c in (*case_data.load_cases(), *load_client_cases()) if c.id in CASES | CLIENT_CASES}


LANE_MODES = [
    # failed: the gateway broke the contract
    ("deep-600", 3, "failed", ("transport.json-depth",)),
    ("deep-100000", 3, "failed", ("transport.json-depth",)),
    ("huge", 60, "failed", ("transport.body-size",)),  # the default 32 MiB cap: read in full, one at a time
    ("gzip-bomb", 60, "failed", ("transport.body-size",)),
    ("invalid-utf8", 3, "failed", ("transport.utf-8",)),
    ("error-501", 3, "failed", ("HTTP 501",)),  # the status rule: the case's own strength (by_case)
    # error: infrastructure, never a verdict
    ("endless-sse", 3, "error", ("deadline of the exchange", "curl exit 28")),
    ("byte-per-second", 3, "error", ("deadline of the exchange", "curl exit 28")),
    # 4 s: each lane must have been answered before its deadline to name the 503s; on a starved 2-core machine
    # (load 6) the Databricks SDK lane, the slowest to build a request, once got no answer in 3 s and 1.5 s
    ("unavailable-503", 4, "error", ("HTTP 503", "503")),
    ("reset", 3, "error", ("connection error", "Connection", "curl exit 56", "reset")),
    ("retry-after-huge", 3, "error", ("429", "no turn")),
    ("retry-after-unparseable", 3, "error", ("429", "no turn")),
]


def perform_mode(tmp: Path, mode: str, timeout: float) -> tuple[dict[str, tuple[str, str]], float, int]:
    """Every lane of one mode against its own hostile server: the results, their wall time, the POSTs it got."""
    tmp.mkdir(parents=True, exist_ok=True)
    with HostileServer(mode) as server:
        results, wall = perform_all(tmp, server.url, timeout)
        return results, wall, server.count("POST")


@pytest.fixture(scope="module")
def waiting_lanes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, tuple[str, str]], float, int]]:
    timeouts = {mode: timeout for mode, timeout, _, _ in LANE_MODES}
    root = tmp_path_factory.mktemp("waiting-lanes")
    with ThreadPoolExecutor(len(WAITING_MODES)) as pool:
        futures = {mode: pool.submit(perform_mode, root / mode, mode, timeouts[mode]) for mode in WAITING_MODES}
        return {mode: future.result() for mode, future in futures.items()}


@pytest.mark.parametrize(("mode", "timeout", "outcome", "needles"), LANE_MODES, ids=[m[0] for m in LANE_MODES])
def test_every_lane_ends_on_time_with_the_right_outcome(tmp_path, request, mode, timeout, outcome, needles):
    if mode in WAITING_MODES:
        results, wall, posts = request.getfixturevalue("waiting_lanes")[mode]
    else:
        results, wall, posts = perform_mode(tmp_path, mode, timeout)
    assert wall < LANE_BOUND_S + (timeout if timeout > 3 else 0), f"{mode}: {wall:.1f} s"
    expect(results, outcome, *needles, by_case=mode == "error-501")
    if mode == "error-501":  # judged at once, never retried
        assert posts == len(results), f"{posts} POSTs for {len(results)} cases"
    if mode.startswith("retry-after"):  # beyond the cap or unparseable: the retries end at once
        assert posts <= len(results) + 2, f"{posts} POSTs for {len(results)} cases"
        why = "beyond the 30 s the suite waits" if mode == "retry-after-huge" else "neither seconds nor an HTTP date"
        http = [m for name, (_, m) in results.items() if not name.startswith("client-")]
        # the 429s cut the run's learnt rate too: a case may get no turn of it within its budget (no attempt)
        assert all((why in m and "after 1 attempt(s)" in m) or ("after 0 attempt(s)" in m and "no turn" in m)
                   for m in http), http


def test_a_5xx_on_every_attempt_is_the_gateways_failure_on_every_lane(tmp_path):
    with HostileServer("error-500") as server:
        results, _ = perform_all(tmp_path, server.url, 3)
    negative = results.pop("chat-unknown-model")  # a should case: a 500 for a bad request warns
    assert negative[0] == ("failed" if STRENGTH["chat-unknown-model"] == "must" else "warned"), negative
    assert "[status] HTTP 500, expected 4xx" in negative[1], negative
    expect(results, "failed", "transport.server-error", by_case=True)
    for name, (_, message) in results.items():
        assert "each of the 2 attempt(s)" in message and "hostile 500" in message, (name, message)


def test_a_redirect_fails_every_lane_and_is_never_followed(tmp_path):
    with HostileServer("canned") as other, HostileServer("redirect", other=other.url) as server:
        results, _ = perform_all(tmp_path, server.url, 3)
        followed = sum(other.requests.values())
    assert followed == 0, f"a client followed the redirect to another origin: {other.requests}"
    expect(results, "failed", "transport.redirect", by_case=True)
    for name, (_, message) in results.items():
        assert f"Location {other.url}" in message and "another origin" in message, (name, message)


# --- whole runs ---------------------------------------------------------------------------------------------
#
# Each whole run mostly waits (for its deadlines, a byte a second, a signal's moment), so they are all performed
# at once, each in a thread with its own hostile server and folder, by the module's first test that asks
# (`whole_runs`; conftest schedules the tests that read them as one unit); each test then asserts on its own.
# Every bound is still the run's own (its wall time from its start, the seconds after its signal).


def whole_run(tmp: Path, mode: str, *args: str, select: str = SELECT, **server: Any) -> Run:
    with HostileServer(mode, **server) as hostile:
        proc, reports = start_run(tmp, hostile.url, *args, select=select)
        return watch(proc, reports, RUN_BOUND_S + 30)


def sound(run: Run, *extra: Path) -> None:
    """What every whole run must hold: bounded, under 1 GB, no crash, no leak."""
    assert run.wall_s < RUN_BOUND_S, f"{run.wall_s:.1f} s"
    assert run.peak_rss < LIMIT_RSS, f"peak RSS {run.peak_rss >> 20} MB"
    assert run.code != 4 and "INTERNALERROR" not in run.out + run.err, (run.out + run.err)[-3000:]
    assert leaks(run, *extra) == []


def _reached(server: HostileServer, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while server.count("POST") < 2:
        assert time.monotonic() < deadline, "the run never reached the target"
        time.sleep(0.1)


def signalled(tmp: Path, sig: signal.Signals) -> tuple[Run, float, Path]:
    """A run sent `sig` once it reached a byte-a-second target: the run, the seconds it took after the signal."""
    with HostileServer("byte-per-second") as server:
        proc, reports = start_run(tmp, server.url, "--timeout", "60",
                                  select=f"{HTTP_ONLY} or client-openai-chat-stream")
        _reached(server)
        sent = time.monotonic()
        proc.send_signal(sig)
        run = watch(proc, reports, 60)
        return run, time.monotonic() - sent, reports


def signalled_in_preflight(tmp: Path) -> tuple[Run, float, Path]:
    """A SIGTERM while the preflight waits on a byte-a-second target."""
    with HostileServer("byte-per-second", preflight=False) as server:
        proc, reports = start_run(tmp, server.url, "--timeout", "60", select=HTTP_ONLY)
        deadline = time.monotonic() + 90
        while server.count("GET") + server.count("POST") < 1:  # its first request (the listing) is waiting
            assert time.monotonic() < deadline, "the preflight never reached the target"
            time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        run = watch(proc, reports, 60)
        return run, time.monotonic() - sent, reports


def helpers_left_by_a_killed_run(tmp: Path) -> tuple[set[int], list[int]]:
    """The helpers of a run killed while it waits on a byte-a-second target, and those still alive 10 s later."""
    with HostileServer("byte-per-second") as server:
        proc, _ = start_run(tmp, server.url, "--timeout", "60", select=f"{HTTP_ONLY} or client-curl-chat-bearer")
        _reached(server)
        helpers: set[int] = set()
        deadline = time.monotonic() + 30
        while len(helpers) < 3 and time.monotonic() < deadline:  # the HTTP lane, the curl lane, curl itself
            helpers |= set(tree(proc.pid)) - {proc.pid}
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [pid for pid in helpers if alive(pid)]:
            time.sleep(0.1)
    left = [pid for pid in helpers if alive(pid)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return helpers, left


def echoed(tmp: Path) -> tuple[Run, Run]:
    """The echo target recorded as a baseline, then compared with a changed answer (--timeout 30: the echo
    answers at once, and its proof is no deadline's)."""
    # the built-in page: Allure's HTML is made from the allure-results scanned here, and is itself scanned on
    # every lane by tests/test_secrets.py
    recorded = whole_run(tmp, "echo", "--timeout", "30", "--html", "builtin", "--snapshot-update", "--", "-vv")
    compared = whole_run(tmp, "echo", "--timeout", "30", "--html", "builtin", "--", "-vv", variant=2,
                         select=HTTP_ONLY)  # HTTP shapes
    return recorded, compared


BOMB_SELECT = f"{HTTP_ONLY} or client-openai-chat-stream or client-databricks-sdk-query"
WHOLE_RUNS: dict[str, Callable[[Path], Any]] = {
    "huge": lambda tmp: whole_run(tmp, "huge", "--timeout", "30", "--html", "none", select=SELECT),
    # every lane met the bomb in process above; here the inflaters of the HTTP lane and two client stacks
    "gzip-bomb": lambda tmp: whole_run(tmp, "gzip-bomb", "--timeout", "30", "--html", "none", select=BOMB_SELECT),
    "deep-100000": lambda tmp: whole_run(tmp, "deep-100000", "--html", "none", "--", "-vv",
                                         select=f"{HTTP_ONLY} or client-openai-chat-stream"),
    "endless-sse": lambda tmp: whole_run(tmp, "endless-sse", "--html", "none",
                                         select=f"{HTTP_ONLY} or client-openai-chat-stream"),
    **{f"preflight-{mode}": lambda tmp, mode=mode: whole_run(tmp, mode, "--html", "none", preflight=False)
       for mode in WAITING_MODES},
    "echo": echoed,
    "circuit-breaker": lambda tmp: whole_run(tmp, "unavailable-503", "--max-consecutive-errors", "3",
                                             "--html", "builtin", select="chat and not client"),
    "SIGTERM": lambda tmp: signalled(tmp, signal.SIGTERM),
    "SIGINT": lambda tmp: signalled(tmp, signal.SIGINT),
    "preflight-signal": signalled_in_preflight,
    "killed": helpers_left_by_a_killed_run,
}


@pytest.fixture(scope="module")
def whole_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Any]]:
    root = tmp_path_factory.mktemp("whole-runs")
    pool = ThreadPoolExecutor(len(WHOLE_RUNS), thread_name_prefix="whole-run")
    futures = {}
    for name, perform in WHOLE_RUNS.items():
        (root / name).mkdir()
        futures[name] = pool.submit(perform, root / name)
    pool.shutdown(wait=False)
    return futures


@pytest.mark.parametrize(("mode", "lanes"), [
    ("huge", {"openai", "anthropic", "genai", "databricks", "curl"}),
    ("gzip-bomb", {"openai", "databricks"}),
])
def test_a_huge_answer_or_gzip_bomb_leaves_the_whole_suite_under_1_gb(whole_runs, mode, lanes):
    run = whole_runs[mode].result()
    sound(run)
    assert run.code == 1
    assert set(run.counts()) == {"failed"}, run.counts()
    assert {c["id"].split("-")[1] for c in run.cases() if c["id"].startswith("client-")} == lanes


def test_json_nested_100000_deep_is_failed_not_a_crash_or_a_hang(whole_runs):
    """It once hung the run: pickling the answer in the helper raised RecursionError and no answer came."""
    run = whole_runs["deep-100000"].result()
    sound(run)
    assert run.code == 1
    assert set(run.counts()) == {"failed"}, run.counts()
    assert all("transport.json-depth" in c["message"] for c in run.cases())


def test_an_endless_stream_ends_the_run_on_time_with_exit_3(whole_runs):
    run = whole_runs["endless-sse"].result()
    sound(run)
    assert run.code == 3
    assert set(run.counts()) == {"error"}, run.counts()


def test_a_hostile_preflight_ends_the_run_in_seconds_with_exit_3(whole_runs):
    """The preflight meets the mode itself: its requests have the bounds of every case (and tighter), so the run
    ends on time with one line, judges nothing and leaves reports/latest alone."""
    for mode in WAITING_MODES:
        run = whole_runs[f"preflight-{mode}"].result()
        sound(run)
        assert run.code == 3, (mode, run.err[-2000:])
        assert run.wall_s < 45, f"{mode}: {run.wall_s:.1f} s"
        assert run.err.count("\n") == 1 and "could not be reached" in run.err, (mode, run.err)
        assert run.summary["cases"] == [] and "could not be reached" in run.summary["unreachable"]
        assert not (run.reports / "latest").exists()


def test_echoed_credentials_are_nowhere_in_snapshots_reports_or_console(whole_runs):
    """The token echoed into body strings, shape keys, enumerated values and response headers, on every lane:
    recorded as a baseline, then compared with a changed answer (drift lines naming the echoed key)."""
    recorded, compared = whole_runs["echo"].result()
    snapshots = recorded.reports.parent / "snapshots"
    for run in (recorded, compared):
        sound(run, snapshots)
    drift = [line for c in compared.cases() for line in c.get("snapshot", {}).get("drift", [])]
    assert any("***REDACTED***" in line for line in drift), drift
    assert "***REDACTED***" in "".join(p.read_text() for p in snapshots.rglob("*.json"))


def test_the_circuit_breaker_ends_the_run_with_exit_3_and_a_partial_summary(whole_runs):
    run = whole_runs["circuit-breaker"].result()
    sound(run)
    assert run.code == 3, run.err[-2000:]
    assert "circuit breaker: 3 consecutive infrastructure errors" in run.summary["aborted"]
    assert "circuit breaker" in run.err and str(run.run_dir) in run.err
    assert "! Interrupted" not in run.out, "said once, not again in pytest's terms"
    assert 3 <= len(run.cases()) < 15, len(run.cases())
    assert (run.run_dir / "summary.md").exists() and (run.run_dir / "conformance-report.yaml").exists()
    assert not (run.reports / "latest").exists(), "a partial run never becomes the next run's baseline"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_cleanly_with_a_partial_summary(whole_runs, sig):
    run, ended, reports = whole_runs[sig.name].result()
    assert run.code == 128 + sig, (run.code, run.err[-2000:])
    assert ended < 20, f"{ended:.1f} s after the signal"
    assert run.summary["interrupted"] == sig.name
    assert (run.run_dir / "summary.md").exists() and f"interrupted by {sig.name}" in run.err
    assert "KeyboardInterrupt" not in run.out + run.err and "Traceback" not in run.err
    assert not (reports / "latest").exists(), "a partial run never becomes the next run's baseline"
    time.sleep(1)
    assert not [pid for pid in run.pids if alive(pid)], "a helper outlived the run"
    assert leaks(run) == []


def test_a_signal_during_the_preflight_ends_the_run_at_once(whole_runs):
    """The handlers are in place before the first request: a SIGTERM while the preflight waits on a byte-a-second
    target is the same clean end (one line, a summary that says so, nothing judged), not a traceback."""
    run, ended, reports = whole_runs["preflight-signal"].result()
    assert run.code == 128 + signal.SIGTERM, (run.code, run.err[-2000:])
    assert ended < 20, f"{ended:.1f} s after the signal"
    assert "Traceback" not in run.err and run.err.count("\n") == 1 and "interrupted by SIGTERM" in run.err, run.err
    assert run.summary["interrupted"] == "SIGTERM" and run.summary["cases"] == []
    assert not (reports / "latest").exists()
    assert leaks(run) == []


def test_helpers_exit_when_the_main_process_is_killed(whole_runs):
    helpers, left = whole_runs["killed"].result()
    assert len(helpers) >= 2, helpers
    assert not left, f"{len(left)} process(es) outlived the killed main process"
