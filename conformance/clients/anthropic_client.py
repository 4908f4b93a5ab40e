"""The Anthropic Python client, as 003 uses it: Anthropic(api_key="unused", base_url=<workspace>/ai-gateway/anthropic,
default_headers={"Authorization": f"Bearer {TOKEN}"})."""

from __future__ import annotations

import json
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
from conformance.config import merge_headers


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    import anthropic

    prefix = route_prefix(ctx.target, "anthropic_messages", "/v1/messages")
    if prefix is None:
        raise ClientFailure("the target's anthropic_messages route does not end in /v1/messages: no base_url fits")
    tags = {"Databricks-Ai-Gateway-Request-Tags": json.dumps(spec["request_tags"])} if spec.get("request_tags") else {}
    headers = merge_headers(ctx.target.headers_for("anthropic_messages"),
                            {"Authorization": f"Bearer {ctx.target.token}"}, tags)
    client = cached(("anthropic", ctx.url + prefix, tuple(headers.items()), ctx.pacer),
                    lambda: anthropic.Anthropic(api_key="unused", base_url=ctx.url + prefix,
                                                default_headers=headers, max_retries=0,
                                                timeout=ctx.target.timeout,
                                                http_client=bounded_http_client(ctx, sdk_http("anthropic"))))
    try:
        kwargs = build_value(spec.get("kwargs", {}), None, ctx.model)
        if spec["call"] == "messages.stream":
            with client.messages.stream(**kwargs) as stream:
                return {"text": "".join(stream.text_stream), "final": stream.get_final_message()}
        return client.messages.create(**kwargs)
    except (anthropic.APIConnectionError, anthropic.RateLimitError, anthropic.InternalServerError) as exc:
        status = f" HTTP {exc.status_code}" if isinstance(exc, anthropic.APIStatusError) else ""
        raise ClientInfrastructure(f"{type(exc).__name__}{status}: {exc}") from None
    except anthropic.AnthropicError as exc:
        raise ClientFailure(f"{type(exc).__name__}: {exc}") from None
