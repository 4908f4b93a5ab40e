"""Chat Completions (001 Chat; 003 MLflow Chat Completions API) on the reference gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.catalog import Model
from conformance.gateway import media
from conformance.gateway.common import (
    ApiError,
    answer_words,
    authenticate,
    cached_part,
    created,
    extra,
    positive_int,
    prompt_tokens,
    read_json,
    resolve_model,
    response_id,
    state_of,
    validate_request_tags,
)
from conformance.gateway.framing import SSEWriter, stream_response
from conformance.gateway.mutators import mutate
from conformance.gateway.reasoning import (
    reasoning_content,
    reasoning_deltas,
    reasoning_plan,
    validate_reasoning_history,
)
from conformance.gateway.vision import validate_images

ROLES = {"system", "user", "assistant", "developer", "tool"}
# what the OpenAI client's ChatCompletionMessage carries besides role and content, null when unused (FIELD-NOTES):
# an assistant message sent back "full, unmodified" (001) has them
CLIENT_MESSAGE_FIELDS = ("refusal", "annotations", "audio", "function_call", "tool_calls")
ROLE_FIRST_WAIT_S = 0.1  # stream-role-chunk-first: the model's time to first token after the role chunk
ROLE_FIRST_PACE_S = 0.008  # ... and its pace after it


def validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'messages' must be a non-empty list.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"messages[{i}] needs a valid role.")
        if not isinstance(message.get("content"), str | list):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"messages[{i}].content must be a string or a list.")


def validate_client_fields(request: Request, messages: list[Any]) -> None:
    """The null fields of a message sent back as the OpenAI client returned it are accepted;
    assistant-null-fields-refused refuses them, as a strict validator that wants tool_calls a list does."""
    for i, message in enumerate(messages):
        nulls = [k for k in CLIENT_MESSAGE_FIELDS if k in message and message[k] is None]
        if message.get("role") == "assistant" and nulls and state_of(request).on("assistant-null-fields-refused"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"messages[{i}].{nulls[0]} must not be null.")


def validate_sampling(body: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'temperature' must be a number from 0 to 2.")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'stream' must be a boolean.")


class ChatAnswer:
    """One deterministic answer, rendered as a completion or as a stream of chunks."""

    def __init__(self, request: Request, body: dict[str, Any], model_name: str,
                 reasoning: tuple[bool, int | None] = (False, None), model: Model | None = None) -> None:
        self.request = request
        self.state = state_of(request)
        self.model_name = model_name
        messages = body["messages"]
        words = answer_words(request, messages, streamed=body.get("stream") is True)
        # with reasoning, the reasoning tokens come first and count against max_tokens (and the thinking budget)
        self.reasoning, budget = reasoning
        # reasoning-budget-spent: a realistic reasoning model thinks at length (48 tokens, within the budget), so a
        # short max_tokens is spent before the text begins
        thinking = 48 if self.state.on("reasoning-budget-spent") else 6
        thought = (answer_words(request, {"reasoning": messages}) * 8)[: min(thinking, budget or thinking)] \
            if self.reasoning else []
        max_tokens = positive_int(body, "max_tokens")
        self.truncated = max_tokens is not None and len(thought) + len(words) > max_tokens
        if self.truncated and not self.state.on("max-tokens-ignored"):
            assert max_tokens is not None
            thought = thought[:max_tokens]
            words = words[: max_tokens - len(thought)]
        self.words = words
        self.thought = thought
        self.prompt_tokens = prompt_tokens(request, messages)
        self.completion_tokens = len(thought) + len(words)
        # reasoning-budget-spent: an answer whose max_tokens went to reasoning has no text block (GPT OSS), or an
        # empty one (the others, and every model without the variation)
        self.keep_empty_text = not (self.state.on("reasoning-budget-spent") and model is not None
                                    and model.family == "gpt-oss")
        self.id = response_id(request, "chatcmpl-", [model_name, messages], nullable=True)
        self.created = created(request)
        # stream_options.include_usage: a usage chunk (choices []) before [DONE], usage null on every other chunk;
        # stream-include-usage-ignored is asked only where the request asks for it
        options = body.get("stream_options")
        self.include_usage = (isinstance(options, dict) and options.get("include_usage") is True
                              and not self.state.on("stream-include-usage-ignored"))

    def finish_reason(self) -> str | None:
        if self.state.on("finish-reason-null"):  # the variation: not reported, as 001's example response shows
            return None
        return "length" if self.truncated else "stop"

    def usage(self, streamed: bool = False) -> dict[str, Any]:
        """The answer's usage; a stream's (its usage chunk) may report part of the prompt as cached (the
        usage-cached-tokens variation: prompt_tokens still counts them, as OpenAI's does)."""
        usage: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                                 "total_tokens": self.prompt_tokens + self.completion_tokens}
        if self.state.on("usage-details"):  # the variation: OpenAI's token details (reasoning within completion)
            usage.update({"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": len(self.thought), "audio_tokens": 0}})
        if streamed and self.state.on("usage-cached-tokens"):
            usage["prompt_tokens_details"] = {"cached_tokens": cached_part(self.prompt_tokens)}
        return usage

    def completion(self) -> dict[str, Any]:
        text = " ".join(self.words)
        message: dict[str, Any] = {"role": "assistant",
                                   "content": reasoning_content(self.request, self.thought, text,
                                                                keep_empty_text=self.keep_empty_text)
                                   if self.reasoning else text}
        message.update(extra(self.request, {"refusal": None, "annotations": None, "tool_calls": None}))
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason()}
        choice.update(extra(self.request, {"logprobs": None}))
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model_name,
            "choices": [choice],
            "usage": self.usage(),
        }
        body.update(extra(self.request, {"system_fingerprint": "fp_reference", "service_tier": "default",
                                          "x_gateway": {"route": "chat"}}))
        return mutate(self.request, "chat.completion", body)

    def chunks(self) -> list[dict[str, Any]]:
        on = self.state.on
        envelope: dict[str, Any] = {"object": "chat.completion.chunk", "created": self.created,
                                    "model": self.model_name}
        chunks: list[dict[str, Any]] = []
        if on("extra-stream-events"):  # a first chunk without choices, as Azure OpenAI sends its filter results
            chunks.append({"id": self.id, **envelope, "choices": [], "prompt_filter_results": []})
        # stream_options.include_usage (what OpenAI-compatible clients ask for), or the usage-chunk variation:
        # usage null on every chunk, then a usage-only chunk before [DONE]
        usage_chunk = on("usage-chunk") or self.include_usage
        role_only = on("stream-role-chunk-first")  # the variation: a first chunk without a content key
        # the role chunk, the reasoning (a list of one reasoning block per delta, as the whole answer's blocks are
        # shaped; its signature with the last piece), then the text as strings
        thought = reasoning_deltas(self.request, self.thought) if self.reasoning else []
        text: list[Any] = [("" if i == 0 else " ") + w for i, w in enumerate(self.words)]
        if self.reasoning and on("stream-text-blocks"):  # the variation: text pieces as blocks, like the reasoning
            text = [[{"type": "text", "text": piece}] for piece in text]
        pieces: list[Any] = ["", *thought, *text]
        last = len(pieces)  # index of the closing chunk
        for i, piece in enumerate([*pieces, None]):
            delta: dict[str, Any] = {}
            if i == 0:
                delta["role"] = "assistant"
            elif on("delta-nulls"):  # the variation: every field on every delta, null where it has no value
                delta["role"] = None
            if piece is not None and not (i == 0 and role_only):
                delta["content"] = piece
            elif on("delta-nulls"):
                delta["content"] = None
            if on("delta-nulls"):
                delta.update({"refusal": None, "tool_calls": None, "function_call": None})
            delta.update(extra(self.request, {"x_delta": {}}))
            choice: dict[str, Any] = {"index": 0, "delta": delta,
                                      "finish_reason": self.finish_reason() if i == last else None}
            choice.update(extra(self.request, {"logprobs": None}))
            chunk: dict[str, Any] = {"id": self.id, **envelope, "choices": [choice]}
            if usage_chunk:
                chunk["usage"] = None  # as OpenAI's include_usage sends every chunk before the usage chunk
            chunk.update(extra(self.request, {"system_fingerprint": "fp_reference", "service_tier": "default"}))
            chunks.append(chunk)
        if usage_chunk:
            chunks.append({"id": self.id, **envelope, "choices": [], "usage": self.usage(streamed=True)})
        return mutate(self.request, "chat.chunks", chunks)

    def sse(self) -> Iterator[str]:
        writer = SSEWriter(self.request)
        # the role at once, the first token after a realistic wait (SSEWriter.model_paced)
        if self.state.on("stream-role-chunk-first") and writer.model_paced:
            writer.first_token_s, writer.pace_s = ROLE_FIRST_WAIT_S, max(writer.pace_s, ROLE_FIRST_PACE_S)
        for event in mutate(self.request, "chat.events", [*self.chunks(), "[DONE]"]):
            yield writer.event(event, tokens=_content_tokens(event))


def _content_tokens(event: Any) -> int:
    """The output tokens a chunk carries (its deltas' words): what the writer paces it by."""
    if not isinstance(event, dict):
        return 0
    content = [c.get("delta", {}).get("content") for c in event.get("choices", []) if isinstance(c, dict)]
    return sum(len(c.split()) for c in content if isinstance(c, str))


def chat_response(request: Request, body: dict[str, Any], model_name: str, model: Model | None = None) -> Response:
    if "messages" not in body and state_of(request).on("missing-messages-accepted"):
        body = {**body, "messages": [{"role": "user", "content": ""}]}
    validate_messages(body.get("messages"))
    validate_client_fields(request, body["messages"])
    validate_sampling(body)
    reasoning: tuple[bool, int | None] = (False, None)
    if model is not None:  # model types (001 Vision, Reasoning)
        validate_images(request, model, body["messages"])
        validate_reasoning_history(request, body["messages"])
        reasoning = reasoning_plan(request, model, body)
    answer = ChatAnswer(request, body, model_name, reasoning, model)
    if body.get("stream"):
        return mutate(request, "chat.stream", stream_response(request, answer.sse()), answer)
    return JSONResponse(answer.completion())


async def chat_completions(request: Request) -> Response:
    authenticate(request)
    validate_request_tags(request)
    body = await read_json(request)
    model, name = resolve_model(request, body.get("model"), "chat")
    await media.validate_chat_parts(request, model, body.get("messages"))
    return chat_response(request, body, name, model)


def routes() -> list[Route]:
    return [Route("/ai-gateway/mlflow/v1/chat/completions", chat_completions, methods=["POST"])]
