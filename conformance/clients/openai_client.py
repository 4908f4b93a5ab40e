"""The OpenAI Python client, as 001 and 003 use it: OpenAI(api_key=TOKEN, base_url=<workspace>/ai-gateway/...)."""

from __future__ import annotations

from typing import Any

from conformance.clients.base import (
    ClientContext,
    ClientFailure,
    ClientInfrastructure,
    bounded_http_client,
    build_value,
    cached,
    route_prefix,
    sdk_http,
)

SUFFIX = {"chat_completions": "/chat/completions", "embeddings": "/embeddings",
          "responses_supervisor": "/responses", "responses_openai": "/responses",
          "responses_serving_endpoints": "/responses"}


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    import openai

    surface = spec["route"]
    prefix = route_prefix(ctx.target, surface, SUFFIX[surface])
    if prefix is None:
        raise ClientFailure(f"the target's {surface} route does not end in {SUFFIX[surface]}: no base_url fits")
    headers = ctx.target.headers_for(surface)  # the target profile's (routing headers of a gateway like Portkey)
    client = cached(("openai", ctx.url + prefix, ctx.pacer, tuple(headers.items())), lambda: openai.OpenAI(
        api_key=ctx.target.token or "none", base_url=ctx.url + prefix, max_retries=0,
        default_headers=headers or None, http_client=bounded_http_client(ctx, sdk_http("openai"))))
    try:
        method: Any = client
        for part in spec["call"].split("."):
            method = getattr(method, part)
        result = method(**build_value(spec.get("kwargs", {}), None, ctx.model))
        if spec.get("iterate"):
            result = list(result)  # stream=True: iterate it, as the example does
        return result
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        status = f" HTTP {exc.status_code}" if isinstance(exc, openai.APIStatusError) else ""
        raise ClientInfrastructure(f"{type(exc).__name__}{status}: {exc}") from None
    except openai.OpenAIError as exc:
        raise ClientFailure(f"{type(exc).__name__}: {exc}") from None
