"""Anthropic Messages (003 Native APIs / Anthropic Messages API) on the reference gateway, with streaming.

Sent as the documented anthropic client sends it: `x-api-key` (not the token, ignored), `Authorization: Bearer`,
`anthropic-version`. Deterministic: answer words from common.answer_words, token counts are word counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.gateway.common import (
    ApiError,
    answer_words,
    authenticate,
    cached_part,
    digest_id,
    extra,
    positive_int,
    read_json,
    resolve_model,
    response_id,
    state_of,
    validate_request_tags,
    words_of,
)
from conformance.gateway.framing import SSEWriter, stream_response
from conformance.gateway.mutators import mutate
from conformance.gateway.vision import from_anthropic, validate_images

MIN_BUDGET_TOKENS = 1024  # Anthropic's lower bound for thinking.budget_tokens
THINKING_WORDS = 6


def validate(body: dict[str, Any], max_tokens: int, hybrid: bool) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "messages: a non-empty list is required.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"messages.{i}.role: must be user or assistant.")
        if not isinstance(message.get("content"), str | list):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"messages.{i}.content: a string or a list of blocks.")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "stream: must be a boolean.")
    thinking = body.get("thinking")
    if thinking is None or (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        return
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "thinking.type: must be enabled or disabled.")
    if not hybrid:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "thinking: this model does not support extended thinking.")
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET_TOKENS:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"thinking.budget_tokens: an integer >= {MIN_BUDGET_TOKENS}.")
    if budget >= max_tokens:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "thinking.budget_tokens: must be less than max_tokens.")


class MessageAnswer:
    """One deterministic answer, rendered as a Message or as Anthropic's event stream."""

    def __init__(self, request: Request, body: dict[str, Any], model_name: str, max_tokens: int) -> None:
        self.request = request
        self.on = state_of(request).on
        self.model_name = model_name
        messages = body["messages"]
        thinking = body.get("thinking")
        self.thinking_words = (answer_words(request, ["thinking", messages])[:THINKING_WORDS]
                               if isinstance(thinking, dict) and thinking.get("type") == "enabled" else [])
        words = answer_words(request, messages, streamed=body.get("stream") is True)
        room = max(0, max_tokens - len(self.thinking_words))
        self.truncated = len(words) > room
        if self.truncated and not self.on("anthropic-max-tokens-ignored"):
            words = words[:room]
        self.words = words
        self.input_tokens = words_of([body.get("system"), messages])
        self.output_tokens = len(self.thinking_words) + len(words)
        self.id = response_id(request, "msg_", [model_name, messages, thinking])
        self.signature = digest_id("sig_", [self.id, self.thinking_words])

    def stop_reason(self) -> str:
        return "max_tokens" if self.truncated else "end_turn"

    def blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": " ".join(self.words),
                                         **extra(self.request, {"citations": None})}]
        if self.thinking_words:
            thinking = {"type": "thinking", "thinking": " ".join(self.thinking_words), "signature": self.signature}
            blocks = [thinking, *blocks]
        return mutate(self.request, "anthropic.blocks", blocks)

    def usage(self, output_tokens: int | None = None) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": self.input_tokens,
                                 "output_tokens": self.output_tokens if output_tokens is None else output_tokens}
        usage.update(extra(self.request, {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}))
        return mutate(self.request, "anthropic.usage", usage)

    def envelope(self, content: Any, stop_reason: str | None, usage: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model_name,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        message.update(extra(self.request, {"container": None, "x_gateway": {"route": "anthropic"}}))
        return mutate(self.request, "anthropic.envelope", message)

    def message(self) -> dict[str, Any]:
        return mutate(self.request, "anthropic.message", self.envelope(self.blocks(), self.stop_reason(), self.usage()))

    def start_usage(self) -> dict[str, Any]:
        """message_start's usage: the input tokens (Anthropic reports them there), output 1 so far. With the
        usage-cached-tokens variation half the input is reported as read from the prompt cache (input_tokens
        excludes it, as Anthropic's does)."""
        usage = self.usage(output_tokens=1)
        if self.on("usage-cached-tokens") and isinstance(usage.get("input_tokens"), int):
            cached = cached_part(usage["input_tokens"])
            usage.update(input_tokens=usage["input_tokens"] - cached, cache_creation_input_tokens=0,
                         cache_read_input_tokens=cached)
        return usage

    def events(self) -> list[dict[str, Any]]:
        start = self.envelope([], None, self.start_usage())
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        if self.on("extra-stream-events"):  # "we may add new event types": a client must pass over unknown ones
            events.append({"type": "message_metadata", "metadata": {"gateway": "reference"}})
        for index, block in enumerate(self.blocks()):
            if block["type"] == "thinking":
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
                if "signature" in block:
                    events.append({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "signature_delta", "signature": block["signature"]}})
            else:
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {"type": "text", "text": ""}})
                words = block["text"].split(" ") if block["text"] else []
                for at in range(0, len(words), 3):
                    piece = ("" if at == 0 else " ") + " ".join(words[at:at + 3])
                    events.append({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "text_delta", "text": piece}})
            events.append({"type": "content_block_stop", "index": index})
        events.append({"type": "message_delta", "delta": {"stop_reason": self.stop_reason(), "stop_sequence": None},
                       "usage": {"output_tokens": self.output_tokens}})
        if self.on("extra-stream-events"):
            events.append({"type": "ping"})  # ping events may come anywhere
        events.append({"type": "message_stop"})
        return mutate(self.request, "anthropic.events", events)

    def sse(self) -> Iterator[str]:
        writer = SSEWriter(self.request)
        for payload in self.events():
            payload.update(extra(self.request, {"x_gateway_seq": writer.count}))
            for key in ("content_block", "delta"):
                if isinstance(payload.get(key), dict):
                    payload[key].update(extra(self.request, {"x_gateway": None}))
            yield writer.event(payload, payload["type"], tokens=_delta_tokens(payload))


def _delta_tokens(payload: dict[str, Any]) -> int:
    """The output tokens an event carries (a text or thinking delta's words): what the writer paces it by."""
    delta = payload.get("delta") if payload.get("type") == "content_block_delta" else None
    text = (delta.get("text") or delta.get("thinking")) if isinstance(delta, dict) else None
    return len(text.split()) if isinstance(text, str) else 0


async def messages(request: Request) -> Response:
    authenticate(request)
    validate_request_tags(request)
    body = await read_json(request)
    model, name = resolve_model(request, body.get("model"), "chat")
    if model.provider != "anthropic":
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"model: {name!r} is not served by the Anthropic Messages API.")
    if "max_tokens" not in body and state_of(request).on("anthropic-max-tokens-optional"):
        body = {**body, "max_tokens": 4096}
    try:
        max_tokens = positive_int(body, "max_tokens", required=True)
    except ApiError as exc:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"max_tokens: {exc.message}") from None
    assert max_tokens is not None
    validate(body, max_tokens, model.reasoning == "hybrid")
    validate_images(request, model, from_anthropic(body["messages"]))
    answer = MessageAnswer(request, body, name, max_tokens)
    if body.get("stream"):
        return stream_response(request, answer.sse())
    return JSONResponse(answer.message())


def routes() -> list[Route]:
    return [Route("/ai-gateway/anthropic/v1/messages", messages, methods=["POST"])]
