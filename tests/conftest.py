"""Self-test helpers: run the real `conformance` CLI in-process and read what it wrote."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main


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


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., RunResult]:
    """`conformance run ARGS` in this process, with its own reports folder and a clean environment."""
    for name in ("GATEWAY_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_FILE",
                 "CONFORMANCE_REFERENCE_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, env: dict[str, str] | None = None, lean: bool = False) -> RunResult:
        """lean: no HTML and no Allure results, one request at a time: the verdict-only run the deviation
        matrix repeats dozens of times (reports have tests of their own)."""
        reports = tmp_path / f"reports-{len(list(tmp_path.iterdir()))}"
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        argv = list(args)
        head = ["run", "--reports", str(reports)]
        if "-n" not in argv:
            head += ["-n", "0"]
        if argv and argv[0] == "run":
            argv = argv[1:]
        if "--concurrency" not in argv:
            head += ["--concurrency", "1"]  # the reference gateway answers at once: threads only add GIL contention
        if lean:
            head += ["--html", "none"]
            argv += ["--", "-p", "no:allure_pytest"] if "--" not in argv else ["-p", "no:allure_pytest"]
        code = main(head + argv)
        monkeypatch.delenv("CONFORMANCE_REFERENCE_TOKEN", raising=False)
        captured = capsys.readouterr()
        return RunResult(code, captured.out, captured.err, reports)

    return run


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")


# the test files that judge through the harness (the `harness` fixture): one xdist worker runs them all
HARNESS_FILES = ("test_deviations.py", "test_helper.py", "test_new_case.py", "test_reference_run.py",
                 "test_snapshots.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (xdist's default `load` distribution): the harness's test files are one unit of work, so one
    worker performs the baseline and loads the client SDKs once, while the other tests go to whichever worker
    is free, one by one. (xdist's own `loadgroup` marks do not group under pytest 9's node ids.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class HarnessFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "harness" if nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in HARNESS_FILES else nodeid

    return HarnessFilesTogether(config, log)


@pytest.fixture(scope="session")
def harness() -> Iterator[Any]:
    """The in-process judging harness (tests/harness.py): one reference gateway per pytest process (per xdist
    worker), its baseline performed once and shared by every switch judged in the process."""
    from harness import Harness

    judge = Harness()
    try:
        yield judge
    finally:
        judge.close()
