"""The reference gateway's ASGI application: every surface module contributes its routes."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from conformance.gateway import anthropic, chat, embeddings, endpoints, gemini, invocations, responses, sql
from conformance.gateway.common import ApiError, GatewayState, error_response
from conformance.gateway.crossing import ConcurrentAnswers
from conformance.gateway.faults import FaultConfig, FaultInjector
from conformance.gateway.framing import TransportVariations
from conformance.gateway.usage_log import UsageRecorder

SURFACE_MODULES = (chat, anthropic, gemini, embeddings, responses, invocations, endpoints, sql)


def create_app(state: GatewayState, faults: FaultConfig | None = None) -> Any:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST"}.get(exc.status_code, "BAD_REQUEST")
        return error_response(request, ApiError(exc.status_code, code, str(exc.detail)))

    routes = [route for module in SURFACE_MODULES for route in module.routes()]
    app = Starlette(routes=routes, exception_handlers={ApiError: on_api_error, HTTPException: on_http_error})
    app.state.gateway = state
    # every model-service request is logged for the usage table (usage_log.py), read from the answer before the
    # transport variations cut or compress it; the warehouse's ai_query asks the gateway behind the fault
    # injector and the transport variations, as a real warehouse's calls do not cross the client's network
    warehouse = sql.warehouse_of(state)
    warehouse.app = UsageRecorder(app, state, warehouse.log)
    # concurrent answers are mixed up (deviations) before the transport variations compress or split them
    served = FaultInjector(TransportVariations(ConcurrentAnswers(warehouse.app, state), state),
                           faults or FaultConfig())
    if state.self_test:  # the self-tests' switch control (gateway/selftest.py); never on a gateway a run starts
        from conformance.gateway.selftest import SelfTestControl

        return SelfTestControl(served, state)
    return served
