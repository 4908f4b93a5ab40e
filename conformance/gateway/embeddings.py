"""MLflow Embeddings API (003 Query model services with unified APIs) on the reference gateway."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.gateway.common import (
    ApiError,
    authenticate,
    extra,
    read_json,
    resolve_model,
    state_of,
    validate_request_tags,
    words_of,
)
from conformance.gateway.mutators import mutate

DIMENSION = 16


def validate_input(request: Request, value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'input' must be a string or a list of strings.")
    if state_of(request).on("embeddings-empty-input-accepted"):
        return texts or [""]
    if not texts or not all(t.strip() for t in texts):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'input' must not be empty.")
    return texts


def vector(text: str, dimension: int) -> list[float]:
    """A deterministic unit-free vector: the same text always gets the same numbers."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 127.5) / 127.5, 6) for i in range(dimension)]


def encode(values: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


async def embeddings(request: Request) -> Response:
    authenticate(request)
    validate_request_tags(request)
    body = await read_json(request)
    on = state_of(request).on
    try:
        _, name = resolve_model(request, body.get("model"), "embeddings")
    except ApiError as exc:
        if exc.status != 400 or not on("embeddings-chat-model-accepted"):
            raise
        _, name = resolve_model(request, body.get("model"), "chat")
    texts = validate_input(request, body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'encoding_format' must be float or base64.")
    if encoding == "base64" and on("embeddings-base64-ignored"):
        encoding = "float"

    noise = on("embeddings-float-noise")  # the variation: a batch's float noise, per position
    data = []
    for i, text in enumerate(texts):
        values = vector(text, DIMENSION)
        if noise:
            values = [round(v + (i + 1) * 1e-5 * (-1) ** n, 6) for n, v in enumerate(values)]
        item: dict[str, Any] = {"object": "embedding", "index": i, "embedding": encode(values, encoding)}
        item.update(extra(request, {"x_norm": None}))
        data.append(item)
    prompt = max(1, words_of(texts))
    out: dict[str, Any] = {"object": "list", "model": name, "data": data,
                           "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    out.update(extra(request, {"id": None, "x_gateway": {"route": "embeddings"}}))
    out = mutate(request, "embeddings.list", out)
    # json.dumps, not JSONResponse: the embeddings-non-finite mutator sends NaN as some servers do
    return Response(json.dumps(out), media_type="application/json")


def routes() -> list[Route]:
    return [Route("/ai-gateway/mlflow/v1/embeddings", embeddings, methods=["POST"])]
