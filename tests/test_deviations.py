"""Every check family can fail, and none false-fails. Each deviation switch fails exactly the case items it must
and warns exactly those whose broken rule is should/advisory in the case, every other item passing; every
variation and drift switch leaves every item passed, and a drift switch shows drift on exactly the answers whose
shape it changes. The expected sets are derived from behaviours.yaml's `breaks` and the case data
(behaviours.Switch.expected); every item is performed against the reference gateway and judged through the
run's own perform and judging path, in this process (tests/harness.py). A real `conformance run --deviation`
gives the same verdicts (below), and test_reference_run.py runs the whole suite end to end with xdist."""

from __future__ import annotations

import re

import pytest

from conformance.findings import Finding, outcome_of
from conformance.gateway.behaviours import (
    conformant_switches,
    deviations,
    drift_switches,
    is_client_case,
    is_usage_case,
    rules_of,
    unknown_rules,
)

SCHEMA_NAME = re.compile(r"^(\[(?:step|request) \d+\] )+")  # a step of a multi-step case, a concurrent request


def _diff(expected: set[str], actual: set[str]) -> str:
    return f"\n missed: {sorted(expected - actual)[:10]}\n unexpected: {sorted(actual - expected)[:10]}"


def test_the_baseline_passes_every_item_with_its_shipped_shape(harness):
    baseline = harness.baseline()
    assert len(baseline) == len(harness.items) > 500
    broken = {test: verdict.text() for test, verdict in baseline.items() if verdict.outcome != "passed"}
    assert broken == {}, f"the reference gateway with no switch: {list(broken.items())[:5]}"
    shapes = {test: verdict.snapshot for test, verdict in baseline.items()  # (the HTTP cases: usage ones have none)
              if not is_client_case(harness.by_id[test].case) and not is_usage_case(harness.by_id[test].case)}
    drifted = {test: baseline[test].drift for test, status in shapes.items() if status != "match"}
    assert drifted == {}, ("every HTTP case has a shipped baseline shape that its answer matches (record one "
                           f"with `conformance run --snapshot-update`): {list(drifted.items())[:3]}")


def rules_named(finding: Finding, item_rules: set[str]) -> set[str]:
    """The rules of behaviours.yaml a finding is evidence of: its check, the schema a schema finding names, and
    for an official client's finding every rule of the client case (its call, what it reads, its schema)."""
    if finding.check == "client":
        return item_rules
    if finding.check == "schema":
        return {SCHEMA_NAME.sub("", finding.message).split(" ")[0]}
    return {finding.check}


@pytest.mark.parametrize("switch", deviations(), ids=lambda s: s.name)
def test_deviation_fails_and_warns_exactly_its_cases(harness, switch):
    assert unknown_rules(switch) == [], f"{switch.name}: breaks names no check, schema or rule of the judge"
    judged = harness.judge(switch)
    expected_failed, expected_warned = judged.expected_with("failed"), judged.expected_with("warned")
    assert expected_failed | expected_warned, f"{switch.name}: no case item is expected to fail or warn"
    for outcome, expected in (("failed", expected_failed), ("warned", expected_warned)):
        actual = judged.with_outcome(outcome)
        assert actual == expected, f"{switch.name} ({switch.rule}), {outcome}:{_diff(expected, actual)}"
    assert judged.with_outcome("error") | judged.with_outcome("skipped") == set()
    # every rule it names is broken somewhere: no entry of `breaks` is dead
    hit = {rule for item in judged.items for rule in switch.broken(item, item.test_id in judged.applied)}
    assert hit == {rule for rule, _ in switch.breaks}, f"{switch.name}: rules broken in no case item"
    for test, verdict in judged.verdicts.items():
        assert outcome_of(verdict.findings) == verdict.outcome
        if verdict.outcome in ("failed", "warned"):  # judged so because of a rule the switch names
            item = harness.by_id[test]
            broken, item_rules = switch.broken(item), set(rules_of(item))
            named = {rule for f in verdict.findings for rule in rules_named(f, item_rules)}
            assert named & set(broken), f"{switch.name}: {test} {verdict.outcome} by {named}, breaks {broken}"


@pytest.mark.parametrize("switch", conformant_switches(), ids=lambda s: s.name)
def test_conformant_switch_passes_every_case(harness, switch):
    # shapes are compared where they are judged: a drift switch's and a shape-keeping variation's (other-text's
    # judgement is read by test_snapshots too: conftest JUDGED_TOGETHER)
    judged = harness.judge(switch, shapes=switch.compares_shapes)
    assert judged.applied, f"{switch.name}: the gateway never consulted it, so it proves nothing"
    broken = {test: verdict.text() for test, verdict in judged.verdicts.items() if verdict.outcome != "passed"}
    assert broken == {}, f"{switch.name} ({switch.rule}) is conformant but: {list(broken.items())[:3]}"
    if switch.drifts:
        expected = judged.expected_drift()
        assert expected, f"{switch.name}: no answer is expected to drift"
        assert judged.drifted() == expected, f"{switch.name} drift:{_diff(expected, judged.drifted())}"
    if switch.keeps_shape:
        compared = {test for test in judged.applied if judged.verdicts[test].snapshot == "match"}
        assert compared, f"{switch.name} keeps_shape, but no answer it was applied to has a shape compared"
        assert judged.drifted() == set(), f"{switch.name} keeps_shape, but: {sorted(judged.drifted())[:5]}"


def test_every_drift_switch_is_a_conformant_switch():
    assert {s.name for s in drift_switches()} <= {s.name for s in conformant_switches()}


def test_a_real_run_under_a_switch_gives_the_harness_verdicts(run_cli, harness):
    """The harness judges as `conformance run --deviation` does: the same verdicts, failed, warned and passed,
    HTTP and official-client cases alike."""
    switch = next(s for s in deviations() if s.name == "auth-not-enforced")
    result = run_cli("run", "--deviation", switch.name, "-k",
                     "auth-wrong-token-chat or auth-basic-wrong-user-chat or auth-bearer-chat or client-curl-chat",
                     lean=True)
    judged = harness.judge(switch, items=[harness.by_id[test] for test in result.outcomes()])
    assert result.outcomes() == {test: verdict.outcome for test, verdict in judged.verdicts.items()}
    assert set(result.outcomes().values()) == {"failed", "warned", "passed"}
    assert {c["id"] for c in result.summary["cases"]} >= {"client-curl-chat-bearer", "auth-wrong-token-chat"}


def test_behaviours_yaml_names_rules_not_cases(tmp_path):
    """An expectation list of case ids is refused with the reason; a deviation must name what it breaks."""
    from conformance.errors import BadInput
    from conformance.gateway.behaviours import switches

    for text, message in (
        ("deviations: {x: {rule: r, breaks: [status], expect_failed: [chat-*]}}", "expected cases are derived"),
        ("deviations: {x: {rule: r}}", "breaks is a non-empty list"),
        ("deviations: {x: {rule: r, breaks: [status], scope: {colour: red}}}", "a scope is a mapping"),
        ("drift: {x: {note: n}}", "drifts names"),
        ("variations: {x: {note: n, keeps_shape: often}}", "keeps_shape is true or false"),
    ):
        path = tmp_path / f"b{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(text)
        with pytest.raises(BadInput, match=message):
            switches(path)
