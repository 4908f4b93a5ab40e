"""The suite passes on its own reference gateway, and writes what it promises."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from shared_runs import REFERENCE, REFERENCE_ENV
from test_secrets import FORMS, leaks_in

from conformance.cases import load_cases
from conformance.clientcases import load_client_cases
from conformance.gateway.behaviours import is_client_case, is_usage_case
from conformance.schemas import validate
from conformance.usage_tracking import load_usage_cases


def test_reference_gateway_passes_every_case_and_writes_the_run_folder(shared_run, harness):
    """The one real end-to-end run of everything: the CLI, pytest, two xdist workers, the official clients, the
    reports; its verdicts are the in-process harness's (tests/harness.py), which the deviation matrix uses."""
    result = shared_run(*REFERENCE, env=REFERENCE_ENV)  # as a user runs it
    assert result.code == 0, result.out[-3000:]
    summary = result.summary
    assert validate("summary", summary) == []
    totals = summary["totals"]
    assert totals["failed"] == 0 and totals["warned"] == 0 and totals["errors"] == 0 and totals["skipped"] == 0
    assert summary["incomplete"] is False and summary["not_run"] == {"deselected": 0, "budget_skipped": 0,
                                                                      "deselected_cases": []}
    assert totals["passed"] == len(summary["cases"]) > 100
    ran = {c["id"] for c in summary["cases"]}
    every = {case.id for case in [*load_cases(), *load_client_cases(), *load_usage_cases()]}
    assert ran == every, "every case and client case in the case data ran at least once"
    assert result.outcomes() == {test: verdict.outcome for test, verdict in harness.baseline().items()}
    # every HTTP answer compared under xdist with its shipped baseline shape, and matching it
    http = {test for test, item in harness.by_id.items()  # (client and usage cases have no shape of their own)
            if not is_client_case(item.case) and not is_usage_case(item.case)}
    shapes = {(f"{c['id']}@{c['model']}" if c["model"] else c["id"]): c.get("snapshot", {}).get("status")
              for c in summary["cases"]}
    assert {test for test, status in shapes.items() if status is not None} == http
    assert {shapes[test] for test in http} == {"match"}, [t for t in http if shapes[t] != "match"][:5]
    assert summary["target"]["name"] == "reference"
    assert summary["tokens"]["prompt"] > 0 and summary["tokens"]["completion"] > 0
    assert summary["tokens"]["per_surface"]["chat_completions"]["completion"] > 0
    assert summary["tokens"]["per_surface"]["usage"]["completion"] > 0  # tagged requests and ai_query
    run_dir = result.run_dir
    junit = ET.parse(run_dir / "junit.xml").getroot()
    assert int(junit.find("testsuite").get("tests")) == len(summary["cases"])
    assert any((run_dir / "allure-results").glob("*-result.json"))
    assert (result.reports / "latest").is_symlink()
    # the token the embedded gateway was started with is in no file the two workers and the run wrote
    assert leaks_in(result.reports) == []
    assert not any(form in result.out + result.err for form in FORMS)


def test_selection_by_keyword_and_marker(run_cli):
    result = run_cli("run", "-k", "stream and not client", "-m", "chat_completions and chat")
    assert result.code == 0
    assert {c["id"] for c in result.summary["cases"]} == {"chat-stream-system-and-user", "chat-stream-multi-turn",
                                                          "chat-stream-include-usage",
                                                          "chat-stream-truncated-max-tokens",
                                                          "stream-incremental-chat", "usage-stream-consistent-chat"}


def test_a_selection_that_matches_nothing_is_bad_input(run_cli):
    result = run_cli("run", "-k", "no-such-case-anywhere")
    assert result.code == 2
    assert "no case selected" in result.err
