"""The workspace's serving-endpoints listing (Databricks REST `GET /api/2.0/serving-endpoints`), served too.

Not part of the contract under test: the suite's preflight reads it, where a target has it, to learn which
catalog models the target serves (conformance/preflight.py). Each served model is listed under its endpoint
name (`databricks-<name>`), ready, with the task of its kind.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.catalog import load_catalog
from conformance.gateway.common import ApiError, authenticate, state_of

LISTING_ROUTE = "/api/2.0/serving-endpoints"


async def list_endpoints(request: Request) -> Response:
    authenticate(request)
    state = state_of(request)
    if not state.listing:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for 'GET {LISTING_ROUTE}'")
    endpoints = [
        {"name": model.endpoint_name,
         "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
         "task": "llm/v1/embeddings" if model.has("embeddings") else "llm/v1/chat",
         "endpoint_type": "FOUNDATION_MODEL_API"}
        for model in load_catalog().models if model.name not in state.not_serving
    ]
    return JSONResponse({"endpoints": endpoints})


def routes() -> list[Route]:
    return [Route(LISTING_ROUTE, list_endpoints, methods=["GET"])]
