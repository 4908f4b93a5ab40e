"""The three Responses routes on the reference gateway: the Supervisor API (003, provider-agnostic), the
native OpenAI Responses API (003) and /serving-endpoints/responses (001, OpenAI models only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.catalog import Model
from conformance.gateway.common import (
    ApiError,
    answer_words,
    authenticate,
    cached_part,
    created,
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

ROLES = {"system", "user", "assistant", "developer"}
PART_TYPES = {"input_text", "output_text", "input_image", "input_file", "refusal"}


def validate_input(value: Any) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "'input' must not be empty.")
        return
    if not isinstance(value, list) or not value:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'input' must be a string or a non-empty list.")
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"input[{i}] needs a valid role.")
        content = item.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not all(
            isinstance(p, dict) and p.get("type") in PART_TYPES for p in content
        ):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"input[{i}].content must be a string or typed parts.")


class ResponsesAnswer:
    """One deterministic answer, rendered as a response object or as a stream of typed events."""

    def __init__(self, request: Request, body: dict[str, Any], model_name: str, model: Model | None = None) -> None:
        self.request = request
        self.on = state_of(request).on
        self.model_name = model_name
        prompt = body["input"]
        words = answer_words(request, prompt, streamed=body.get("stream") is True)
        limit = positive_int(body, "max_output_tokens")
        self.incomplete = False
        if limit is not None and self.on("responses-max-output-tokens-ignored"):
            words = (words * (limit // len(words) + 2))[: limit + 5]
        elif limit is not None and len(words) > limit:
            words, self.incomplete = words[:limit], True
        # reasoning-budget-spent: a model that always reasons spends a short max_output_tokens on reasoning, so
        # the cut answer is a reasoning item and no message
        self.spent_reasoning = (self.incomplete and model is not None and model.reasoning == "reasoning_only"
                                and self.on("reasoning-budget-spent"))
        self.output_tokens = len(words)
        if self.spent_reasoning:
            words = []
        self.words = words
        self.text = " ".join(words)
        self.input_tokens = words_of(prompt) + words_of(body.get("instructions"))
        self.id = str(response_id(request, "resp_", [model_name, prompt]))
        self.message_id = str(response_id(request, "msg_", [model_name, prompt]))
        # the other-ids variation: created_at with a fraction (the Responses schema's created_at is a number)
        self.created_at: float = created(request) + (0.25 if self.on("other-ids") else 0)

    @property
    def status(self) -> str:
        return "incomplete" if self.incomplete else "completed"

    def part(self, text: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], **extra(self.request, {"logprobs": []})}
        return mutate(self.request, "responses.part", part)

    def message(self, text: str | None, status: str) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "message", "id": self.message_id, "role": "assistant",
                                "status": status, "content": [] if text is None else [self.part(text)]}
        if self.on("responses-minimal"):
            item = {k: v for k, v in item.items() if k in ("type", "role", "content")}
        item.update(extra(self.request, {"x_item": None}))
        return mutate(self.request, "responses.message", item)

    def response(self, done: bool = True, streamed: bool = False) -> dict[str, Any]:
        """The response object; a stream's terminal one may report half the input as cached (the
        usage-cached-tokens variation: input_tokens still includes input_tokens_details.cached_tokens)."""
        output: list[dict[str, Any]] = []
        if done:
            if self.spent_reasoning or self.on("responses-reasoning-item"):
                output.append({"type": "reasoning", "id": response_id(self.request, "rs_", self.id), "summary": []})
            if not self.spent_reasoning:
                output.append(self.message(self.text, "incomplete" if self.incomplete else "completed"))
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "model": self.model_name,
            "status": self.status if done else "in_progress",
            "output": output,
        }
        if self.incomplete and done:  # the variation: another reason, as a proxy translating another API names it
            body["incomplete_details"] = {"reason": "max_tokens" if self.on("responses-incomplete-other-reason")
                                          else "max_output_tokens"}
        if done:
            body["usage"] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                             "total_tokens": self.input_tokens + self.output_tokens}
            body["usage"].update(extra(self.request, {"input_tokens_details": {"cached_tokens": 0},
                                                      "output_tokens_details": {"reasoning_tokens": 0}}))
            if streamed and self.on("usage-cached-tokens"):
                body["usage"]["input_tokens_details"] = {"cached_tokens": cached_part(self.input_tokens)}
        else:
            body["usage"] = None
        if self.on("responses-minimal") and body["status"] != "incomplete":  # a cut answer says so
            body.pop("status")
        body.update(extra(self.request, {"error": None, "incomplete_details": body.get("incomplete_details"),
                                          "instructions": None, "metadata": {}, "parallel_tool_calls": True,
                                          "temperature": None, "tool_choice": "auto", "tools": [], "top_p": None,
                                          "x_gateway": {"route": "responses"}}))
        return mutate(self.request, "responses.response", body)

    def events(self) -> list[dict[str, Any]]:
        terminal = "response.incomplete" if self.incomplete else "response.completed"
        pieces = [("" if i == 0 else " ") + w for i, w in enumerate(self.words)]
        reasons = self.spent_reasoning or self.on("responses-reasoning-item")
        at = 1 if reasons else 0  # the message's place in output
        ids = {"item_id": self.message_id, "output_index": at}
        reasoning_item: dict[str, Any] = {"type": "reasoning", "id": response_id(self.request, "rs_", self.id),
                                          "summary": []}
        thinking = [{"type": "response.output_item.added", "output_index": 0, "item": reasoning_item},
                    {"type": "response.output_item.done", "output_index": 0, "item": reasoning_item}] if reasons else []
        message = [] if self.spent_reasoning else [
            {"type": "response.output_item.added", "output_index": at, "item": self.message(None, "in_progress")},
            {"type": "response.content_part.added", **ids, "content_index": 0, "part": self.part("")},
            *({"type": "response.output_text.delta", **ids, "content_index": 0, "delta": p} for p in pieces),
            {"type": "response.output_text.done", **ids, "content_index": 0, "text": self.text},
            {"type": "response.content_part.done", **ids, "content_index": 0, "part": self.part(self.text)},
            {"type": "response.output_item.done", "output_index": at,
             "item": self.message(self.text, "incomplete" if self.incomplete else "completed")},
        ]
        events = [
            {"type": "response.created", "response": self.response(done=False)},
            {"type": "response.in_progress", "response": self.response(done=False)},
            *thinking,
            *message,
            {"type": terminal, "response": self.response(streamed=True)},
        ]
        events = mutate(self.request, "responses.events", events)
        numbered = [{**event, "sequence_number": number, **extra(self.request, {"obfuscation": "x"})}
                    for number, event in enumerate(events)]
        return mutate(self.request, "responses.numbered_events", numbered)

    def sse(self) -> Iterator[str]:
        writer = SSEWriter(self.request)
        for event in self.events():
            delta = event.get("delta") if event.get("type") == "response.output_text.delta" else None
            yield writer.event(event, event["type"], tokens=len(delta.split()) if isinstance(delta, str) else 0)


def responses_response(request: Request, body: dict[str, Any], model_name: str, model: Model | None = None) -> Response:
    if "input" not in body and state_of(request).on("responses-missing-input-accepted"):
        body = {**body, "input": ""}
    else:
        validate_input(body.get("input"))
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'stream' must be a boolean.")
    answer = ResponsesAnswer(request, body, model_name, model)
    if body.get("stream"):
        return stream_response(request, answer.sse())
    return JSONResponse(answer.response())


def handler(capability: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        authenticate(request)
        validate_request_tags(request)
        body = await read_json(request)
        needed = capability
        if needed == "responses" and state_of(request).on("responses-non-openai-accepted"):
            needed = "chat"
        model, name = resolve_model(request, body.get("model"), needed)
        return responses_response(request, body, name, model)

    return endpoint


def routes() -> list[Route]:
    return [
        # Supervisor API: provider-agnostic, any chat model (003)
        Route("/ai-gateway/mlflow/v1/responses", handler("chat"), methods=["POST"]),
        # native OpenAI Responses API: a provider-specific interface, OpenAI models (003)
        Route("/ai-gateway/openai/v1/responses", handler("responses"), methods=["POST"]),
        # "The Responses API is only compatible with OpenAI models." (001 Chat / OpenAI Responses)
        Route("/serving-endpoints/responses", handler("responses"), methods=["POST"]),
    ]
