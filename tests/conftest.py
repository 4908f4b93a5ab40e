"""Self-test helpers: run the real `conformance` CLI in-process and read what it wrote."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from background_matrix import MATRIX_TESTS, SHAPES_TESTS, plan_for
from hostile import WAITING_MODES

from conformance.cli import main
from conformance.known_valid import CACHE_ENV

# CONFORMANCE_BACKGROUND_MATRIX=0: every process judges its own switches (no background process)
BACKGROUND_ENV = "CONFORMANCE_BACKGROUND_MATRIX"


@dataclass
class RunResult:
    code: int
    out: str
    err: str
    reports: Path

    @property
    def run_dir(self) -> Path:
        """The run's folder: reports/latest when the run judged something (it is not moved otherwise)."""
        latest = self.reports / "latest"
        if latest.exists():
            return latest.resolve()
        folders = sorted(p for p in self.reports.iterdir() if p.is_dir() and not p.is_symlink())
        assert folders, f"no run folder under {self.reports}"
        return folders[-1]

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())

    def outcomes(self) -> dict[str, str]:
        """test id (case@model) -> outcome"""
        return {
            f"{c['id']}@{c['model']}" if c["model"] else c["id"]: c["outcome"] for c in self.summary["cases"]
        }

    def with_outcome(self, outcome: str) -> set[str]:
        return {k for k, v in self.outcomes().items() if v == outcome}


CREDENTIAL_VARIABLES = ("GATEWAY_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_FILE",
                        "CONFORMANCE_REFERENCE_TOKEN")


def cli_arguments(reports: Path, args: tuple[str, ...], lean: bool, html: str = "builtin") -> list[str]:
    """`conformance run ARGS` as the self-tests run it: its own reports folder, no xdist and one request at a time
    unless ARGS say otherwise (the reference gateway answers at once: threads only add GIL contention), and the
    built-in HTML page unless ARGS or `html` name another mode: Allure's HTML (node, about 2.5 s of CPU a run) is
    made where a test reads it or runs as a user does (`html="auto"`, the default of `conformance run`).
    lean: no HTML and no Allure results: the verdict-only run (reports have tests of their own)."""
    argv = list(args)
    head = ["run", "--reports", str(reports)]
    if "--html" not in argv and not lean and html != "auto":
        head += ["--html", html]
    if "-n" not in argv:
        head += ["-n", "0"]
    if argv and argv[0] == "run":
        argv = argv[1:]
    if "--concurrency" not in argv:
        head += ["--concurrency", "1"]
    if lean:
        head += ["--html", "none"]
        argv += ["--", "-p", "no:allure_pytest"] if "--" not in argv else ["-p", "no:allure_pytest"]
    return head + argv


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., RunResult]:
    """`conformance run ARGS` in this process, with its own reports folder and a clean environment."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, env: dict[str, str] | None = None, lean: bool = False, html: str = "builtin") -> RunResult:
        reports = tmp_path / f"reports-{len(list(tmp_path.iterdir()))}"
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(cli_arguments(reports, args, lean, html))
        monkeypatch.delenv("CONFORMANCE_REFERENCE_TOKEN", raising=False)
        captured = capsys.readouterr()
        return RunResult(code, captured.out, captured.err, reports)

    return run


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., RunResult]:
    """`conformance run ARGS` performed once for the whole `pytest tests` session, whichever test asks first and in
    whichever xdist worker: tests that only read what one run wrote (its console, summary and reports) share it
    instead of each starting the same run. The first test to ask runs it (under a file lock in the basetemp that
    every worker shares); the others wait for it and read its record. Readers must not change the run folder
    (copy it first). A run's arguments and environment name it: the same arguments are the same run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = tmp_path_factory.getbasetemp()
    root = (root.parent if worker else root) / "shared-runs"
    root.mkdir(exist_ok=True)

    def run(*args: str, env: dict[str, str] | None = None, lean: bool = False) -> RunResult:
        key = hashlib.sha256(json.dumps([args, sorted((env or {}).items()), lean]).encode()).hexdigest()[:16]
        folder = root / key
        with (root / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            record = folder / "result.json"
            if not record.exists():
                folder.mkdir(exist_ok=True)
                result = _run_isolated(folder / "reports", args, env or {}, lean)
                record.write_text(json.dumps({"code": result.code, "out": result.out, "err": result.err}))
            data = json.loads(record.read_text())
        return RunResult(data["code"], data["out"], data["err"], folder / "reports")

    return run


def _run_isolated(reports: Path, args: tuple[str, ...], env: dict[str, str], lean: bool) -> RunResult:
    """run_cli's run outside a test's fixtures: the same clean environment, its own capture of the console."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in CREDENTIAL_VARIABLES:
            patch.delenv(name, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(cli_arguments(reports, args, lean))
    return RunResult(code, out.getvalue(), err.getvalue(), reports)


def compile_sources() -> None:
    """The suite's and the self-tests' modules compiled once, before the session's processes start. Where
    PYTHONDONTWRITEBYTECODE is set (the machines CI runs on set it), no import writes a .pyc, so each of the
    session's hundred-odd Python processes (xdist workers, nested runs and their workers, whole runs in a
    subprocess, forkservers, the background matrix) compiled the same 26,000 lines again (up to 0.3 s of CPU each).
    The installed packages were compiled when pip installed them; the .pyc go where Python puts them (in
    __pycache__, ignored by git), and compileall rewrites only those older than their source."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in ("conformance", "tests"):
        compileall.compile_dir(root / folder, quiet=1, workers=1)


@pytest.hookimpl(trylast=True)  # after the tmp_path plugin's: the basetemp is known
def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the session's first process, before it starts any other
        compile_sources()
    # every process of the session (the xdist workers, nested runs, their workers) shares one record of the case
    # data known valid (conformance/known_valid.py), in the basetemp: never the user's own
    os.environ.setdefault(CACHE_ENV, str(config._tmp_path_factory.getbasetemp() / "known-valid"))
    preload_client_sdks()


def preload_client_sdks() -> None:
    """The read-ahead helpers of every run this process performs are forked from one forkserver
    (pacing.helper_context), which outlives the runs: it is made to import the official clients' SDKs too, once,
    instead of each run's client lanes importing theirs again (anthropic, openai, google-genai and the databricks
    SDK are about 4 s of CPU, and a pytest process performs dozens of runs). A user's `conformance run` is one run
    per process, where each lane importing its own SDK on its own core is quicker, so the product keeps that."""
    from conformance import pacing
    from conformance.clients import RUNNERS
    from conformance.gateway.server import GATEWAY_PRELOAD

    if GATEWAY_PRELOAD not in pacing.HELPER_PRELOAD:  # the gateways the runs and the harness start are forks too
        pacing.HELPER_PRELOAD.append(GATEWAY_PRELOAD)

    for runner in RUNNERS.values():
        if runner.unavailable() is None:
            pacing.HELPER_PRELOAD.extend(m for m in runner.modules if m not in pacing.HELPER_PRELOAD)


# test files whose tests share one module-scoped run (or installed wheel): each file is one unit of work, so the
# module's fixture is made once, not once in each worker
MODULE_RUN_FILES = ("test_target_headers.py", "test_installed.py", "test_html_browser.py")
# tests that share one module-scoped fixture made of several performances at once: one unit of work, so that it is
# made once, in one worker (the switches' judgements are the background matrix's, read by either worker)
JUDGED_TOGETHER = {
    # the hostile modes that only wait for their deadline, side by side in the first of them (tests/hostile.py)
    **{f"tests/test_hostile.py::test_every_lane_ends_on_time_with_the_right_outcome[{mode}]": "waiting-lanes"
       for mode in WAITING_MODES},
}
# the tests that read the whole hostile runs, all performed at once by the first of them (test_hostile.whole_runs)
WHOLE_RUN_TESTS = tuple(f"tests/test_hostile.py::{name}" for name in (
    "test_a_huge_answer_or_gzip_bomb_leaves_the_whole_suite_under_1_gb", "test_json_nested_100000_deep",
    "test_an_endless_stream_ends_the_run", "test_a_hostile_preflight_ends_the_run", "test_echoed_credentials",
    "test_the_circuit_breaker", "test_a_signal_ends_the_run", "test_a_signal_during_the_preflight",
    "test_helpers_exit_when"))
# The longest tests (CPU or wall seconds; `python bench/selftest_cpu.py` measures them), longest first: they are
# collected first, so xdist hands them out first and no long test starts when the other worker has nothing left
# (under `-n 2` the wall time is at least the longest test, and about half the CPU seconds otherwise). Prefixes of
# node ids; a name that no longer matches only loses its place.
LONGEST_FIRST = (
    "tests/test_reference_run.py::test_reference_gateway_passes_every_case",
    "tests/test_secrets.py::test_token_is_nowhere_in_run_outputs[bearer]",
    "tests/test_faults.py::test_faults_and_rate_limit_never_become_failures",
    "tests/test_faults.py::test_rate_limit_is_learnt_from_429s",
    "tests/test_helper.py::test_helper_lanes_give_the_inline_verdicts",
    "tests/test_faults.py::test_max_rps_is_a_global_ceiling",
    "tests/test_secrets.py::test_token_is_nowhere_in_run_outputs[basic]",
    "tests/test_hostile.py::test_every_lane_ends_on_time_with_the_right_outcome[deep-600]",
    "tests/test_snapshots.py::test_snapshot_update_under_xdist",
    "tests/test_secrets.py::test_reference_run_token_is_nowhere",
    "tests/test_helper.py::test_token_budget_is_one_budget_for_every_lane",
)
# The tests that read the background matrix's judgements (tests/background_matrix.py) and its baseline come last:
# by then the background has had the whole session's idle CPU to make them, and they only wait for the rest
READ_THE_MATRIX = (*MATRIX_TESTS, *SHAPES_TESTS, "tests/test_deviations.py::test_the_baseline_passes_every_item",
                   "tests/test_background_matrix.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (LONGEST_FIRST), the matrix's readers last (READ_THE_MATRIX), every other test in
    its collected order. The order is a schedule, never a dependency: each test makes or asks for what it reads
    (shared_run, the harness)."""
    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(READ_THE_MATRIX):
            return len(LONGEST_FIRST) + 1
        return next((n for n, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep pytest's order


def _session_root(config: pytest.Config) -> Path:
    """The basetemp every process of the session shares (a worker's own is a folder in it)."""
    root = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def _start_background_matrix(config: pytest.Config, nodeids: list[str]) -> None:
    """The background matrix of the collected tests, once per session (tests/background_matrix.py)."""
    import background_matrix

    if os.environ.get(BACKGROUND_ENV) == "0" or hasattr(config, "_background_matrix"):
        return
    config._background_matrix = background_matrix.start(  # type: ignore[attr-defined]
        _session_root(config) / "matrix", plan_for(nodeids))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the controller learns what its workers collected
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    _start_background_matrix(node.config, ids)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist, this process starts the background matrix (under xdist, the controller does)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") and session.config.getoption("dist", "no") == "no":
        _start_background_matrix(session.config, [item.nodeid for item in session.items])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The background matrix ends with the process that started it, after every test (and every worker)."""
    import background_matrix

    background_matrix.stop(getattr(config, "_background_matrix", []))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (xdist's default `load` distribution): each file of MODULE_RUN_FILES is one unit of work, so is
    each group of JUDGED_TOGETHER and the whole hostile runs (WHOLE_RUN_TESTS), and every other test goes to
    whichever worker is free, one by one, in the collected order (pytest_collection_modifyitems: the units in
    the place of their first test, not xdist's largest units first, which would start every whole hostile run
    at once beside the paced streams the background matrix times at the session's start). (xdist's own
    `loadgroup` marks do not group under pytest 9's node ids.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleRunsTogether(LoadScopeScheduling):
        def schedule(self) -> None:
            self.config.option.loadscopereorder = False  # the collected order, units where their first test is
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            if nodeid in JUDGED_TOGETHER:
                return f"judged:{JUDGED_TOGETHER[nodeid]}"
            if nodeid.startswith(WHOLE_RUN_TESTS):
                return "whole-hostile-runs"
            file = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            return file if file in MODULE_RUN_FILES else nodeid

    return ModuleRunsTogether(config, log)


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The in-process judging harness (tests/harness.py): its reference gateways per pytest process (per xdist
    worker), its baseline performed once for the whole `pytest tests` session (by the background matrix, or by
    whichever worker asks first, in the basetemp every worker shares) and read by every switch judged in any
    process; the matrix's judgements are the background's (tests/background_matrix.py) when it planned them."""
    from harness import Harness

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    judge = Harness(share=root / "harness-baseline", background=root / "matrix")
    try:
        yield judge
    finally:
        judge.close()
