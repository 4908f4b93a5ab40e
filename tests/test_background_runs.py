"""The background runs (tests/background_runs.py) only move where a whole run is performed: the collected readers
plan it, a reader gets the run's result as the background published it, performs it itself when none was
planned, and fails with the background's log or traceback when the run died or raised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from background_runs import PLAN, READERS, RUNS, main, plan_for, read
from conftest import RunResult


def test_the_plan_is_each_run_a_collected_test_reads_once_in_their_order():
    reference, token = (next(prefix for prefix, run in READERS.items() if run == name)
                        for name in ("reference", "token-bearer"))
    ids = ["tests/test_config.py::test_x", token, reference, token]
    assert plan_for(ids) == ["token-bearer", "reference"]
    assert plan_for(["tests/test_secrets.py::test_token_is_nowhere_in_run_outputs[basic]"]) == []
    assert set(READERS.values()) == set(RUNS)


def _ended() -> int:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def _never(folder: Path) -> RunResult:
    raise AssertionError("a planned run is read, never performed by the reader")


def test_a_reader_gets_the_published_run_or_performs_an_unplanned_one(tmp_path: Path):
    (tmp_path / PLAN).write_text(json.dumps({"reference": _ended()}))
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "result.json").write_text(json.dumps(
        {"code": 0, "out": "790 passed", "err": "", "reports": str(tmp_path / "reference" / "reports")}))
    result = read(tmp_path, "reference", _never, tmp_path / "own")
    assert (result.code, result.out, result.reports) == (0, "790 passed", tmp_path / "reference" / "reports")
    performed = read(tmp_path, "token-bearer", lambda folder: RunResult(1, "mine", "", folder), tmp_path / "own")
    assert (performed.code, performed.out, performed.reports) == (1, "mine", tmp_path / "own")


def test_a_run_that_died_or_raised_fails_its_reader_with_the_log(tmp_path: Path):
    (tmp_path / PLAN).write_text(json.dumps({"reference": _ended(), "token-bearer": _ended()}))
    for name in ("reference", "token-bearer"):
        (tmp_path / name).mkdir()
    (tmp_path / "reference" / "log.txt").write_text("Killed: out of memory\n")
    with pytest.raises(RuntimeError, match=r"(?s)ended without its result.*out of memory"):
        read(tmp_path, "reference", _never, tmp_path / "own")
    (tmp_path / "token-bearer" / "error.txt").write_text("Traceback: the gateway would not start\n")
    with pytest.raises(RuntimeError, match=r"(?s)failed.*the gateway would not start"):
        read(tmp_path, "token-bearer", _never, tmp_path / "own")


def test_the_script_publishes_the_result_or_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(RUNS, "reference", "test_background_runs:_published")
    assert main(tmp_path, "reference") == 0
    assert json.loads((tmp_path / "result.json").read_text()) == {"code": 3, "out": "o", "err": "e",
                                                                  "reports": str(tmp_path / "r")}
    monkeypatch.setitem(RUNS, "reference", "test_background_runs:_never")
    (tmp_path / "x").mkdir()
    with pytest.raises(AssertionError):
        main(tmp_path / "x", "reference")
    assert "a planned run is read" in (tmp_path / "x" / "error.txt").read_text()


def _published(folder: Path) -> RunResult:
    return RunResult(3, "o", "e", folder / "r")
