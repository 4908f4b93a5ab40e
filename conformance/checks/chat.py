"""Chat Completions checks (001 Chat, 003 MLflow Chat Completions API), for completions and streams."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get, is_int, total_is_sum, within_limit

SPEC_RESPONSE = "001 Chat / OpenAI Chat Completions: expected response format"


def completion_of(ctx: CheckContext) -> Any:
    """The answer as one completion: the JSON body, or a stream's chunks assembled into one (see assemble), so
    that every rule of a whole answer (usage, max_tokens, finish_reason, reasoning blocks) judges a stream too."""
    if ctx.exchange.events is None:
        return ctx.body
    return assemble([p.payload for p in ctx.json_events()])


def assemble(chunks: list[Any]) -> dict[str, Any]:
    """The completion a chat stream amounts to: per choice index, the role of its deltas, their contents joined
    (strings into one string; once a delta carries a list of blocks, into blocks: see _add_content) and the last
    finish_reason set; the usage of the last chunk that carries one (the include_usage chunk)."""
    choices: dict[int, dict[str, Any]] = {}
    blocks: dict[int, list[dict[str, Any]]] = {}
    listed: set[int] = set()
    usage: Any = None
    for chunk in chunks:
        if isinstance(get(chunk, "usage"), dict):
            usage = chunk["usage"]
        for choice in get(chunk, "choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice["index"] if is_int(choice.get("index")) else 0
            into = choices.setdefault(index, {"index": index, "message": {"role": None}, "finish_reason": None})
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            if delta.get("role") is not None:
                into["message"]["role"] = delta["role"]
            content = delta.get("content")
            if isinstance(content, list):
                listed.add(index)
            _add_content(blocks.setdefault(index, []), content)
            if choice.get("finish_reason") is not None:
                into["finish_reason"] = choice["finish_reason"]
    for index, into in choices.items():
        parts = blocks.get(index, [])
        into["message"]["content"] = parts if index in listed else "".join(b.get("text", "") for b in parts)
    out: dict[str, Any] = {"choices": [choices[i] for i in sorted(choices)]}
    if usage is not None:
        out["usage"] = usage
    return out


def _add_content(blocks: list[dict[str, Any]], content: Any) -> None:
    """One delta's content onto the blocks so far: text (a string, or a text block) extends a text block that
    ends the list; a reasoning block extends a reasoning block that ends the list, summary item by summary item
    (texts joined, a later signature replacing an earlier one: a stream may send it with the last piece or apart);
    any other block, or a block of another type than the last, starts a new block. Empty text adds nothing."""
    for piece in content if isinstance(content, list) else [content]:
        if isinstance(piece, str):
            piece = {"type": "text", "text": piece}
        if not isinstance(piece, dict):
            continue
        last = blocks[-1] if blocks else None
        kind = piece.get("type")
        if kind == "text" and isinstance(piece.get("text"), str):
            if not piece["text"]:
                continue
            if last is not None and last.get("type") == "text" and isinstance(last.get("text"), str):
                last["text"] += piece["text"]
                continue
        elif kind == "reasoning" and last is not None and last.get("type") == "reasoning" and _summary_merges(
                last, piece):
            for n, item in enumerate(piece["summary"]):
                _merge_summary_item(last["summary"], n, item)
            continue
        blocks.append(copy.deepcopy(piece))


def _summary_merges(last: dict[str, Any], piece: dict[str, Any]) -> bool:
    return isinstance(last.get("summary"), list) and isinstance(piece.get("summary"), list)


def _merge_summary_item(summary: list[Any], n: int, item: Any) -> None:
    if n >= len(summary) or not isinstance(summary[n], dict) or not isinstance(item, dict):
        summary.append(copy.deepcopy(item))
        return
    into = summary[n]
    if isinstance(item.get("text"), str):
        into["text"] = (into["text"] if isinstance(into.get("text"), str) else "") + item["text"]
    for key, value in item.items():
        if key != "text" and (value is not None or key not in into):
            into[key] = value


def _choices(ctx: CheckContext) -> list[Any]:
    choices = get(completion_of(ctx), "choices")
    return choices if isinstance(choices, list) else []


def _max_tokens(ctx: CheckContext) -> int | None:
    value = get(ctx.request_body, "max_tokens")
    return value if is_int(value) else None


def reached_limit(ctx: CheckContext, usage: Any) -> bool:
    """The usage says the answer spent the whole max_tokens of the request."""
    limit, completion = _max_tokens(ctx), get(usage, "completion_tokens")
    return limit is not None and is_int(completion) and completion >= limit


def was_cut(ctx: CheckContext, choice: Any) -> bool:
    """An answer cut at max_tokens: finish_reason says length, or says nothing (null, as 001's example response
    shows) while the usage shows max_tokens spent. Such an answer may have no text: a reasoning model can spend
    a short max_tokens reasoning before it writes any."""
    reason = get(choice, "finish_reason")
    return reason == "length" or (reason is None and reached_limit(ctx, get(completion_of(ctx), "usage")))


@check("usage_total_is_sum", spec=f"{SPEC_RESPONSE} (usage 7 + 74 = 81)",
       strength="should",
       reason="implied, not stated: the usage of 001's expected response format adds up (prompt 7 + completion 74 ="
              " total 81)")
def usage_total_is_sum(ctx: CheckContext) -> Iterator[str]:
    yield from total_is_sum(get(completion_of(ctx), "usage"), "total_tokens", ("prompt_tokens", "completion_tokens"))


@check("max_tokens_respected", spec="001 Chat: max_tokens in the documented requests bounds the answer",
       strength="should",
       reason='implied, not stated: the documented requests send max_tokens and 001 says "budget_tokens must be '
              'less than max_tokens", so max_tokens bounds the answer; no sentence says so')
def max_tokens_respected(ctx: CheckContext) -> Iterator[str]:
    yield from within_limit("max_tokens_respected", _max_tokens(ctx), "max_tokens",
                            get(completion_of(ctx), "usage", "completion_tokens"), "$.usage.completion_tokens")


@check("finish_reason_length_when_truncated",
       spec="ours: OpenAI-compatible clients detect a cut answer by finish_reason 'length'; 001's example response "
            "has finish_reason null, so null (not reported) is accepted, but a reason that says the answer "
            "ended by itself ('stop') when completion_tokens reached max_tokens is not",
       strength="advisory",
       reason="ours: 001's expected response format shows finish_reason null; 'length' for a cut answer is what "
              "OpenAI-compatible clients look for")
def finish_reason_length_when_truncated(ctx: CheckContext) -> Iterator[str]:
    if not reached_limit(ctx, get(completion_of(ctx), "usage")):
        return
    for i, choice in enumerate(_choices(ctx)):
        reason = get(choice, "finish_reason")
        if reason not in ("length", None):
            yield (f"$.choices[{i}].finish_reason: {reason!r}, expected 'length' (or null) "
                   "(completion_tokens reached max_tokens)")


@check("choice_indexes_sequential", spec=f"{SPEC_RESPONSE} (choices[0].index 0)",
       strength="should",
       reason="implied by the example: 001's expected response format shows the one choice with index 0")
def choice_indexes_sequential(ctx: CheckContext) -> Iterator[str]:
    indexes = [get(c, "index") for c in _choices(ctx)]
    if indexes != list(range(len(indexes))):
        yield f"$.choices[*].index: {indexes}, expected {list(range(len(indexes)))}"


@check("assistant_role", spec="001 Reasoning: ChatCompletionMessage(role='assistant', ...)",
       strength="must",
       reason="a documented response: 001 shows the answer as a ChatCompletionMessage with role assistant")
def assistant_role(ctx: CheckContext) -> Iterator[str]:
    for i, choice in enumerate(_choices(ctx)):
        role = get(choice, "message", "role")
        if role != "assistant":
            yield f"$.choices[{i}].message.role: {role!r}, expected 'assistant'"


def message_text(content: Any) -> str:
    """The answer text of a message: the string itself, or the text blocks of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


@check("message_text_non_empty",
       spec="001 Chat: print(response.choices[0].message.content) reads the answer; an answer cut at max_tokens "
            "(finish_reason length, or null with max_tokens spent) may be empty, as a reasoning model can spend "
            "the budget on reasoning",
       strength="must",
       reason='what the documented examples read: "print(completion.choices[0].message.content)" prints the answer')
def message_text_non_empty(ctx: CheckContext) -> Iterator[str]:
    for i, choice in enumerate(_choices(ctx)):
        if was_cut(ctx, choice):
            continue
        if not message_text(get(choice, "message", "content")).strip():
            yield f"$.choices[{i}].message.content: no answer text"


# --- streams -------------------------------------------------------------------------------------------

SPEC_STREAM = "001 Reasoning / Gemini model example (stream: true); OpenAI-compatible chunk streaming"


def _choice_chunks(ctx: CheckContext) -> list[tuple[int, dict[str, Any]]]:
    """(index, chunk) of every chunk with choices: a usage-only chunk (choices: []) is not a choice chunk."""
    return [(p.index, p.payload) for p in ctx.json_events()
            if isinstance(p.payload, dict) and get(p.payload, "choices")]


@check("stream_is_sse", spec=f"{SPEC_STREAM}: stream: true is answered with text/event-stream",
       strength="must",
       reason='a stream request is answered as a stream: 001 sends stream: true to the unified APIs, which are '
              '"OpenAI-compatible interfaces" (OpenAI-compatible clients read server-sent events)')
def stream_is_sse(ctx: CheckContext) -> Iterator[str]:
    if ctx.exchange.events is None:
        yield f"content-type {ctx.exchange.content_type!r}: a stream request was not answered with text/event-stream"
    elif not ctx.exchange.events:
        yield "stream: no events"


@check("stream_done_terminator", spec=f"{SPEC_STREAM}: the stream ends with data: [DONE]",
       strength="must",
       reason='the unified APIs are "OpenAI-compatible interfaces" (003), and an OpenAI chat stream ends with '
              "data: [DONE]: without it a client cannot tell a complete stream from one cut short")
def stream_done_terminator(ctx: CheckContext) -> Iterator[str]:
    events = ctx.exchange.events or []
    done = [i for i, e in enumerate(events) if e.is_done]
    if not done:
        yield "stream: no data: [DONE] terminator (stream cut or not terminated)"
    elif done != [len(events) - 1]:
        yield f"stream: [DONE] at event {done[0]} of {len(events)}; it must come once, last"


@check("stream_single_id", spec=f"{SPEC_STREAM}: every chunk of one completion carries the same id",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces" (one completion, one id); the spec shows no stream')
def stream_single_id(ctx: CheckContext) -> Iterator[str]:
    ids = {get(p.payload, "id") for p in ctx.json_events() if isinstance(p.payload, dict)}
    if len(ids) > 1:
        yield f"stream: {len(ids)} different ids across chunks: {sorted(map(str, ids))[:3]}"


@check("stream_first_delta_role", spec=f"{SPEC_STREAM}: the first delta carries role 'assistant'",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces" (the first delta says who speaks); the spec shows no '
              "stream")
def stream_first_delta_role(ctx: CheckContext) -> Iterator[str]:
    chunks = _choice_chunks(ctx)
    if not chunks:
        yield "stream: no chunk with choices"
        return
    index, first = chunks[0]
    role = get(first, "choices", 0, "delta", "role")
    if role != "assistant":
        yield f"event[{index}].choices[0].delta.role: {role!r}, expected 'assistant'"


@check("stream_finish_reason_once_last",
       spec=f"{SPEC_STREAM}: finish_reason is set at most once, on the last chunk that has choices (null on every "
            "chunk is allowed: 001's example response has finish_reason null)",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces" (finish_reason ends a choice); the spec shows no stream')
def stream_finish_reason_once_last(ctx: CheckContext) -> Iterator[str]:
    chunks = _choice_chunks(ctx)
    finished = [i for i, chunk in chunks if any(get(c, "finish_reason") is not None for c in chunk["choices"])]
    if len(finished) > 1:
        yield f"stream: finish_reason set in {len(finished)} chunks (events {finished[:5]}), expected at most 1"
    elif finished and finished[0] != chunks[-1][0]:
        yield f"event[{finished[0]}]: finish_reason set before the last choice chunk (event {chunks[-1][0]})"


@check("stream_text_non_empty", spec=f"{SPEC_STREAM}: the deltas concatenate to the answer text (which may be "
                                     "empty when cut at max_tokens: finish_reason length, or null with the "
                                     "usage chunk showing max_tokens spent)",
       strength="must",
       reason='what a documented stream request is for: the answer (001 sends stream: true and reads the answer '
              "text)")
def stream_text_non_empty(ctx: CheckContext) -> Iterator[str]:
    chunks = _choice_chunks(ctx)
    reasons = [get(c, "finish_reason") for _, e in chunks for c in e["choices"]]
    if "length" in reasons or (not any(reasons) and reached_limit(ctx, get(completion_of(ctx), "usage"))):
        return  # cut at max_tokens: the budget may have gone to reasoning
    text = "".join(message_text(get(c, "delta", "content")) for _, e in chunks for c in e["choices"])
    if not text.strip():
        yield "stream: the concatenated delta contents are empty"


def _include_usage(ctx: CheckContext) -> bool:
    return get(ctx.request_body, "stream_options", "include_usage") is True


@check("stream_usage_chunk",
       spec=f"{SPEC_STREAM}; OpenAI-compatible stream_options.include_usage: one more chunk before data: [DONE] "
            "carries the usage of the whole request, with choices an empty list, after the last choice chunk",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces" (include_usage adds a usage chunk with empty choices); the '
              "spec shows no stream usage")
def stream_usage_chunk(ctx: CheckContext) -> Iterator[str]:
    if not _include_usage(ctx):
        yield "case error: stream_usage_chunk needs stream_options.include_usage true in the request"
        return
    events = [(p.index, p.payload) for p in ctx.json_events() if isinstance(p.payload, dict)]
    carrying = [(i, chunk) for i, chunk in events if isinstance(chunk.get("usage"), dict)]
    if not carrying:
        yield "stream: no chunk carries usage although stream_options.include_usage was sent"
        return
    index, chunk = carrying[-1]
    if chunk.get("choices") != []:
        count = len(chunk["choices"]) if isinstance(chunk.get("choices"), list) else chunk.get("choices")
        yield f"event[{index}].choices: {count!r} choices on the usage chunk, expected an empty list"
    after = [i for i, _ in _choice_chunks(ctx) if i > index]
    if after:
        yield f"event[{index}]: the usage chunk comes before the choice chunk at event {after[0]}, expected last"
