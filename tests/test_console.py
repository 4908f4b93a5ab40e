"""The console after a run: one line per failed case, warnings apart, the verdict, one snapshot line, where the
reports are; nothing said twice (pytest's failure sections, syrupy's report block)."""

from __future__ import annotations

from conformance.console import case_lines, verdict_table


def test_one_line_per_failed_case_and_the_verdict(run_cli):
    result = run_cli("run", "--deviation", "usage-sum-wrong", "-k", "chat-system-and-user and claude",
                     "--html", "none")
    assert result.code == 1
    failed = [c for c in result.summary["cases"] if c["outcome"] == "failed"]
    lines = result.out.splitlines()
    for case in failed:
        mine = [line for line in lines if f"{case['id']} @ {case['model']}:" in line]
        assert len(mine) == 1, mine  # once, not in a FAILURES section too
        assert mine[0].startswith(f"FAILED {case['id']} @ {case['model']}: [usage_total_is_sum] $.usage.total_tokens")
    assert "FAILURES" not in result.out and "short test summary" not in result.out
    assert "snapshot report summary" not in result.out, "syrupy's block repeats our snapshot line"
    assert sum(1 for line in lines if line.startswith("snapshots: ")) == 1
    assert any(line.split()[:2] == ["profile", "result"] for line in lines)
    assert any(line.startswith("chat_completions") and "failure" in line for line in lines)
    assert any(line.startswith("reports: ") and "summary.md" in line for line in lines)
    assert any(line.startswith("preflight: ") for line in lines)


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
