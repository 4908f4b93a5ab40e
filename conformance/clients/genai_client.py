"""The Google Gen AI client, as 001 and 003 use it: genai.Client(api_key="databricks",
http_options=HttpOptions(base_url=<workspace>/ai-gateway/gemini, headers={"Authorization": ...}))."""

from __future__ import annotations

import re
from typing import Any

from conformance.clients.base import (
    ClientContext,
    ClientFailure,
    ClientInfrastructure,
    bounded_http_client,
    build_value,
    cached,
)
from conformance.config import merge_headers

# the documented route is .../v1beta/models/{model}:generateContent; the base URL is what comes before
_BASE = re.compile(r"^(.*)/v1(?:beta)?/models/\{model\}:generateContent$")


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    import httpx
    from google import genai
    from google.genai import errors, types

    route = ctx.target.route(spec["route"]) or ""  # the route the client really posts to (v1: FIELD-NOTES)
    match = _BASE.match(route)
    if match is None:
        raise ClientFailure(f"the target's gemini route {route!r} has no base URL the client can use")
    headers = merge_headers(ctx.target.headers_for(spec["route"]), {"Authorization": f"Bearer {ctx.target.token}"})
    client = cached(("genai", ctx.url + match.group(1), tuple(headers.items()), ctx.pacer), lambda: genai.Client(
        api_key="databricks", http_options=types.HttpOptions(
            base_url=ctx.url + match.group(1), headers=headers,
            timeout=int(ctx.target.timeout * 1000), httpx_client=bounded_http_client(ctx))))
    kwargs = build_value(spec.get("kwargs", {}), types, ctx.model)
    try:
        if spec["call"] == "models.generate_content_stream":
            return list(client.models.generate_content_stream(**kwargs))
        return client.models.generate_content(**kwargs)
    except errors.ServerError as exc:
        raise ClientInfrastructure(f"ServerError: {exc}") from None
    except errors.ClientError as exc:
        if exc.code == 429:
            ctx.pacer.throttled()
            raise ClientInfrastructure(f"ClientError 429: {exc}") from None
        raise ClientFailure(f"ClientError: {exc}") from None
    except httpx.TransportError as exc:
        raise ClientInfrastructure(f"{type(exc).__name__}: {exc}") from None
    except errors.APIError as exc:
        raise ClientFailure(f"{type(exc).__name__}: {exc}") from None
