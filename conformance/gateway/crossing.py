"""Requests that are answered at the same time, and the deviations that mix up their answers.

A request is *concurrent* when another one to the same path came from another connection less than WINDOW_S
before its answer is ready: the suite's concurrent cases (conformance/concurrency.py) send theirs together on
separate connections, while a run's other cases come one after another on one kept-alive connection, so only
there are the switches below consulted (GatewayState.on: asked only where they can change the answer). Two
deviations, each a bug gateways under load have had:
- answers-crossed: two concurrent JSON answers on one path are swapped (a shared response buffer, results of a
  batch assigned to the wrong requests): each waits up to PAIR_WAIT_S for a partner;
- concurrent-ids-repeated: a concurrent answer takes the id of the answer sent just before it on that path (an
  id made from the clock, or one cached per batch), its content its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from conformance.gateway.common import GatewayState
from conformance.gateway.faults import ASGIApp, Message, Receive, Scope, Send

WINDOW_S = 0.25
PAIR_WAIT_S = 0.4
ID_KEYS = ("id", "responseId")


@dataclass
class _Path:
    arrivals: list[tuple[float, Any]] = field(default_factory=list)  # (monotonic, client address)
    parked: tuple[list[Message], asyncio.Future[list[Message]]] | None = None
    last_id: tuple[float, Any, Any] | None = None  # (monotonic, client, id) of the last answer sent


class ConcurrentAnswers:
    """ASGI middleware inside the transport variations (it sees answers before gzip or splitting)."""

    def __init__(self, app: ASGIApp, state: GatewayState) -> None:
        self.app = app
        self.state = state
        self.paths: dict[str, _Path] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, client = scope.get("path", ""), scope.get("client")
        entry = self.paths.setdefault(path, _Path())
        now = time.monotonic()
        entry.arrivals = [(t, c) for t, c in entry.arrivals if now - t < WINDOW_S] + [(now, client)]
        await self.app(scope, receive, self._sending(entry, client, send))

    def _concurrent(self, entry: _Path, client: Any) -> bool:
        now = time.monotonic()
        return any(c != client and now - t < WINDOW_S for t, c in entry.arrivals)

    def _sending(self, entry: _Path, client: Any, send: Send) -> Send:
        held: list[Message] = []
        mode = {"decided": False, "hold": False}

        async def sending(message: Message) -> None:
            if not mode["decided"]:
                mode["decided"] = True
                mode["hold"] = (message["type"] == "http.response.start" and message.get("status") == 200
                                and _is_json(message) and self._concurrent(entry, client)
                                and (self.state.on("answers-crossed") | self.state.on("concurrent-ids-repeated")))
            if not mode["hold"]:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                for out in await self._mixed(entry, client, held):
                    await send(out)

        return sending

    async def _mixed(self, entry: _Path, client: Any, messages: list[Message]) -> list[Message]:
        if self.state.on("concurrent-ids-repeated"):
            messages = self._repeat_id(entry, client, messages)
        if not self.state.on("answers-crossed"):
            return messages
        if entry.parked is not None:  # a partner waits: take its answer, give it ours
            theirs, waiting = entry.parked
            entry.parked = None
            if not waiting.done():
                waiting.set_result(messages)
                return theirs
        future: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        entry.parked = (messages, future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), PAIR_WAIT_S)
        except asyncio.TimeoutError:
            if entry.parked is not None and entry.parked[1] is future:
                entry.parked = None
            return future.result() if future.done() else messages

    def _repeat_id(self, entry: _Path, client: Any, messages: list[Message]) -> list[Message]:
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        try:
            answer = json.loads(body)
        except ValueError:
            return messages
        now = time.monotonic()
        previous = entry.last_id
        key = next((k for k in ID_KEYS if isinstance(answer, dict) and answer.get(k)), None)
        if key is None:
            return messages
        if previous is not None and previous[1] != client and now - previous[0] < WINDOW_S:
            answer[key] = previous[2]
        entry.last_id = (now, client, answer[key])
        payload = json.dumps(answer).encode()
        start = {**messages[0], "headers": [(k, v) for k, v in messages[0].get("headers", [])
                                            if k.lower() != b"content-length"]
                 + [(b"content-length", str(len(payload)).encode())]}
        return [start, {"type": "http.response.body", "body": payload, "more_body": False}]


def _is_json(message: Message) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"application/json")
               for k, v in message.get("headers", []))
