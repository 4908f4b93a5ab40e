"""Every check family can fail: each deviation switch fails exactly the cases it should and warns exactly the
cases whose broken rule is should/advisory, and only those. Every variation (conformant but different) leaves
every case passed: a false failure is as bad as a miss, and a false warning is noise."""

from __future__ import annotations

import pytest

from conformance.gateway.behaviours import conformant_switches, deviations


@pytest.mark.parametrize("switch", deviations(), ids=lambda s: s.name)
def test_deviation_fails_and_warns_exactly_its_cases(run_cli, switch):
    result = run_cli("run", "--deviation", switch.name, lean=True)
    outcomes = result.outcomes()
    expected_failed = {test for test in outcomes if switch.expects_failure(test)}
    expected_warned = {test for test in outcomes if switch.expects_warning(test)}
    assert expected_failed | expected_warned, f"{switch.name}: no case that ran is expected to fail or warn"
    for outcome, expected, key in (("failed", expected_failed, "expect_failed"),
                                   ("warned", expected_warned, "expect_warned")):
        actual = result.with_outcome(outcome)
        assert actual == expected, (
            f"{switch.name} ({switch.rule}), {outcome} ({key}):\n missed: {sorted(expected - actual)[:10]}\n"
            f" unexpected: {sorted(actual - expected)[:10]}"
        )
    assert result.with_outcome("error") == set()
    assert result.code == (1 if expected_failed else 0)
    summary = result.summary
    assert summary["failures_by_strength"] == {"must": len(expected_failed), "should": 0, "advisory": 0}
    assert sum(summary["warnings_by_strength"].values()) == len(expected_warned)
    for case in summary["cases"]:
        strengths = {f["strength"] for f in case["findings"]}
        if case["outcome"] == "failed":
            assert "must" in strengths and case["message"] == f"[{case['findings'][0]['check']}] " \
                                                              f"{case['findings'][0]['message']}"
        elif case["outcome"] == "warned":
            assert strengths and "must" not in strengths


@pytest.mark.parametrize("switch", conformant_switches(), ids=lambda s: s.name)
def test_conformant_variation_passes(run_cli, switch):
    result = run_cli("run", "--deviation", switch.name, lean=True)
    failed = {c["id"]: c["message"] for c in result.summary["cases"] if c["outcome"] != "passed"}
    assert failed == {}, f"{switch.name} ({switch.rule}) is conformant but failed or warned: {list(failed.items())[:3]}"
    assert result.code == 0
