"""Anthropic Messages checks (003 Query model services with native APIs / Anthropic Messages API).

A stream is judged by the same message checks after it is assembled the way the anthropic client assembles it
(message_start's message, blocks from content_block_* events, stop_reason and usage from message_delta), plus
checks of the event sequence itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get, is_int, within_limit
from conformance.schemas import validate

SPEC = "003 Native APIs / Anthropic Messages API"
SPEC_STREAM = (f"{SPEC}: the documented anthropic client, with stream=True, reads Anthropic's event stream "
               "(message_start, content_block_start/delta/stop per block, message_delta, message_stop; ping anywhere)")
DELTA_TYPES = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
               "tool_use": {"input_json_delta"}, "redacted_thinking": set()}


def _events(ctx: CheckContext) -> list[tuple[int, str | None, Any]]:
    """(index, SSE event name, payload) of every JSON event (an event that is not JSON is the judge's finding)."""
    return [(p.index, p.event, p.payload) for p in ctx.json_events()]


def assemble(events: list[Any]) -> dict[str, Any] | None:
    """The Message a stream amounts to, as the anthropic client accumulates it; None without message_start."""
    message: dict[str, Any] | None = None
    for payload in events:
        kind = get(payload, "type")
        if kind == "message_start" and isinstance(get(payload, "message"), dict):
            message = copy.deepcopy(payload["message"])
            message.setdefault("content", [])
        if message is None or not isinstance(message.get("content"), list):
            continue
        blocks = message["content"]
        index = get(payload, "index")
        if kind == "content_block_start" and is_int(index) and isinstance(get(payload, "content_block"), dict):
            while len(blocks) <= index:
                blocks.append({})
            blocks[index] = copy.deepcopy(payload["content_block"])
        elif kind == "content_block_delta" and is_int(index) and index < len(blocks):
            block, delta = blocks[index], get(payload, "delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text", "")) + str(delta.get("text", ""))
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = str(block.get("thinking", "")) + str(delta.get("thinking", ""))
            elif delta.get("type") == "signature_delta":
                block["signature"] = delta.get("signature")
        elif kind == "message_delta":
            for key, value in (get(payload, "delta") or {}).items():
                message[key] = value
            usage = get(payload, "usage")
            if isinstance(usage, dict):
                message["usage"] = {**(message.get("usage") or {}),
                                    **{k: v for k, v in usage.items() if v is not None}}
    return message


def message_of(ctx: CheckContext) -> Any:
    """The answer's Message: the JSON body, or the assembled stream."""
    if ctx.exchange.events is not None:
        return assemble([payload for _, _, payload in _events(ctx)])
    return ctx.body


def _blocks(message: Any) -> list[Any]:
    content = get(message, "content")
    return content if isinstance(content, list) else []


def _max_tokens(ctx: CheckContext) -> int | None:
    value = get(ctx.request_body, "max_tokens")
    return value if is_int(value) else None


@check("anthropic_max_tokens_respected", spec=f"{SPEC}: max_tokens=256 bounds the answer (usage.output_tokens)",
       strength="should",
       reason="implied: the documented request sends max_tokens=256 as the limit of the answer; no sentence says so")
def anthropic_max_tokens_respected(ctx: CheckContext) -> Iterator[str]:
    yield from within_limit("anthropic_max_tokens_respected", _max_tokens(ctx), "max_tokens",
                            get(message_of(ctx), "usage", "output_tokens"), "$.usage.output_tokens")


@check("anthropic_stop_reason_max_tokens_when_truncated",
       spec=f"{SPEC}: the anthropic client reads a cut answer from stop_reason 'max_tokens'",
       strength="should",
       reason='implied by "Provider-specific interfaces": Anthropic\'s stop_reason max_tokens; the spec shows no '
              "Anthropic answer")
def anthropic_stop_reason_max_tokens_when_truncated(ctx: CheckContext) -> Iterator[str]:
    limit, message = _max_tokens(ctx), message_of(ctx)
    output = get(message, "usage", "output_tokens")
    if limit is not None and is_int(output) and output >= limit and get(message, "stop_reason") != "max_tokens":
        yield (f"$.stop_reason: {get(message, 'stop_reason')!r}, expected 'max_tokens' "
               f"(output_tokens {output} reached max_tokens {limit})")


@check("anthropic_text_non_empty",
       spec=f"{SPEC}: print(message.content[0].text) reads the answer; an answer cut at max_tokens may have none",
       strength="must",
       reason='what the documented example reads: "print(message.content[0].text)"')
def anthropic_text_non_empty(ctx: CheckContext) -> Iterator[str]:
    message = message_of(ctx)
    if message is None:
        yield "stream: no message_start event, no message to read"
        return
    if get(message, "stop_reason") == "max_tokens":
        return
    texts = [b for b in _blocks(message) if get(b, "type") == "text"]
    if not "".join(str(get(b, "text") or "") for b in texts).strip():
        yield f"$.content: no text block with text (block types {[get(b, 'type') for b in _blocks(message)]})"


@check("anthropic_thinking_before_text",
       spec="001 Reasoning / Types of reasoning models (hybrid: thinking with budget_tokens); Anthropic extended "
            "thinking: the thinking block comes before the text block",
       strength="should",
       reason='implied by "Provider-specific interfaces" (Anthropic\'s thinking blocks come first); 001 documents '
              "thinking only through the chat completions endpoint")
def anthropic_thinking_before_text(ctx: CheckContext) -> Iterator[str]:
    types = [get(b, "type") for b in _blocks(message_of(ctx))]
    thinking = [i for i, t in enumerate(types) if t in ("thinking", "redacted_thinking")]
    text = [i for i, t in enumerate(types) if t == "text"]
    if not thinking:
        yield f"$.content: no thinking block although thinking was enabled (block types {types})"
    elif text and text[0] < thinking[0]:
        yield f"$.content[{text[0]}]: a text block before the first thinking block (block types {types})"


@check("anthropic_thinking_signed",
       spec="001 Reasoning / multi-turn: a reasoning block is sent back unmodified, so it carries its signature; "
            "Anthropic thinking blocks have `signature` (a stream sends it as signature_delta)",
       strength="should",
       reason='implied: a reasoning block goes back "unmodified" in a later turn (001), and Anthropic checks its '
              "signature; not stated for the native API")
def anthropic_thinking_signed(ctx: CheckContext) -> Iterator[str]:
    for i, block in enumerate(_blocks(message_of(ctx))):
        if get(block, "type") == "thinking" and not (isinstance(get(block, "signature"), str) and block["signature"]):
            yield f"$.content[{i}].signature: a thinking block without a signature"


# --- streams -------------------------------------------------------------------------------------------


@check("anthropic_stream_sequence", spec=SPEC_STREAM,
       strength="should",
       reason='implied by "Provider-specific interfaces": Anthropic\'s event stream, which the anthropic client '
              "assembles; the spec shows no Anthropic stream")
def anthropic_stream_sequence(ctx: CheckContext) -> Iterator[str]:
    events = _events(ctx)
    problem = _event_names_problem(events)
    if problem:
        yield problem
        return
    seq = [(i, get(p, "type"), p) for i, _, p in events if get(p, "type") != "ping"]
    if not seq or seq[0][1] != "message_start":
        yield f"stream: the first event is {seq[0][1] if seq else None!r}, expected message_start"
        return
    if seq[-1][1] != "message_stop":
        yield f"stream: the last event is {seq[-1][1]!r}, expected message_stop"
        return
    blocks = _BlockSequence()
    for i, kind, payload in seq[1:-1]:
        problem = blocks.next(kind, get(payload, "index"), payload)
        if problem:
            yield f"event[{i}]: {problem}"
            return
    if blocks.deltas == 0:
        yield "stream: no message_delta (stop_reason and final usage) before message_stop"


def _event_names_problem(events: list[tuple[int, Any, Any]]) -> str | None:
    """Each event's SSE name is its data.type (the client dispatches on it), and none is an error event."""
    for i, name, payload in events:
        kind = get(payload, "type")
        if name != kind:
            return f"event[{i}]: SSE event name {name!r} differs from data.type {kind!r} (the client dispatches on it)"
        if kind == "error":
            return f"event[{i}]: an error event in the stream: {get(payload, 'error')}"
    return None


class _BlockSequence:
    """The events between message_start and message_stop: content blocks started, filled and stopped one at a
    time, in index order, then message_delta."""

    def __init__(self) -> None:
        self.block_types: dict[int, Any] = {}
        self.open: int | None = None
        self.deltas = 0

    def next(self, kind: str, index: Any, payload: Any) -> str | None:
        if kind in ("message_start", "message_stop"):
            return f"a second {kind}"
        if kind.startswith("content_block_") and self.deltas:
            return f"{kind} after message_delta"
        if kind == "content_block_start":
            if self.open is not None or index != len(self.block_types):
                return (f"content_block_start index {index} while block {self.open} is open "
                        f"or {len(self.block_types)} blocks were started")
            self.open, self.block_types[index] = index, get(payload, "content_block", "type")
        elif kind in ("content_block_delta", "content_block_stop"):
            if index != self.open or self.open is None:
                return f"{kind} for block {index}, but the open block is {self.open}"
            if kind == "content_block_stop":
                self.open = None
                return None
            return self._delta_problem(index, payload)
        elif kind == "message_delta":
            if self.open is not None:
                return f"message_delta while block {self.open} is open"
            self.deltas += 1
        return None

    def _delta_problem(self, index: int, payload: Any) -> str | None:
        allowed = DELTA_TYPES.get(self.block_types[index])
        delta_type = get(payload, "delta", "type")
        if allowed is not None and delta_type not in allowed:
            return f"a {delta_type!r} delta in a {self.block_types[index]!r} block"
        return None


@check("anthropic_stream_assembles", spec=f"{SPEC_STREAM}; the assembled message is a Message (anthropic.message)",
       strength="should",
       reason='implied by "Provider-specific interfaces": a stream adds up to a Message; the spec shows no '
              "Anthropic stream")
def anthropic_stream_assembles(ctx: CheckContext) -> Iterator[str]:
    message = message_of(ctx)
    if message is None:
        yield "stream: no message_start event"
        return
    for error in validate("anthropic.message", message):
        yield f"assembled message {error}"
