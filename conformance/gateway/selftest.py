"""The self-test control of the reference gateway: switches set between requests, and the switches consulted.

Only a gateway started in self-test mode (`conformance serve --self-test`, GatewayProcess(self_test=True): the
suite's own self-tests, never `conformance run`) answers this path; any other gateway treats it as an unknown
route, and no request of a case or of a client ever goes to it. The harness (tests/harness.py) uses it to judge
every switch against one gateway process: `POST {"switches": [...]}` turns exactly those switches on (and
forgets what was consulted); `GET` answers the switches on and the names consulted since the last call, then
forgets them. (A stream's pace is the gateway's from its start, `serve --stream-delay`: the harness has a paced
gateway beside an unpaced one.) An answer is a pure
function of its request and of the switches the gateway consulted while serving it (GatewayState.on), so an
answer during which a switch was never consulted is the same with it on.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.gateway.common import GatewayState
from conformance.gateway.faults import ASGIApp, Receive, Scope, Send

CONTROL_PATH = "/_reference/self-test"


class SelfTestControl:
    """ASGI middleware in front of the gateway (and its fault modes) of a self-test gateway."""

    def __init__(self, app: ASGIApp, state: GatewayState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CONTROL_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            status, answer = self._set(body)
        else:
            status, answer = 200, {"switches": sorted(self.state.switches), "consulted": sorted(self.state.consulted)}
            self.state.consulted.clear()
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _set(self, body: bytes) -> tuple[int, dict[str, Any]]:
        from conformance.gateway.behaviours import switches

        try:
            names = json.loads(body)["switches"]
        except (ValueError, KeyError, TypeError):
            return 400, {"message": 'expected {"switches": [names]}'}
        unknown = sorted(set(names) - set(switches())) if isinstance(names, list) else names
        if unknown:
            return 400, {"message": f"unknown switches {unknown}"}
        self.state.switches = frozenset(names)
        self.state.consulted.clear()
        return 200, {"switches": sorted(self.state.switches)}
