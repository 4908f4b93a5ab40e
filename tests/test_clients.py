"""The official-client layer: examples run as written, failures name the client, versions are recorded."""

from __future__ import annotations

import pytest
from shared_runs import PLAIN

from conformance import clients
from conformance.clients.base import read_path


def test_a_deviation_only_a_client_notices_fails_client_cases_only(run_cli):
    # the Gemini cases only (tests/test_deviations.py proves every case's verdict under every switch)
    result = run_cli("run", "--deviation", "gemini-snake-case-refused", "-k", "gemini or genai")
    assert any(c["id"].startswith("gemini-") for c in result.summary["cases"])
    failed = {c["id"] for c in result.summary["cases"] if c["outcome"] == "failed"}
    assert failed == {"client-genai-video", "client-genai-audio"}, "the raw REST cases use camelCase and pass"
    messages = [c["message"] for c in result.summary["cases"] if c["outcome"] == "failed"]
    assert all("google-genai" in m and "models.generate_content" in m for m in messages), messages


def test_client_failure_names_client_call_and_field(run_cli):
    result = run_cli("run", "--deviation", "usage-missing", "-k", "client-openai-chat-system-and-user")
    (case,) = result.summary["cases"]
    assert case["outcome"] == "failed"
    assert "openai chat.completions.create" in case["message"] and "usage.total_tokens" in case["message"]


def test_client_versions_are_recorded(shared_run):
    result = shared_run(*PLAIN)  # a run with one official client case records every client's version
    versions = result.summary["clients"]
    assert set(versions) == {"openai", "anthropic", "google-genai", "databricks-sdk", "curl"}
    assert versions["openai"] and versions["curl"]


def test_a_missing_client_package_skips_with_the_reason(run_cli, monkeypatch):
    import dataclasses

    missing = dataclasses.replace(clients.RUNNERS["openai"], distribution="no-such-distribution-anywhere")
    monkeypatch.setitem(clients.RUNNERS, "openai", missing)
    result = run_cli("run", "-k", "client-openai-chat-system-and-user or chat-system-and-user")
    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in result.summary["cases"]}
    assert outcomes["client-openai-chat-system-and-user"][0] == "skipped"
    assert "pip install '.[clients]'" in outcomes["client-openai-chat-system-and-user"][1]
    assert outcomes["chat-system-and-user"][0] == "passed"


class Obj:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


@pytest.mark.parametrize(("path", "expected"), [
    ("choices[0].message.content", "hi"),
    ('content[0]["summary"][0]["text"]', "why"),
    ('["text"]', "t"),
])
def test_read_path_evaluates_the_examples_expressions(path, expected):
    value = Obj(choices=[Obj(message=Obj(content="hi"))], content=[{"summary": [{"text": "why"}]}])
    root = {"text": "t"} if path.startswith("[") else value
    assert read_path(root, path) == expected


def test_read_path_refuses_what_is_not_an_access_expression():
    with pytest.raises(ValueError):
        read_path(Obj(a=1), "a; import os")


def test_a_body_cut_short_is_infrastructure_for_every_client_stack():
    """Found running the fault self-test with read-ahead: the Databricks SDK (requests) raised
    ChunkedEncodingError on a reset mid-body, and it was judged a client failure."""
    import requests

    from conformance.clients.base import ClientFailure, ClientInfrastructure, classify_unexpected

    cut = requests.exceptions.ChunkedEncodingError("Response ended prematurely")
    assert isinstance(classify_unexpected("databricks-sdk", "query", cut), ClientInfrastructure)
    assert isinstance(classify_unexpected("openai", "chat", KeyError("choices")), ClientFailure)
