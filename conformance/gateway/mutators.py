"""Output deviations of the reference gateway as named mutators, in the manner of Schemathesis's named mutations.

The surfaces build conformant answers only; where an answer (or a part of one: a message, a usage object, the
list of a stream's events) is complete, they hand it to `mutate(request, target, value)`. Every mutator is
registered under the name of the deviation switch it implements (behaviours.yaml) and the target it changes;
`mutate` applies those whose switch is on, in the order they are defined here. A mutator breaks one rule of the
contract and leaves the rest of the answer as it was (a later value derived from a changed one is changed with
it: a signature over an emptied text is the signature of the empty text).

Deviations that change what the gateway accepts or generates (a limit not enforced, max_tokens ignored, an input
refused) stay where the request is read: they are decisions, not changes of a finished answer.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Mutate = Callable[[Any, "Context"], Any]


@dataclass(frozen=True)
class Context:
    """What a mutator may read besides the value: the request, and the answer object that built the value."""

    request: Request
    answer: Any = None


@dataclass(frozen=True)
class Mutator:
    name: str  # the switch (conformance/gateway/behaviours.yaml)
    target: str  # what it changes, e.g. chat.completion, chat.chunks
    apply: Mutate = field(repr=False)
    doc: str = ""


MUTATORS: list[Mutator] = []


def mutator(name: str, *targets: str) -> Callable[[Mutate], Mutate]:
    """Register a function as the mutator of switch `name` for each target."""

    def register(function: Mutate) -> Mutate:
        MUTATORS.extend(Mutator(name, target, function, (function.__doc__ or "").strip()) for target in targets)
        return function

    return register


def mutate(request: Request, target: str, value: Any, answer: Any = None) -> Any:
    """The value with every switched-on mutator of the target applied.

    A self-test gateway (GatewayState.self_test) notes a mutator's switch as consulted exactly when the mutator
    changes this answer, whether its switch is on or not: the harness (tests/harness.py) performs an item under a
    switch only if its baseline answer (no switch on) consulted it, so a mutator that would change an answer must
    say so with its switch off, and one that leaves the answer as it was (a reversed list of one vector) must not
    claim it, or the harness would expect a failure the answer cannot show. The trials are made only while no
    switch is on: the harness reads what was consulted from the baseline alone, and a trial (a deep copy and a
    mutation) per switched-off mutator is most of what a self-test gateway spends on an answer."""
    state = request.app.state.gateway  # common.GatewayState (common imports this module)
    trials = state.self_test and not state.switches
    if not state.switches and not trials:
        return value
    context = Context(request, answer)
    for entry in MUTATORS:
        if entry.target != target:
            continue
        if entry.name in state.switches:
            value, changed = _apply(entry, value, context)
        else:
            changed = trials and _would_change(entry, value, context, state.consulted)
        if changed:
            state.on(entry.name)
    return value


def _apply(entry: Mutator, value: Any, context: Context) -> tuple[Any, bool]:
    """The mutated value, and whether the mutator changed it."""
    if isinstance(value, dict | list):
        before = copy.deepcopy(value)
        value = entry.apply(value, context)
        return value, value != before
    mutated = entry.apply(value, context)  # a response: a mutator that changes it makes another
    return mutated, mutated is not value


def _would_change(entry: Mutator, value: Any, context: Context, consulted: set[str]) -> bool:
    """A switched-off mutator tried on a copy of the value. What the trial itself asks the gateway (a stream
    answered as one JSON completion builds that completion) is forgotten: with the switch off it was not asked.
    A mutator that raises on this value would make the answer an error when on: that changes it."""
    kept = set(consulted)
    try:
        _, changed = _apply(entry, copy.deepcopy(value) if isinstance(value, dict | list) else value, context)
    except Exception:  # any error would change the answer
        changed = True
    finally:
        consulted.clear()
        consulted.update(kept)
    return changed


def names() -> frozenset[str]:
    return frozenset(m.name for m in MUTATORS)


def _choices(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The choices of a chat stream's chunks (an event without choices, or with a usage only, has none)."""
    return [choice for chunk in chunks for choice in chunk.get("choices", [])]


# --- Chat Completions (conformance/gateway/chat.py) ------------------------------------------------------------


@mutator("usage-sum-wrong", "chat.completion", "chat.chunks")
def _usage_sum_wrong(value: Any, _: Context) -> Any:
    """usage.total_tokens one more than prompt_tokens + completion_tokens."""
    for holder in value if isinstance(value, list) else [value]:
        if isinstance(holder.get("usage"), dict):
            holder["usage"]["total_tokens"] += 1
    return value


@mutator("finish-reason-stop-when-truncated", "chat.completion", "chat.chunks")
def _finish_stop_when_truncated(value: Any, _: Context) -> Any:
    """finish_reason stop for an answer cut at max_tokens (length)."""
    for choice in _choices(value) if isinstance(value, list) else value["choices"]:
        if choice.get("finish_reason") == "length":
            choice["finish_reason"] = "stop"
    return value


@mutator("wrong-object-name", "chat.completion")
def _wrong_object_name(body: dict[str, Any], _: Context) -> dict[str, Any]:
    body["object"] = "chat.completions"
    return body


@mutator("role-not-assistant", "chat.completion")
def _role_not_assistant(body: dict[str, Any], _: Context) -> dict[str, Any]:
    for choice in body["choices"]:
        choice["message"]["role"] = "model"
    return body


@mutator("choice-index-wrong", "chat.completion")
def _choice_index_wrong(body: dict[str, Any], _: Context) -> dict[str, Any]:
    for choice in body["choices"]:
        choice["index"] += 1
    return body


@mutator("empty-content", "chat.completion")
def _empty_content(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The assistant's text emptied (a reasoning block is left as it is)."""
    for choice in body["choices"]:
        message = choice["message"]
        if isinstance(message["content"], str):
            message["content"] = ""
        else:
            for block in message["content"]:
                if block.get("type") == "text":
                    block["text"] = ""
    return body


@mutator("usage-missing", "chat.completion")
def _usage_missing(body: dict[str, Any], _: Context) -> dict[str, Any]:
    body.pop("usage", None)
    return body


@mutator("drift-content-blocks", "chat.completion")
def _drift_content_blocks(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """Drift, conformant: text content as a list of typed blocks (001 Reasoning shows such lists)."""
    for choice in body["choices"]:
        if isinstance(choice["message"]["content"], str):
            choice["message"]["content"] = [{"type": "text", "text": choice["message"]["content"]}]
    return body


@mutator("drift-new-field", "chat.completion")
def _drift_new_field(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """Drift, conformant: a new top-level field."""
    body["x_route"] = {"endpoint": "primary"}
    return body


def _reasoning_blocks(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The content lists of the choices that carry a reasoning block."""
    return [c["message"]["content"] for c in body["choices"] if isinstance(c["message"]["content"], list)
            and any(b.get("type") == "reasoning" for b in c["message"]["content"])]


def _summary_items(value: Any) -> list[dict[str, Any]]:
    """The summary items of every reasoning block: of a completion's content lists, or of a stream's deltas."""
    if isinstance(value, list):
        contents = [c["delta"]["content"] for c in _choices(value) if isinstance(c["delta"].get("content"), list)]
    else:
        contents = _reasoning_blocks(value)
    return [item for content in contents for block in content if block.get("type") == "reasoning"
            for item in block.get("summary", [])]


@mutator("reasoning-summary-empty", "chat.completion", "chat.chunks")
def _reasoning_summary_empty(value: Any, _: Context) -> Any:
    """Summary texts emptied (each still signed: the signature is of the empty text)."""
    from conformance.gateway.reasoning import signature

    for item in _summary_items(value):
        item["text"] = ""
        if "signature" in item:
            item["signature"] = signature("")
    return value


@mutator("reasoning-as-string", "chat.completion")
def _reasoning_as_string(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The reasoning and the text run together into one string."""
    for choice in body["choices"]:
        content = choice["message"]["content"]
        if content in _reasoning_blocks(body):
            words = [item["text"] for block in content if block.get("type") == "reasoning"
                     for item in block["summary"]]
            words += [block["text"] for block in content if block.get("type") == "text"]
            choice["message"]["content"] = " ".join(words).strip()
    return body


@mutator("reasoning-as-string", "chat.chunks")
def _reasoning_as_string_deltas(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """A stream's reasoning deltas sent as plain text deltas, run together with the answer's text."""
    for choice in _choices(chunks):
        content = choice["delta"].get("content")
        if isinstance(content, list):
            texts = [item.get("text", "") for block in content if block.get("type") == "reasoning"
                     for item in block.get("summary", [])]
            choice["delta"]["content"] = "".join(texts)
    return chunks


@mutator("reasoning-signature-missing", "chat.completion", "chat.chunks")
def _reasoning_signature_missing(value: Any, _: Context) -> Any:
    for item in _summary_items(value):
        item.pop("signature", None)
    return value


@mutator("reasoning-blocks-reversed", "chat.completion")
def _reasoning_blocks_reversed(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The text block before the reasoning block."""
    for content in _reasoning_blocks(body):
        content.reverse()
    return body


@mutator("reasoning-blocks-reversed", "chat.chunks")
def _reasoning_deltas_after_text(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """A stream's reasoning deltas after its text deltas (before the closing chunk)."""
    def reasoning(chunk: dict[str, Any]) -> bool:
        return any(isinstance(c["delta"].get("content"), list) for c in chunk.get("choices", []))

    thinking = [chunk for chunk in chunks if reasoning(chunk)]
    if not thinking:
        return chunks
    rest = [chunk for chunk in chunks if not reasoning(chunk)]
    closing = max(i for i, chunk in enumerate(rest) if chunk.get("choices"))
    return [*rest[:closing], *thinking, *rest[closing:]]


@mutator("wrong-chunk-object", "chat.chunks")
def _wrong_chunk_object(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    for chunk in chunks:
        chunk["object"] = "chat.completion"
    return chunks


@mutator("stream-no-role", "chat.chunks")
def _stream_no_role(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """The first delta without role: assistant."""
    first = next(iter(_choices(chunks)), None)
    if first is not None:
        first["delta"].pop("role", None)
    return chunks


@mutator("stream-empty-deltas", "chat.chunks")
def _stream_empty_deltas(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Every delta's text empty: the stream carries no text (a stream cut at max_tokens may have none: left as
    it is)."""
    if any(choice.get("finish_reason") == "length" for choice in _choices(chunks)):
        return chunks
    for choice in _choices(chunks):
        if isinstance(choice["delta"].get("content"), str):
            choice["delta"]["content"] = ""
    return chunks


@mutator("stream-finish-reason-every-chunk", "chat.chunks")
def _stream_finish_every_chunk(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """The closing finish_reason on every chunk, not on the last one only."""
    choices = _choices(chunks)
    for choice in choices:
        choice["finish_reason"] = choices[-1]["finish_reason"]
    return chunks


@mutator("stream-id-changes", "chat.chunks")
def _stream_id_changes(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Each chunk with choices under an id of its own."""
    numbered = [chunk for chunk in chunks if chunk.get("choices")]
    for i, chunk in enumerate(numbered):
        if chunk["id"] is not None:
            chunk["id"] = f"{chunk['id']}-{i}"
    return chunks


@mutator("stream-usage-on-choice-chunk", "chat.chunks")
def _stream_usage_on_choice_chunk(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """include_usage answered with the usage on the closing choice chunk, no usage chunk of its own."""
    if not chunks or chunks[-1].get("choices") or not isinstance(chunks[-1].get("usage"), dict):
        return chunks
    usage = chunks.pop()["usage"]
    closing = [chunk for chunk in chunks if chunk.get("choices")][-1]
    closing["usage"] = usage
    return chunks


@mutator("stream-event-not-json", "chat.events")
def _stream_event_not_json(events: list[Any], _: Context) -> list[Any]:
    """Before the third event, a copy of it cut in half, as a broken proxy sends it."""
    if len(events) > 2 and isinstance(events[2], dict):
        text = json.dumps(events[2])
        events.insert(2, text[: len(text) // 2])
    return events


@mutator("stream-no-done", "chat.events")
def _stream_no_done(events: list[Any], _: Context) -> list[Any]:
    """No data: [DONE] at the end."""
    return [event for event in events if event != "[DONE]"]


@mutator("stream-not-sse", "chat.stream")
def _stream_not_sse(_: Response, context: Context) -> Response:
    """A stream request answered with one JSON completion instead of server-sent events."""
    return JSONResponse(context.answer.completion())


# --- Embeddings (conformance/gateway/embeddings.py) ------------------------------------------------------------


def _map_vector(item: dict[str, Any], change: Callable[[list[float]], list[float]]) -> None:
    """Change an item's vector, whether it is sent as numbers or as base64 float32s."""
    vector = item["embedding"]
    if isinstance(vector, str):
        raw = base64.b64decode(vector)
        values = change(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
        item["embedding"] = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    else:
        item["embedding"] = change(vector)


@mutator("embeddings-vector-lengths-differ", "embeddings.list")
def _vector_lengths_differ(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The second vector one value shorter than the others."""
    if len(body["data"]) > 1:
        _map_vector(body["data"][1], lambda values: values[:-1])
    return body


@mutator("embeddings-non-finite", "embeddings.list")
def _non_finite(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """A NaN in every vector (sent as the bare NaN some JSON encoders write)."""
    for item in body["data"]:
        _map_vector(item, lambda values: [float("nan"), *values[1:]])
    return body


@mutator("embeddings-index-wrong", "embeddings.list")
def _index_wrong(body: dict[str, Any], _: Context) -> dict[str, Any]:
    for item in body["data"]:
        item["index"] += 1
    return body


@mutator("embedding-index-missing", "embeddings.list")
def _index_missing(body: dict[str, Any], _: Context) -> dict[str, Any]:
    for item in body["data"]:
        del item["index"]
    return body


@mutator("embeddings-order-reversed", "embeddings.list")
def _order_reversed(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The vectors in reverse input order (each keeps its index)."""
    body["data"].reverse()
    return body


@mutator("embeddings-order-renumbered", "embeddings.list")
def _order_renumbered(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The vectors in reverse input order, renumbered 0..n-1: the indexes look right, the vectors are not."""
    body["data"].reverse()
    for i, item in enumerate(body["data"]):
        item["index"] = i
    return body


@mutator("embeddings-vector-missing", "embeddings.list")
def _vector_missing(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """One vector fewer than inputs."""
    body["data"].pop()
    return body


@mutator("embeddings-wrong-object", "embeddings.list")
def _embeddings_wrong_object(body: dict[str, Any], _: Context) -> dict[str, Any]:
    body["object"] = "embeddings"
    return body


@mutator("embeddings-usage-inconsistent", "embeddings.list")
def _embeddings_usage_inconsistent(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """total_tokens other than prompt_tokens (an embedding has no output tokens)."""
    body["usage"]["total_tokens"] += 1
    return body


# --- Responses (conformance/gateway/responses.py) --------------------------------------------------------------


@mutator("responses-part-untyped", "responses.part")
def _part_untyped(part: dict[str, Any], _: Context) -> dict[str, Any]:
    """An output part with its text only: no type."""
    return {"text": part["text"]}


@mutator("responses-role-not-assistant", "responses.message")
def _responses_role_not_assistant(item: dict[str, Any], _: Context) -> dict[str, Any]:
    item["role"] = "model"
    return item


@mutator("responses-empty-text", "responses.response")
def _responses_empty_text(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """The finished response's message text emptied (the stream's deltas keep theirs); a response cut at
    max_output_tokens may have no text: left as it is."""
    if body.get("status") == "incomplete":
        return body
    for item in body["output"]:
        for part in item.get("content", []) if item.get("type") == "message" else []:
            part["text"] = ""
    return body


@mutator("responses-wrong-object", "responses.response")
def _responses_wrong_object(body: dict[str, Any], _: Context) -> dict[str, Any]:
    body["object"] = "responses"
    return body


@mutator("responses-status-invalid", "responses.response")
def _responses_status_invalid(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """A finished response's status neither completed nor incomplete."""
    if body.get("status") in ("completed", "incomplete"):
        body["status"] = "done"
    return body


@mutator("responses-usage-missing", "responses.response")
def _responses_usage_missing(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """A finished response without usage (an unfinished one's usage is null either way)."""
    if isinstance(body.get("usage"), dict):
        del body["usage"]
    return body


@mutator("responses-usage-sum-wrong", "responses.response")
def _responses_usage_sum_wrong(body: dict[str, Any], _: Context) -> dict[str, Any]:
    if isinstance(body.get("usage"), dict):
        body["usage"]["total_tokens"] += 1
    return body


@mutator("responses-incomplete-as-completed", "responses.response")
def _incomplete_as_completed(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """A response cut at max_output_tokens reported as completed, without incomplete_details."""
    if body.get("status") == "incomplete":
        body["status"] = "completed"
        body.pop("incomplete_details", None)
    return body


@mutator("responses-incomplete-details-missing", "responses.response")
def _incomplete_details_missing(body: dict[str, Any], _: Context) -> dict[str, Any]:
    """status incomplete without incomplete_details (null, as a proxy that drops the field sends it)."""
    if body.get("status") == "incomplete":
        body["incomplete_details"] = None
    return body


@mutator("responses-stream-completed-when-cut", "responses.events")
def _stream_completed_when_cut(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """A cut stream's last event response.completed (its response still says incomplete)."""
    for event in events:
        if event["type"] == "response.incomplete":
            event["type"] = "response.completed"
    return events


@mutator("responses-stream-created-not-first", "responses.events")
def _created_not_first(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """response.in_progress before response.created."""
    events[0], events[1] = events[1], events[0]
    return events


@mutator("responses-stream-completed-not-last", "responses.events")
def _completed_not_last(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """The terminal event before the last output_item.done."""
    events[-2], events[-1] = events[-1], events[-2]
    return events


@mutator("responses-stream-deltas-mismatch", "responses.events")
def _deltas_mismatch(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Text deltas without the spaces between words: they no longer add up to the done text."""
    for event in events:
        if event["type"] == "response.output_text.delta":
            event["delta"] = event["delta"].lstrip(" ")
    return events


@mutator("responses-stream-sequence-repeats", "responses.numbered_events")
def _sequence_repeats(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """sequence_number stops increasing after 3."""
    for event in events:
        event["sequence_number"] = min(event["sequence_number"], 3)
    return events


# --- Anthropic Messages (conformance/gateway/anthropic.py) -----------------------------------------------------


@mutator("anthropic-thinking-missing", "anthropic.blocks")
def _thinking_missing(blocks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Thinking enabled, but no thinking block."""
    return [block for block in blocks if block["type"] != "thinking"]


@mutator("anthropic-thinking-unsigned", "anthropic.blocks")
def _thinking_unsigned(blocks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    for block in blocks:
        if block["type"] == "thinking":
            del block["signature"]
    return blocks


@mutator("anthropic-thinking-after-text", "anthropic.blocks")
def _thinking_after_text(blocks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    return [*(b for b in blocks if b["type"] != "thinking"), *(b for b in blocks if b["type"] == "thinking")]


@mutator("anthropic-usage-not-int", "anthropic.usage")
def _usage_not_int(usage: dict[str, Any], _: Context) -> dict[str, Any]:
    """output_tokens as a string."""
    usage["output_tokens"] = str(usage["output_tokens"])
    return usage


@mutator("anthropic-type-wrong", "anthropic.envelope")
def _anthropic_type_wrong(message: dict[str, Any], _: Context) -> dict[str, Any]:
    message["type"] = "chat.completion"
    return message


def _stop_holders(value: Any) -> list[dict[str, Any]]:
    """Where a stop_reason is: a Message envelope, or the delta of a stream's message_delta."""
    if isinstance(value, list):
        return [event["delta"] for event in value if event["type"] == "message_delta"]
    return [value]


@mutator("anthropic-stop-reason-invalid", "anthropic.envelope", "anthropic.events")
def _stop_reason_invalid(value: Any, _: Context) -> Any:
    """A stop_reason Anthropic does not define."""
    for holder in _stop_holders(value):
        if holder["stop_reason"] is not None:
            holder["stop_reason"] = "stop"
    return value


@mutator("anthropic-end-turn-when-truncated", "anthropic.envelope", "anthropic.events")
def _end_turn_when_truncated(value: Any, _: Context) -> Any:
    """stop_reason end_turn for an answer cut at max_tokens."""
    for holder in _stop_holders(value):
        if holder["stop_reason"] == "max_tokens":
            holder["stop_reason"] = "end_turn"
    return value


@mutator("anthropic-stop-sequence-missing", "anthropic.envelope", "anthropic.events")
def _stop_sequence_missing(value: Any, _: Context) -> Any:
    for holder in _stop_holders(value):
        del holder["stop_sequence"]
    return value


@mutator("anthropic-usage-not-int", "anthropic.events")
def _usage_not_int_in_delta(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    for event in events:
        if event["type"] == "message_delta":
            event["usage"]["output_tokens"] = str(event["usage"]["output_tokens"])
    return events


@mutator("anthropic-content-string", "anthropic.message")
def _content_string(message: dict[str, Any], _: Context) -> dict[str, Any]:
    """content as a string of the text blocks, not a list of blocks."""
    message["content"] = " ".join(b["text"] for b in message["content"] if b["type"] == "text")
    return message


@mutator("anthropic-stream-out-of-order", "anthropic.events")
def _stream_out_of_order(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Every content_block_stop after message_delta."""
    stops = [event for event in events if event["type"] == "content_block_stop"]
    rest = [event for event in events if event["type"] != "content_block_stop"]
    at = next(i for i, event in enumerate(rest) if event["type"] == "message_delta") + 1
    return [*rest[:at], *stops, *rest[at:]]


# --- Gemini (conformance/gateway/gemini.py) --------------------------------------------------------------------


def _candidates(response: dict[str, Any]) -> list[dict[str, Any]]:
    return list(response.get("candidates", []))


@mutator("gemini-role-user", "gemini.response")
def _gemini_role_user(response: dict[str, Any], _: Context) -> dict[str, Any]:
    """The answer's content under role user, not model."""
    for candidate in _candidates(response):
        candidate["content"]["role"] = "user"
    return response


@mutator("gemini-usage-missing", "gemini.response")
def _gemini_usage_missing(response: dict[str, Any], _: Context) -> dict[str, Any]:
    response.pop("usageMetadata", None)
    return response


@mutator("gemini-usage-total-wrong", "gemini.usage")
def _gemini_usage_total_wrong(usage: dict[str, Any], _: Context) -> dict[str, Any]:
    usage["totalTokenCount"] += 1
    return usage


@mutator("gemini-finish-reason-invalid", "gemini.response")
def _gemini_finish_reason_invalid(response: dict[str, Any], _: Context) -> dict[str, Any]:
    """A finishReason Google does not define."""
    for candidate in _candidates(response):
        if "finishReason" in candidate:
            candidate["finishReason"] = "COMPLETE"
    return response


@mutator("gemini-finish-stop-when-truncated", "gemini.response")
def _gemini_finish_stop_when_truncated(response: dict[str, Any], _: Context) -> dict[str, Any]:
    for candidate in _candidates(response):
        if candidate.get("finishReason") == "MAX_TOKENS":
            candidate["finishReason"] = "STOP"
    return response


@mutator("gemini-stream-finish-early", "gemini.chunks")
def _gemini_stream_finish_early(chunks: list[dict[str, Any]], context: Context) -> list[dict[str, Any]]:
    """finishReason (and the usage that comes with it) on the first event instead of the last."""
    answer, sent = context.answer, 0
    out = []
    for n, chunk in enumerate(chunks):
        if not chunk.get("candidates"):  # a usage-only event
            out.append(chunk)
            continue
        text = chunk["candidates"][0]["content"]["parts"][0]["text"]
        sent += len(text.split())
        out.append(answer.chunk(text, sent, n == 0))
    return out


@mutator("gemini-stream-not-sse", "gemini.stream")
def _gemini_stream_not_sse(_: Response, context: Context) -> Response:
    """streamGenerateContent?alt=sse answered with the JSON array Google sends without alt=sse."""
    return JSONResponse(context.answer.chunks())


# --- streamed usage (every surface's stream against the same request not streamed) -----------------------------

STREAM_USAGE_SKEW = 3  # stream-usage-differs: a stream's prompt counted 3 tokens off the whole answer's


def _skew(usage: Any, prompt: str, total: str | None = None) -> None:
    """A usage object's prompt count (and its total with it, so the sum still adds up) STREAM_USAGE_SKEW more."""
    if isinstance(usage, dict) and isinstance(usage.get(prompt), int) and not isinstance(usage[prompt], bool):
        usage[prompt] += STREAM_USAGE_SKEW
        if total is not None and isinstance(usage.get(total), int):
            usage[total] += STREAM_USAGE_SKEW


@mutator("stream-usage-differs", "chat.chunks")
def _chat_stream_usage_differs(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """The usage chunk counts the prompt 3 tokens off the same request not streamed."""
    for chunk in chunks:
        _skew(chunk.get("usage"), "prompt_tokens", "total_tokens")
    return chunks


@mutator("stream-usage-differs", "responses.events")
def _responses_stream_usage_differs(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """The terminal event's usage counts the input 3 tokens off the same request not streamed."""
    for event in events:
        response = event.get("response")
        _skew(response.get("usage") if isinstance(response, dict) else None, "input_tokens", "total_tokens")
    return events


@mutator("stream-usage-differs", "anthropic.events")
def _anthropic_stream_usage_differs(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """message_start counts the input 3 tokens off the same request not streamed."""
    for event in events:
        if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
            _skew(event["message"].get("usage"), "input_tokens")
    return events


@mutator("anthropic-message-start-usage-zero", "anthropic.events")
def _anthropic_message_start_usage_zero(events: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """message_start reports 0 input and 0 output tokens."""
    for event in events:
        usage = event["message"].get("usage") if event.get("type") == "message_start" else None
        if isinstance(usage, dict):
            usage.update(input_tokens=0, output_tokens=0)
    return events


@mutator("stream-usage-differs", "gemini.chunks")
def _gemini_stream_usage_differs(chunks: list[dict[str, Any]], _: Context) -> list[dict[str, Any]]:
    """Every usageMetadata of the stream counts the prompt 3 tokens off the same request not streamed."""
    for chunk in chunks:
        usage = chunk.get("usageMetadata")
        _skew(usage, "promptTokenCount", "totalTokenCount")
        for detail in usage.get("promptTokensDetails", []) if isinstance(usage, dict) else []:
            if isinstance(detail, dict) and detail.get("modality") == "TEXT":
                _skew(detail, "tokenCount")
    return chunks


# --- error answers (conformance/gateway/common.py) -------------------------------------------------------------


@mutator("error-body-not-json", "error.response")
def _error_body_not_json(response: Response, _: Context) -> Response:
    return Response(f"<html><body>{response.status_code} error</body></html>", response.status_code,
                    media_type="text/html")


@mutator("error-body-unstructured", "error.response")
def _error_body_unstructured(response: Response, context: Context) -> Response:
    """An error body with a message only, in no form a client reads."""
    return JSONResponse({"detail": context.answer.message}, response.status_code)


@mutator("auth-error-leaks-output", "error.response")
def _auth_error_leaks_output(response: Response, context: Context) -> Response:
    """A 401 that carries model output."""
    exc = context.answer
    if exc.status != 401:
        return response
    return JSONResponse({"error_code": exc.code, "message": exc.message,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "leaked"}}]},
                        exc.status)


# --- SQL statements (conformance/gateway/sql.py) ---------------------------------------------------------------


@mutator("statements-no-statement-id", "sql.statement")
def _statement_without_id(answer: dict[str, Any], _: Context) -> dict[str, Any]:
    """A final Statement Execution API answer without its statement_id: out of the API's form, still readable."""
    return {key: value for key, value in answer.items() if key != "statement_id"}
