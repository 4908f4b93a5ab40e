"""One reading of a stream's payloads for every reader: a stream with an event that is not JSON is judged (failed,
with the event as evidence), never crashes a check; a check that raises is a finding; the shape normaliser's own
trouble never replaces a verdict."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conformance.cases import Case, CaseItem, expand, load_cases
from conformance.checks import CHECKS, Check, CheckContext
from conformance.client import Exchange
from conformance.config import Target
from conformance.evaluate import evaluate, run_check
from conformance.snapshots import SnapshotResult, normalise
from conformance.suite.bodies import run_case
from conformance.usage import usage_of

SSE = {"content-type": "text/event-stream"}


def stream(*payloads: object) -> Exchange:
    """An SSE answer of these payloads (a str is sent as is), then [DONE]."""
    lines = [f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads]
    return Exchange("POST", "http://x", {}, {"max_tokens": 32}, None, 200, SSE, "".join(lines) + "data: [DONE]\n\n",
                    True)


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def item(case_id: str, **expect: object) -> CaseItem[Case]:
    """The case on its first model; `expect` overrides fields of its expectation (on a copy)."""
    case = next(c for c in load_cases() if c.id == case_id)
    first = next(i for i in expand((case,), Target(url="http://x", name="t", token=None)) if i.model)
    if not expect:
        return first
    copy = dataclasses.replace(case, expect=dataclasses.replace(case.expect, **expect))
    return CaseItem(copy, first.model, first.served_model)


def test_one_event_is_read_once_with_its_index_name_and_error():
    ex = Exchange("POST", "http://x", {}, None, None, 200, SSE,
                  'event: a\ndata: {"n": 1}\n\ndata: not json\n\ndata: [DONE]\n\n', True)
    first, second = ex.payloads
    assert (first.index, first.event, first.payload, first.is_json) == (0, "a", {"n": 1}, True)
    assert (second.index, second.event, second.is_json) == (1, None, False) and "Expecting value" in second.error
    assert Exchange("POST", "http://x", {}, None, None, 200, {"content-type": "application/json"}, "{}",
                    False).payloads == []


def test_a_chat_stream_with_a_non_json_event_is_failed_by_the_judge_not_crashed_in_a_check():
    answer = stream(chunk({"role": "assistant", "content": ""}), '{"id": "c1", "object": "chat.co',
                    chunk({"content": "hello"}), chunk({}, "stop"))
    failures = [f.text() for f in evaluate(item("chat-stream-system-and-user"), answer)]
    assert len(failures) == 1 and failures[0].startswith("[json] event[1] data is not JSON ("), failures
    assert failures[0].endswith("'{\"id\": \"c1\", \"object\": \"chat.co'"), "the event's text is the evidence"


def test_every_reader_skips_the_non_json_event_and_keeps_the_indexes():
    answer = stream({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}},
                    "garbage", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                "usage": {"output_tokens": 7}})
    assert usage_of(answer) == (10, 7), "input from message_start, the final output count from message_delta"
    events = normalise(answer)["events"]
    assert events[1] == "<text>" and events[-1] == "[DONE]"
    ctx = CheckContext({}, answer, None)
    assert [p.index for p in ctx.json_events()] == [0, 2]


def test_a_check_that_raises_is_a_finding_with_the_error(monkeypatch):
    def broken(ctx):
        yield "first"
        raise KeyError("choices")

    monkeypatch.setitem(CHECKS, "broken_check", Check("broken_check", "ours: a test", broken, "must", "a test"))
    ctx = CheckContext({}, stream(chunk({"content": "x"})), None)
    assert run_check("broken_check", ctx) == ["first", "raised KeyError: 'choices'"], "what it found first is kept"
    answer = stream(chunk({"role": "assistant", "content": "x"}, "stop"))
    found = evaluate(item("chat-stream-system-and-user", checks=("broken_check",)), answer)
    assert [f.text() for f in found] == [
        "[broken_check] first", "[broken_check] raised KeyError: 'choices'"]


class _RaisingShapeCheck:
    def check(self, exchange: Exchange) -> SnapshotResult:
        from conformance.snapshots import ShapeCheck

        shape_check = ShapeCheck.__new__(ShapeCheck)
        shape_check.node = None
        shape_check._check = lambda ex: (_ for _ in ()).throw(RuntimeError("normaliser bug"))  # type: ignore
        return shape_check.check(exchange)


class _FakeRequest:
    """What run_case reads of pytest's request: the node's user properties and the --strict option."""

    class node:
        user_properties: list = []

    class config:
        @staticmethod
        def getoption(name: str) -> bool:
            return False


def test_a_shape_normaliser_error_never_replaces_the_verdict():
    result = _RaisingShapeCheck().check(stream(chunk({"content": "x"})))
    assert result.status == "error" and "RuntimeError: normaliser bug" in result.reason
    answer = stream(chunk({"role": "assistant", "content": "hi"}, "stop"))
    broken = Exchange("POST", "http://x", {}, {"max_tokens": 32}, None, 200, SSE,
                      answer.text.replace("data: [DONE]\n\n", ""), True)  # a stream cut before its terminator
    with pytest.raises(pytest.fail.Exception, match=r"\[stream_done_terminator\]"):
        run_case(item("chat-stream-system-and-user"), broken, _FakeRequest(),  # type: ignore[arg-type]
                 _RaisingShapeCheck())  # type: ignore[arg-type]


def test_the_deviation_is_failed_with_the_event_as_evidence(run_cli):
    result = run_cli("run", "--deviation", "stream-event-not-json", "-k",
                     "chat-stream-system-and-user and claude-sonnet-4-5", "--html", "none")
    (case,) = result.summary["cases"]
    assert case["outcome"] == "failed"
    assert case["message"].startswith("[json] event[2] data is not JSON"), case["message"]
    assert "raised" not in case["message"] and "Traceback" not in result.out
    results = [json.loads(p.read_text()) for p in Path(result.run_dir, "allure-results").glob("*-result.json")]
    (record,) = results
    assert record["status"] == "failed"
    names = [a["name"] for a in record["attachments"]]
    assert names[:2] == ["exchange", "failed checks"], names
    evidence = Path(result.run_dir, "allure-results", record["attachments"][0]["source"]).read_text()
    assert "data: {" in json.loads(evidence)["response"]["body"]
