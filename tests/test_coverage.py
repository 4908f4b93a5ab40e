"""`conformance coverage`: every documented section of 001 and 003 has a case, or says why it needs none; 000 is
read as the duplicate rendering of 001 it is (spec/README.md); client cases count; the statements no HTTP case
can check are listed with the profile cases that quote them."""

from __future__ import annotations

import re

import pytest

from conformance.coverage import Section, coverage, profile_cases, render, spec_dir
from conformance.resources import DATA_DIR, default_spec_dir
from conformance.yamlio import load_yaml


@pytest.fixture(scope="module")
def result():
    return coverage(spec_dir(None))


def test_no_section_of_001_or_003_is_without_a_case_or_a_reason(result):
    flagged = [(doc, s.title) for doc in ("001", "003") for s in result["sections"][doc]
               if not s.cases and not s.scope]
    assert flagged == []
    assert render(result).rstrip().endswith(" 0 flagged")


def test_000_is_listed_against_001_and_never_flagged_on_its_own(result):
    text = render(result)
    block = text.split("spec 000:")[1].split("statements no HTTP case checks:")[0]
    assert "duplicate rendering of 001" in block and "NO CASE" not in block
    assert re.search(r"Image to token conversion:  = 001 line \d+", block)


def test_client_cases_count(result):
    sdk = next(s for s in result["sections"]["001"] if s.title == "Databricks Python SDK")
    assert "client-databricks-sdk-query" in sdk.cases
    tags = next(s for s in result["sections"]["003"] if s.title == "Tag requests for usage tracking")
    assert {"client-anthropic-request-tags", "client-openai-embeddings-request-tags"} <= set(tags.cases)


def test_a_section_without_case_or_reason_is_flagged(result):
    result = {**result, "sections": {**result["sections"], "003": [*result["sections"]["003"],
                                                                   Section("003", "A new section", 999)]}}
    text = render(result, uncovered_only=True)
    assert "line  999  A new section:  NO CASE" in text and text.endswith(" 1 flagged")


def test_statements_are_matched_to_the_profile_cases_that_quote_them():
    class Spec:
        quote = "Requests made through ai_query ... are captured in the usage tracking system table"

    class Case:
        id, spec, features = "usage-ai-query-captured", Spec(), ("usage.ai_query",)

    class HttpCase:
        id, spec, features = "chat-quoting-it", Spec(), ("chat_completions",)

    statement = ("Requests made through ai_query to Azure Databricks-provided model services are captured in the "
                 "usage tracking system table (system.ai_gateway.usage).")
    assert profile_cases([Case(), HttpCase()], statement, "usage") == ["usage-ai-query-captured"]
    assert profile_cases([Case()], "These requests also appear in the built-in usage dashboard.", "usage") == []


def test_the_usage_profile_checks_the_usage_statements(result):
    by_quote = {entry["quote"][:30]: entry for entry in result["statements"]}
    assert by_quote["Request tags are logged to the"]["cases"]
    assert by_quote["Requests made through ai_query"]["cases"] == ["usage-ai-query-captured"]
    ai_query = next(s for s in result["sections"]["003"] if s.title == "Query model services with ai_query")
    assert "usage-ai-query-result" in ai_query.cases


def test_the_coverage_data_names_real_headings_and_quotes():
    folder = default_spec_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("no spec folder beside the checkout")
    data = load_yaml(DATA_DIR / "coverage.yaml")
    sections = coverage(folder)["sections"]
    for entry in data["sections"]:
        assert entry["kind"] in ("prose", "outside", "profile") and entry["why"]
        assert any(s.title == entry["title"] for s in sections[entry["doc"]]), entry["title"]
        assert sections[entry["doc"]], entry
    for entry in data["statements"]:
        (path,) = folder.glob(f"{entry['doc']}_*.txt")
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert entry["quote"] in text, entry["quote"]
    assert set(data["duplicates"]) <= set(sections) and set(data["duplicates"].values()) <= set(sections)
