"""The console after a run: one line per failed case, warnings apart, the verdict, one snapshot line, where the
reports are; nothing said twice (pytest's failure sections, syrupy's report block)."""

from __future__ import annotations

from shared_runs import ROLE_NOT_ASSISTANT, USAGE_SUM_WRONG

from conformance.console import case_lines, state_lines, verdict_table
from conformance.schemas import validate


def test_one_line_per_failed_case_and_the_verdict(shared_run):
    result = shared_run(*ROLE_NOT_ASSISTANT)
    assert result.code == 1
    failed = [c for c in result.summary["cases"] if c["outcome"] == "failed"]
    assert failed
    lines = result.out.splitlines()
    for case in failed:
        # (the role also drifted from the baseline: a DRIFT line of its own, not a failure)
        mine = [line for line in lines if f"{case['id']} @ {case['model']}:" in line and not line.startswith("DRIFT")]
        assert len(mine) == 1, mine  # once, not in a FAILURES section too
        assert mine[0].startswith(f"FAILED {case['id']} @ {case['model']}: [")
    assert f"failures: {len(failed)} case(s), 1 root cause(s)" in lines
    assert any(line.startswith("incomplete run: ") for line in lines)  # -k left cases out
    assert "FAILURES" not in result.out and "short test summary" not in result.out
    assert "snapshot report summary" not in result.out, "syrupy's block repeats our snapshot line"
    assert sum(1 for line in lines if line.startswith("snapshots: ")) == 1
    assert any(line.split()[:2] == ["profile", "result"] for line in lines)
    assert any(line.startswith("chat_completions") and "failure" in line for line in lines)
    assert any(line.startswith("reports: ") and "summary.md" in line for line in lines)
    assert any(line.startswith("preflight: ") for line in lines)
    assert validate("summary", result.summary) == []


def test_warned_cases_are_not_failures_on_the_console(shared_run):
    """A broken should rule: WARNED lines, exit 0, the strength of what broke in the totals line."""
    result = shared_run(*USAGE_SUM_WRONG)
    assert result.code == 0
    warned = [c for c in result.summary["cases"] if c["outcome"] == "warned"]
    assert warned and result.summary["totals"]["failed"] == 0
    lines = result.out.splitlines()
    assert not [line for line in lines if line.startswith("FAILED ")]
    for case in warned:
        assert f"WARNED {case['id']} @ {case['model']}: [usage_total_is_sum] $.usage.total_tokens" in result.out
    totals = next(line for line in lines if " cases on reference " in line)
    assert f"0 failed, {len(warned)} warned" in totals and f"(0 must failures; {len(warned)} should" in totals


def test_warned_and_errors_are_apart_from_failures():
    summary = {"cases": [
        {"id": "a", "model": "m", "outcome": "failed", "message": "[x] $.a: broken\n[y] $.b: also"},
        {"id": "b", "model": "m", "outcome": "warned", "message": "[z] $.c: should"},
        {"id": "c", "model": None, "outcome": "error", "message": "infrastructure: timeout"},
        {"id": "d", "model": "m", "outcome": "passed", "message": ""}]}
    assert case_lines(summary) == ["FAILED a @ m: [x] $.a: broken (+1 more)", "WARNED b @ m: [z] $.c: should",
                                   "ERROR  c: infrastructure: timeout"]
    table = verdict_table({"profiles": {"chat": {"result": "partial", "statistics": {"passed": 3, "warned": 1}},
                                        "embeddings": {"result": "not-run", "statistics": {}}}})
    assert table[1].split() == ["chat", "partial", "3", "0", "1", "0", "0"]
    assert table[-1] == "no case in this run: embeddings (not-run)"


def test_partial_and_incomplete_runs_are_said():
    summary = {"aborted": "circuit breaker: 3 consecutive infrastructure errors", "incomplete": True,
               "not_run": {"deselected": 4, "budget_skipped": 1}}
    assert state_lines(summary) == ["run aborted: circuit breaker: 3 consecutive infrastructure errors "
                                    "(partial summary)",
                                    "incomplete run: 4 case(s) deselected, 1 skipped for the token budget"]
    assert state_lines({"interrupted": "SIGTERM"}) == ["run interrupted: SIGTERM (partial summary)"]
