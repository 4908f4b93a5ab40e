"""Checks on small answers: each rule loosened for a freedom the spec leaves open still catches its deviation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.checks import CHECKS, CheckContext
from conformance.client import Exchange
from conformance.schemas import validate


def answer(body: Any, request: Any = None) -> CheckContext:
    text = json.dumps(body)
    exchange = Exchange("POST", "http://x", {}, request, None, 200, {"content-type": "application/json"}, text, False)
    return CheckContext(request, exchange, None)


def streamed(*payloads: Any, request: Any = None) -> CheckContext:
    text = "".join(f"data: {json.dumps(p)}\n\n" for p in payloads) + "data: [DONE]\n\n"
    exchange = Exchange("POST", "http://x", {}, request, None, 200, {"content-type": "text/event-stream"}, text, True)
    return CheckContext(request, exchange, None)


def run(name: str, ctx: CheckContext, **args: Any) -> list[str]:
    ctx.args = args
    return list(CHECKS[name].fn(ctx))


def completion(content: Any, finish: str | None, completion_tokens: int) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens, "total_tokens": 5 + completion_tokens}}


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "choices": choices, **fields}


MAX = {"max_tokens": 8}
REASONING = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking", "signature": "s"}]}
TEXT = {"type": "text", "text": "the answer"}


# --- finish_reason: null is 001's example value ---------------------------------------------------------------

@pytest.mark.parametrize(("finish", "tokens", "found"), [
    ("length", 8, False), (None, 8, False), ("stop", 8, True), ("stop", 5, False), (None, 5, False)])
def test_finish_reason_length_when_truncated_accepts_null_never_stop(finish, tokens, found):
    messages = run("finish_reason_length_when_truncated", answer(completion("hi", finish, tokens), MAX))
    assert bool(messages) == found, messages


@pytest.mark.parametrize(("content", "finish", "tokens", "found"), [
    ("", "length", 8, False),   # cut: the budget may have gone to reasoning
    ("", None, 8, False),       # cut, said by usage alone (finish_reason null)
    ("", None, 5, True),        # not cut and no text
    ("", "stop", 8, True),
    ([TEXT], None, 5, False),   # text blocks carry the answer too
])
def test_message_text_non_empty_knows_a_cut_answer_by_finish_reason_or_usage(content, finish, tokens, found):
    assert bool(run("message_text_non_empty", answer(completion(content, finish, tokens), MAX))) == found


def test_stream_finish_reason_at_most_once_on_the_last_choice_chunk():
    first = chunk({"role": "assistant", "content": "a"})
    assert run("stream_finish_reason_once_last", streamed(first, chunk({"content": "b"}))) == [], "null throughout"
    assert run("stream_finish_reason_once_last", streamed(
        first, chunk({}, "stop"), chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 2,
                                                     "total_tokens": 3}))) == [], "then a usage-only chunk"
    assert run("stream_finish_reason_once_last", streamed(chunk({"role": "assistant"}, "stop"),
                                                          chunk({"content": "b"}, "stop")))
    early = run("stream_finish_reason_once_last",
                streamed(chunk({"role": "assistant"}, "stop"), chunk({"content": "b"})))
    assert early == ["event[0]: finish_reason set before the last choice chunk (event 1)"]


def test_stream_text_may_be_empty_only_when_cut():
    empty = chunk({"role": "assistant", "content": ""})
    assert run("stream_text_non_empty", streamed(empty, chunk({}, "length"), request=MAX)) == []
    usage = chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 8, "total_tokens": 9})
    assert run("stream_text_non_empty", streamed(empty, chunk({}), usage, request=MAX)) == [], "null + usage at limit"
    assert run("stream_text_non_empty", streamed(empty, chunk({}, "stop"), usage, request=MAX))
    below = chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4})
    assert run("stream_text_non_empty", streamed(empty, chunk({}), below, request=MAX))


def test_the_first_delta_role_is_judged_and_later_null_roles_pass_the_chunk_schema():
    assert validate("chat.completion.chunk", chunk({"role": None, "content": None, "refusal": None})) == []
    assert validate("chat.completion.chunk", chunk({"role": 3}))
    assert run("stream_first_delta_role", streamed(chunk(None, prompt_filter_results=[]),
                                                   chunk({"role": "assistant"}), chunk({"role": None}))) == []
    assert run("stream_first_delta_role", streamed(chunk({"role": None, "content": "a"})))


# --- reasoning blocks -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "finish", "hidden", "found"), [
    ([REASONING, TEXT], "stop", False, []),
    ([TEXT], "stop", True, []),                      # reasoning not exposed, block form
    ("the answer", "stop", True, []),                # reasoning not exposed, string form
    ([TEXT], "stop", False, ["no reasoning block"]),
    ([REASONING], "length", False, []),              # max_tokens spent reasoning
    ([REASONING], "stop", False, ["no text block"]),
    ("the answer", "stop", False, ["expected a list"]),
])
def test_reasoning_content_blocks(content, finish, hidden, found):
    messages = run("reasoning_content_blocks", answer(completion(content, finish, 8), MAX),
                   reasoning_may_be_hidden=hidden)
    assert len(messages) == len(found) and all(f in m for f, m in zip(found, messages, strict=True)), messages


@pytest.mark.parametrize(("content", "finish", "found"), [
    ([REASONING, TEXT], "stop", 0), ([REASONING], "length", 0), ([REASONING, {"type": "text", "text": ""}], None, 0),
    ([REASONING], "stop", 1), ([REASONING, {"type": "text", "text": ""}], "stop", 1)])
def test_reasoning_documented_extraction_allows_a_cut_answer_without_text(content, finish, found):
    assert len(run("reasoning_documented_extraction", answer(completion(content, finish, 8), MAX))) == found


@pytest.mark.parametrize(("content", "found"), [("hi", False), ([TEXT], False), ([REASONING, TEXT], True)])
def test_reasoning_absent_without_thinking_accepts_text_blocks(content, found):
    assert bool(run("reasoning_absent_without_thinking", answer(completion(content, "stop", 3)))) == found


# --- Gemini streams -------------------------------------------------------------------------------------------

def gemini(text: str | None, finish: str | None = None, usage: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if text is not None:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        out["candidates"] = [candidate]
    if usage:
        out["usageMetadata"] = {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}
    return out


def test_gemini_final_event_may_be_usage_only():
    ok = streamed(gemini("a"), gemini(" b", "STOP"), gemini(None, usage=True))
    assert run("gemini_stream_final_event", ok) == []
    assert validate("gemini.generate_content_response", gemini(None, usage=True)) == []
    assert run("gemini_candidates_answer", ok) == []
    assert run("gemini_usage_consistent", ok) == []
    early = run("gemini_stream_final_event", streamed(gemini("a", "STOP", usage=True), gemini(" b")))
    assert early == ["event[1]: the last event with candidates has no finishReason",
                     "event[0]: finishReason before the last event with candidates (1)",
                     "event[1]: the last event has no usageMetadata"]
    assert run("gemini_stream_final_event", streamed(gemini("a"), gemini(None, usage=True))) == [
        "event[0]: the last event with candidates has no finishReason"]
    assert run("gemini_candidates_answer", answer(gemini(None, usage=True))) == ["$.candidates: no candidate"]


# --- Anthropic streams ----------------------------------------------------------------------------------------

def test_anthropic_unknown_event_types_pass_the_schema_known_ones_stay_constrained():
    assert validate("anthropic.stream_event", {"type": "message_metadata", "metadata": {}}) == []
    assert validate("anthropic.stream_event", {"type": "message_start"})
    assert validate("anthropic.stream_event", {"type": ""})


def test_schema_validation_is_remembered_by_the_instances_exact_json():
    """The memo (schemas.validate) never gives one instance another's messages: 1, 1.0 and true stay apart, an
    instance too long to remember is validated every time, and the memo stays under its size."""
    from conformance import schemas

    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    valid = schemas.validate("chat.usage", usage)
    assert schemas.validate("chat.usage", usage) == valid
    as_bool = schemas.validate("chat.usage", {**usage, "prompt_tokens": True})
    assert as_bool != valid and schemas.validate("chat.usage", usage) == valid
    long = {**usage, "prompt_tokens": "x" * (schemas.MEMO_MAX_CHARS + 1)}
    assert schemas.validate("chat.usage", long) and (
        "chat.usage", json.dumps(long, ensure_ascii=False)) not in schemas._memo
    assert sum(len(text) for _, text in schemas._memo) <= schemas.MEMO_TOTAL_CHARS
