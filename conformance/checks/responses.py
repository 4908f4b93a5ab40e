"""Responses API checks, for all three routes (003 Supervisor API and OpenAI Responses API; 001 Chat / OpenAI
Responses), for whole responses and for streams of typed events."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any, cast

from conformance.checks.base import CheckContext, check, get, is_int, total_is_sum, within_limit

SPEC_RESPONSE = "001 Chat / OpenAI Responses: expected response format"
SPEC_STREAM = "OpenAI Responses streaming (stream: true), as the OpenAI client of 003 reads it"
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _events(ctx: CheckContext) -> list[tuple[int, dict[str, Any]]]:
    """(index among the stream's events, payload) of every JSON object event."""
    return [(p.index, p.payload) for p in ctx.json_events() if isinstance(p.payload, dict)]


def final_response(ctx: CheckContext) -> Any:
    """The response object: the body, or for a stream the one its terminal event carries."""
    if ctx.exchange.events is None:
        return ctx.body
    for _, event in reversed(_events(ctx)):
        if event.get("type") in TERMINAL:
            return event.get("response")
    return None


def _incomplete(response: Any) -> bool:
    """Cut at max_output_tokens: the answer may be empty (a reasoning model can spend the budget reasoning)."""
    return get(response, "status") == "incomplete"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _messages(response: Any) -> list[tuple[int, dict[str, Any]]]:
    output = get(response, "output")
    if not isinstance(output, list):
        return []
    return [(i, item) for i, item in enumerate(output) if isinstance(item, dict) and item.get("type") == "message"]


def output_text(response: Any) -> str:
    """What the OpenAI client's response.output_text gives: every output_text part of every message item."""
    return "".join(
        part.get("text", "")
        for _, item in _messages(response)
        for part in _list(item.get("content"))
        if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str)
    )


@check("responses_usage_total_is_sum", spec=f"{SPEC_RESPONSE} (usage input 7 + output 74 = total 81)",
       strength="should",
       reason="implied, not stated: the usage of 001's Responses example adds up (input 7 + output 74 = total 81)")
def responses_usage_total_is_sum(ctx: CheckContext) -> Iterator[str]:
    yield from total_is_sum(get(final_response(ctx), "usage"), "total_tokens", ("input_tokens", "output_tokens"))


@check("responses_max_output_tokens_respected",
       spec="001 Chat / OpenAI Responses and 003 OpenAI Responses API: max_output_tokens bounds the answer",
       strength="should",
       reason="implied: the documented requests send max_output_tokens as the limit of the answer; no sentence says"
              " so")
def responses_max_output_tokens_respected(ctx: CheckContext) -> Iterator[str]:
    yield from within_limit("responses_max_output_tokens_respected", get(ctx.request_body, "max_output_tokens"),
                            "max_output_tokens", get(final_response(ctx), "usage", "output_tokens"),
                            "$.usage.output_tokens")


@check("responses_assistant_message",
       spec=f"{SPEC_RESPONSE}: output [{{type: message, role: assistant, content: [...]}}]",
       strength="must",
       reason="a documented response: 001's Responses example has an output item of type message, role assistant")
def responses_assistant_message(ctx: CheckContext) -> Iterator[str]:
    response = final_response(ctx)
    if response is None:
        yield "stream: no terminal event carries the response" if ctx.exchange.events is not None else "$: no body"
        return
    messages = _messages(response)
    if not messages and not _incomplete(response):
        yield "$.output: no item of type message"
    for i, item in messages:
        if item.get("role") != "assistant":
            yield f"$.output[{i}].role: {item.get('role')!r}, expected 'assistant'"


@check("responses_text_non_empty",
       spec="003 Supervisor API: print(response.output_text) reads the answer; an answer cut at "
            "max_output_tokens (status incomplete) may be empty",
       strength="must",
       reason='what the documented example reads: "print(response.output_text)"')
def responses_text_non_empty(ctx: CheckContext) -> Iterator[str]:
    response = final_response(ctx)
    if response is None or _incomplete(response):
        return
    if not output_text(response).strip():
        yield "$.output[*].content[*]: no output_text with answer text"


# --- streams -------------------------------------------------------------------------------------------

@check("responses_stream_created_first", spec=f"{SPEC_STREAM}: the first event is response.created",
       strength="should",
       reason='implied by "OpenResponses-compatible" / the OpenAI Responses API; the spec shows no Responses stream')
def responses_stream_created_first(ctx: CheckContext) -> Iterator[str]:
    events = _events(ctx)
    if not events:
        yield "stream: no JSON events"
    elif events[0][1].get("type") != "response.created":
        yield f"event[{events[0][0]}].type: {events[0][1].get('type')!r}, expected 'response.created'"
    elif sum(e.get("type") == "response.created" for _, e in events) != 1:
        yield "stream: response.created sent more than once"


@check("responses_stream_completed_last",
       spec=f"{SPEC_STREAM}: the last event is response.completed (response.incomplete when cut at "
            "max_output_tokens), sent once",
       strength="should",
       reason='implied by "OpenResponses-compatible" / the OpenAI Responses API; the spec shows no Responses stream')
def responses_stream_completed_last(ctx: CheckContext) -> Iterator[str]:
    events = _events(ctx)
    if not events:
        yield "stream: no JSON events"
        return
    last_index, last_event = events[-1]
    last = last_event.get("type")
    terminal = [i for i, e in events if e.get("type") in TERMINAL]
    if last not in ("response.completed", "response.incomplete"):
        yield f"event[{last_index}].type: {last!r}, expected 'response.completed' last"
    elif last == "response.incomplete" and not _incomplete(last_event.get("response")):
        yield f"event[{last_index}]: response.incomplete without status incomplete"
    if len(terminal) > 1:
        yield f"stream: {len(terminal)} terminal events (at {terminal}), expected exactly one, last"


@check("responses_stream_text_matches",
       spec=f"{SPEC_STREAM}: the response.output_text.delta events concatenate to the final output text, "
            "which is non-empty unless cut at max_output_tokens",
       strength="should",
       reason='implied by "OpenResponses-compatible" / the OpenAI Responses API; the spec shows no Responses stream')
def responses_stream_text_matches(ctx: CheckContext) -> Iterator[str]:
    events = _events(ctx)
    streamed = "".join(e.get("delta", "") for _, e in events
                       if e.get("type") == "response.output_text.delta" and isinstance(e.get("delta"), str))
    response = final_response(ctx)
    if response is None:
        yield "stream: no terminal event carries the response"
        return
    final = output_text(response)
    if streamed != final:
        yield f"stream: the deltas concatenate to {streamed[:80]!r}, the final response says {final[:80]!r}"
    if not streamed.strip() and not _incomplete(response):
        yield "stream: no response.output_text.delta text"
    for i, event in events:
        if event.get("type") == "response.output_text.done" and event.get("text") != streamed:
            yield f"event[{i}] response.output_text.done: text {str(event.get('text'))[:80]!r} != the deltas"


@check("responses_stream_sequence_increasing",
       spec=f"{SPEC_STREAM}: sequence_number, where events carry it, increases from event to event",
       strength="should",
       reason='implied by "OpenResponses-compatible" / the OpenAI Responses API; the spec shows no Responses stream')
def responses_stream_sequence_increasing(ctx: CheckContext) -> Iterator[str]:
    numbers = [(i, cast(int, e["sequence_number"])) for i, e in _events(ctx) if is_int(e.get("sequence_number"))]
    for (_, a), (j, b) in pairwise(numbers):
        if b <= a:
            yield f"event[{j}].sequence_number: {b} after {a}"
            return


@check("responses_incomplete_when_truncated",
       spec="001 Chat / OpenAI Responses and 003 OpenAI Responses API: max_output_tokens bounds the answer; an "
            "OpenAI Responses answer cut there has status incomplete with incomplete_details (its reason), and a "
            "stream ends with response.incomplete",
       strength="should",
       reason='implied: the documented requests send max_output_tokens, and the Responses routes are the OpenAI '
              'Responses API ("OpenResponses-compatible"), which reports a cut answer as status incomplete; the '
              "spec shows no cut answer")
def responses_incomplete_when_truncated(ctx: CheckContext) -> Iterator[str]:
    limit = get(ctx.request_body, "max_output_tokens")
    if not is_int(limit):
        yield "case error: responses_incomplete_when_truncated needs max_output_tokens in the request"
        return
    response = final_response(ctx)
    if response is None:
        return  # no response to judge: responses_assistant_message says so
    output, status = get(response, "usage", "output_tokens"), get(response, "status")
    if is_int(output) and output >= limit and status != "incomplete":
        yield (f"$.status: {status!r}, expected 'incomplete' (output_tokens {output} reached max_output_tokens "
               f"{limit})")
    if status == "incomplete":
        details = get(response, "incomplete_details")
        reason = get(details, "reason")
        if not isinstance(reason, str) or not reason:
            yield f"$.incomplete_details: {details!r}, expected an object with the reason (status incomplete)"
        terminal = [(i, e.get("type")) for i, e in _events(ctx) if e.get("type") in TERMINAL]
        if ctx.exchange.events is not None and terminal and terminal[-1][1] != "response.incomplete":
            at, kind = terminal[-1]
            yield f"event[{at}].type: {kind!r}, expected 'response.incomplete' (the response's status is incomplete)"
