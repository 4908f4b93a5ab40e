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
