"""Every check family can fail: each deviation switch fails exactly the cases it should, and only those.
Every variation (conformant but different) fails nothing: a false failure is as bad as a miss."""

from __future__ import annotations

import pytest

from conformance.gateway.behaviours import conformant_switches, deviations


@pytest.mark.parametrize("switch", deviations(), ids=lambda s: s.name)
def test_deviation_fails_exactly_its_cases(run_cli, switch):
    result = run_cli("run", "--deviation", switch.name, lean=True)
    outcomes = result.outcomes()
    expected = {test for test in outcomes if switch.expects_failure(test)}
    assert expected, f"{switch.name}: no case that ran is expected to fail; fix expect_failed"
    failed = result.with_outcome("failed")
    assert failed == expected, (
        f"{switch.name} ({switch.rule}):\n missed: {sorted(expected - failed)[:10]}\n"
        f" false failures: {sorted(failed - expected)[:10]}"
    )
    assert result.with_outcome("error") == set()
    assert result.code == 1
    by_strength = {s: sum(1 for c in result.summary["cases"] if c["outcome"] == "failed" and c["strength"] == s)
                   for s in ("must", "should")}
    assert result.summary["failures_by_strength"] == by_strength


@pytest.mark.parametrize("switch", conformant_switches(), ids=lambda s: s.name)
def test_conformant_variation_passes(run_cli, switch):
    result = run_cli("run", "--deviation", switch.name, lean=True)
    failed = {c["id"]: c["message"] for c in result.summary["cases"] if c["outcome"] != "passed"}
    assert failed == {}, f"{switch.name} ({switch.rule}) is conformant but failed: {list(failed.items())[:3]}"
    assert result.code == 0
