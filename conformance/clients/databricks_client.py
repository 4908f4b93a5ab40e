"""The Databricks SDK for Python, as 001 uses it: WorkspaceClient().serving_endpoints.query(name=...,
messages=[ChatMessage(...)], max_tokens=128)."""

from __future__ import annotations

import logging
from typing import Any

from conformance.clients.base import ClientContext, ClientFailure, ClientInfrastructure, build_value, cached

SDK_ROUTE = "/serving-endpoints/{model}/invocations"


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    import requests
    from databricks.sdk import WorkspaceClient, errors
    from databricks.sdk.service import serving

    if ctx.target.route("invocations") != SDK_ROUTE:
        raise ClientFailure(f"the SDK posts to {SDK_ROUTE}; the target routes invocations elsewhere")
    if ctx.target.headers_for("invocations"):
        raise ClientFailure("the target needs headers of its own on invocations, which the documented "
                            "WorkspaceClient example does not send")
    # the SDK looks for /.well-known/databricks-config first and only warns when it is absent
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    from databricks.sdk.core import Config

    def make() -> WorkspaceClient:
        # explicit host and token: ~/.databrickscfg and DATABRICKS_* never redirect the example elsewhere
        config = Config(host=ctx.target.url, token=ctx.target.token, auth_type="pat",
                        retry_timeout_seconds=30, http_timeout_seconds=int(ctx.target.timeout))
        return WorkspaceClient(config=config)

    client = cached(("databricks", ctx.target.url), make)
    kwargs = build_value(spec.get("kwargs", {}), serving, ctx.model)
    ctx.pacer.wait_turn()
    try:
        return client.serving_endpoints.query(**kwargs)
    except (errors.TooManyRequests, errors.TemporarilyUnavailable, errors.InternalError,
            errors.DeadlineExceeded, requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:  # the body cut short of its HTTP framing
        raise ClientInfrastructure(f"{type(exc).__name__}: {exc}") from None
    except errors.DatabricksError as exc:
        raise ClientFailure(f"{type(exc).__name__}: {exc}") from None
