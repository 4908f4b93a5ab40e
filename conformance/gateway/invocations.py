"""/serving-endpoints/{name}/invocations on the reference gateway: the request the Databricks SDK's
serving_endpoints.query(name=..., messages=..., max_tokens=...) sends (chat-shaped, no `model` in the body)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.gateway.chat import chat_response
from conformance.gateway.common import (
    ApiError,
    authenticate,
    read_json,
    resolve_model,
    state_of,
    validate_request_tags,
)


async def invocations(request: Request) -> Response:
    authenticate(request)
    validate_request_tags(request)
    body = await read_json(request)
    if "model" not in body and state_of(request).on("invocations-model-required"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'model' is required.")
    _, name = resolve_model(request, request.path_params["name"], "chat")
    return chat_response(request, body, name)


def routes() -> list[Route]:
    return [Route("/serving-endpoints/{name}/invocations", invocations, methods=["POST"])]
