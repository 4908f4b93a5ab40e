"""Gemini generateContent and streamGenerateContent (003 Native APIs / Google Gemini API; 001 Audio and video).

Served on both `v1beta` (the documented REST path) and `v1` (where google-genai posts when only a base URL is
given). The model name is in the path, dots and all: `models/system.ai.gemini-3-1-pro:generateContent`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.catalog import Model, load_catalog
from conformance.gateway import media
from conformance.gateway.common import (
    ApiError,
    answer_words,
    authenticate,
    cached_part,
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

VERSIONS = ("v1beta", "v1")
ACTIONS = ("generateContent", "streamGenerateContent")
WORDS_PER_CHUNK = 3


def resolve_gemini(request: Request, name: str) -> Model:
    on = state_of(request).on
    if load_catalog().get(name) is None and on("unknown-model-accepted"):
        model = load_catalog().get("gemini-3-1-pro")
        assert model is not None
        return model
    model, _ = resolve_model(request, name, "chat")
    if model.family != "gemini" and not on("gemini-non-gemini-accepted"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Model {name!r} is not a Gemini model; use its own API.")
    return model


async def validate(request: Request, model: Model, body: dict[str, Any]) -> int | None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "contents: a non-empty list is required.")
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"contents[{i}].role: must be user or model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"contents[{i}].parts: a non-empty list is required.")
        for j, part in enumerate(parts):
            where = f"contents[{i}].parts[{j}]"
            if not isinstance(part, dict) or not part:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: a part object is required.")
            if "text" in part and not isinstance(part["text"], str):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.text: must be a string.")
            await media.validate_gemini_part(request, model, where, part)
    config = body.get("generationConfig", body.get("generation_config")) or {}
    if not isinstance(config, dict):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "generationConfig: must be an object.")
    key = "maxOutputTokens" if "maxOutputTokens" in config else "max_output_tokens"
    return positive_int(config, key)


class GeminiAnswer:
    def __init__(self, request: Request, body: dict[str, Any], model_name: str, max_output: int | None,
                 streamed: bool = False) -> None:
        self.request = request
        self.on = state_of(request).on
        self.model_name = model_name
        self.streamed = streamed  # streamGenerateContent
        contents = body["contents"]
        words = answer_words(request, contents, streamed=streamed)
        self.truncated = max_output is not None and len(words) > max_output
        if self.truncated and not self.on("gemini-max-output-tokens-ignored"):
            words = words[:max_output]
        self.words = words
        self.prompt_tokens = words_of(contents)
        self.id = response_id(request, "", [model_name, contents], nullable=True)

    def finish_reason(self) -> str:
        return "MAX_TOKENS" if self.truncated else "STOP"

    def usage(self, candidates: int) -> dict[str, Any]:
        """usageMetadata; a stream's may report half the prompt as cached (the usage-cached-tokens variation:
        promptTokenCount still includes cachedContentTokenCount, as Google's does)."""
        usage = {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": candidates,
                 "totalTokenCount": self.prompt_tokens + candidates}
        if self.streamed and self.on("usage-cached-tokens"):
            usage["cachedContentTokenCount"] = cached_part(self.prompt_tokens)
        details = [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]
        usage.update(extra(self.request, {"promptTokensDetails": details}))
        return mutate(self.request, "gemini.usage", usage)

    def response(self, text: str, finish: bool, candidates_so_far: int, usage: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text, **extra(self.request, {"x_part": {}})}],
                                                 "role": "model"},
                                     "index": 0}
        if finish:
            candidate["finishReason"] = self.finish_reason()
        candidate.update(extra(self.request, {"avgLogprobs": -0.1, "safetyRatings": []}))
        out: dict[str, Any] = {"candidates": [candidate]}
        if usage:
            out["usageMetadata"] = self.usage(candidates_so_far)
        out["modelVersion"] = self.model_name
        out.update(extra(self.request, {"createTime": "2025-01-01T00:00:00Z"}))
        if self.id is not None:
            out["responseId"] = self.id
        return mutate(self.request, "gemini.response", out)

    def whole(self) -> dict[str, Any]:
        return self.response(" ".join(self.words), True, len(self.words), True)

    def chunk(self, text: str, sent: int, final: bool) -> dict[str, Any]:
        """One event of the stream: `sent` words so far; the final one carries finishReason and usage (the
        variations: usage on every event, or in an event of its own after the last)."""
        usage = (final or self.on("gemini-usage-every-chunk")) and not self.on("gemini-usage-chunk")
        return self.response(text, final, sent, usage)

    def chunks(self) -> list[dict[str, Any]]:
        pieces = [self.words[i:i + WORDS_PER_CHUNK] for i in range(0, len(self.words), WORDS_PER_CHUNK)] or [[]]
        chunks = []
        sent = 0
        for n, piece in enumerate(pieces):
            sent += len(piece)
            chunks.append(self.chunk(("" if n == 0 else " ") + " ".join(piece), sent, n == len(pieces) - 1))
        if self.on("gemini-usage-chunk"):  # the variation: usage in a last event of its own
            last: dict[str, Any] = {"usageMetadata": self.usage(sent), "modelVersion": self.model_name}
            if self.id is not None:
                last["responseId"] = self.id
            chunks.append(last)
        return mutate(self.request, "gemini.chunks", chunks, self)

    def sse(self) -> Iterator[str]:
        writer = SSEWriter(self.request)
        for chunk in self.chunks():
            yield writer.event(chunk, tokens=_text_tokens(chunk))


def _text_tokens(chunk: dict[str, Any]) -> int:
    """The output tokens an event carries (its parts' words): what the writer paces it by."""
    candidates = chunk.get("candidates")
    parts = [p for c in candidates if isinstance(c, dict) for p in c.get("content", {}).get("parts", [])] \
        if isinstance(candidates, list) else []
    return sum(len(p["text"].split()) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


async def generate(request: Request) -> Response:
    authenticate(request)
    validate_request_tags(request)
    version, target = request.path_params["version"], request.path_params["target"]
    name, _, action = target.rpartition(":")
    if version not in VERSIONS or action not in ACTIONS or not name or (
        version == "v1" and state_of(request).on("gemini-v1-not-served")
    ):
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No such method: {version}/models/{target}.")
    body = await read_json(request)
    model = resolve_gemini(request, name)
    max_output = await validate(request, model, body)
    answer = GeminiAnswer(request, body, name, max_output, streamed=action == "streamGenerateContent")
    if action == "streamGenerateContent":
        if request.query_params.get("alt") == "sse":
            return mutate(request, "gemini.stream", stream_response(request, answer.sse()), answer)
        return JSONResponse(answer.chunks())  # without alt=sse Google streams one JSON array
    return JSONResponse(answer.whole())


def routes() -> list[Route]:
    return [Route("/ai-gateway/gemini/{version}/models/{target}", generate, methods=["POST"])]
