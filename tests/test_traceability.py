"""Every case points at a passage of ../shared/spec/ that really exists, and the catalog covers the spec."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import pytest

from conformance.cases import load_cases
from conformance.catalog import load_catalog
from conformance.usage_tracking import load_usage_cases

SPEC_DIR = Path(os.environ.get("CONFORMANCE_SPEC_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "spec"))
pytestmark = pytest.mark.skipif(not SPEC_DIR.is_dir(), reason=f"spec not found at {SPEC_DIR}")


def normalise(text: str) -> str:
    """Compare without white space, case or shell line continuations: quotes span reflowed code."""
    return re.sub(r"\s+", "", text.replace("\\\n", " ")).lower()


@cache
def spec_text(doc: str) -> str:
    (path,) = SPEC_DIR.glob(f"{doc}_*.txt")
    return normalise(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", [c for c in [*load_cases(), *load_usage_cases()] if c.spec.doc != "ours"],
                         ids=lambda c: c.id)
def test_spec_section_and_quote_exist(case):
    text = spec_text(case.spec.doc)
    for part in re.split(r" / |: ", case.spec.section):
        assert normalise(part) in text, f"section part {part!r} not in spec {case.spec.doc}"
    for fragment in (case.spec.quote or "").split("..."):
        if len(fragment.strip()) >= 3:
            assert normalise(fragment) in text, f"quote fragment {fragment.strip()!r} not in spec {case.spec.doc}"


def test_own_rules_say_why():
    for case in load_cases():
        if case.spec.doc == "ours":
            assert len(case.spec.reason or "") > 20, case.id


def test_every_model_the_spec_names_is_in_the_catalog():
    named = set()
    for path in SPEC_DIR.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        named |= set(re.findall(r"\b(?:databricks-|system\.ai\.)([a-z0-9]+(?:-[a-z0-9]+)*)", text))
    named -= {"ai-gateway-request-tags"}  # the Databricks-Ai-Gateway-Request-Tags header, not a model
    catalog = set(load_catalog().names())
    # "databricks-gpt-5-4ordatabricks-claude-sonnet-4": the text rendering glues words, so a catalog name
    # followed by a letter (not by "-") counts as named
    missing = {n for n in named if n not in catalog and not any(n.startswith(c) and n[len(c)] != "-" for c in catalog)}
    assert missing == set(), f"models named by the spec but missing from the catalog: {missing}"


def _values_of(node, key):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, int):
                yield v
            yield from _values_of(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _values_of(v, key)


def test_documented_token_limits_are_above_what_each_case_asks():
    """A case's `documented` field says it asks for fewer tokens than its example: it must, for every limit."""
    from conformance.casemodel import ClientCase
    from conformance.cases import load_cases
    from conformance.clientcases import load_client_cases

    seen = 0
    for case in [*load_cases(), *load_client_cases(), *load_usage_cases()]:
        sent = case.client.as_mapping() if isinstance(case, ClientCase) else case.request and case.request.body
        for key, documented in case.documented.items():
            asked = list(_values_of(sent, key))
            assert asked, f"{case.id}: documented {key} but the case sends none"
            assert all(value < documented for value in asked), f"{case.id}: {key} {asked} vs documented {documented}"
            seen += 1
    assert seen >= 40
