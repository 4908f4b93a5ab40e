"""Every case and every check carries a strength derived from the spec's words, with its reason; the words a
reason quotes are really in the spec; no case expects a status code the spec does not name."""

from __future__ import annotations

import re

import pytest
from test_traceability import SPEC_DIR, normalise, spec_text

from conformance.cases import expand, load_cases
from conformance.catalog import load_catalog
from conformance.checks import CHECKS
from conformance.clientcases import load_client_cases
from conformance.config import TargetOptions, resolve_target
from conformance.findings import RULES, STRENGTHS
from conformance.usage_checks import USAGE_CHECKS
from conformance.usage_tracking import load_usage_cases

ALL_CASES = [*load_cases(), *load_client_cases(), *load_usage_cases()]
QUOTED = re.compile(r'"([^"]{12,})"')


def _in_spec(fragment: str) -> bool:
    return any(normalise(fragment) in spec_text(doc) for doc in ("000", "001", "003"))


def _reasons() -> list[tuple[str, str]]:
    out = [(f"case {c.id}", c.strength_reason) for c in ALL_CASES]
    out += [(f"case {c.id} check_strengths.{name}", o.reason) for c in ALL_CASES
            for name, o in c.check_strengths.items()]
    out += [(f"check {c.name}", c.reason) for c in [*CHECKS.values(), *USAGE_CHECKS.values()]]
    out += [(f"rule {name}", rule.reason) for name, rule in RULES.items()]
    return out


def test_every_case_has_a_strength_and_a_reason():
    for case in ALL_CASES:
        assert case.strength in STRENGTHS, case.id
        assert len(case.strength_reason) >= 20, case.id
        if case.spec.doc == "ours":
            assert case.strength == "advisory", f"{case.id}: a rule of our own is advisory"


def test_every_check_has_a_strength_and_a_reason():
    for check in [*CHECKS.values(), *USAGE_CHECKS.values()]:
        assert check.strength in STRENGTHS and len(check.reason) >= 20, check.name
        if check.spec.startswith("ours"):
            assert check.strength == "advisory", check.name


@pytest.mark.skipif(not SPEC_DIR.is_dir(), reason=f"spec not found at {SPEC_DIR}")
@pytest.mark.parametrize(("where", "reason"), _reasons(), ids=lambda v: v if len(v) < 60 else v[:60])
def test_the_words_a_strength_reason_quotes_are_in_the_spec(where, reason):
    for fragment in QUOTED.findall(reason):
        assert _in_spec(fragment), f"{where}: {fragment!r} is not in the spec"


def test_a_must_case_says_why_in_the_spec_s_words():
    """A must is a documented example or a stated rule: its reason says which."""
    for case in ALL_CASES:
        if case.strength == "must":
            assert re.match(r"(a )?(documented|stated)", case.strength_reason), case.id


def test_no_case_expects_a_status_code_the_spec_does_not_name():
    """The spec names no error status: a refusal is expected as the class 4xx (an exact code, where HTTP
    suggests one, is a preferred_status of its own, never must)."""
    for case in load_cases():
        for step in case.steps:
            status = step.expect.status
            assert status in (200, "2xx", "4xx"), f"{case.id}: expects {status!r}"
            preferred = step.expect.preferred_status
            if preferred:
                assert preferred.strength != "must", case.id


def test_the_claude_row_gives_no_byte_limit_so_no_byte_limit_case_runs_on_claude():
    claude = [m for m in load_catalog().models if m.family == "claude"]
    assert claude and all("max_total_bytes" not in m.vision for m in claude)
    items = expand(load_cases(), resolve_target(TargetOptions(), {}))
    byte_cases = [i for i in items if i.case.id.startswith("vision-total-bytes")]
    assert byte_cases and all(i.model.family != "claude" for i in byte_cases)


def test_an_open_list_of_models_is_not_a_must():
    """'only accepted by a limited set of models, including ...' names some of the set, not all of it."""
    case = next(c for c in load_cases() if c.id == "reasoning-effort-unsupported-model-rejected")
    assert case.strength == "advisory"
