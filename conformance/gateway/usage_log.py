"""The reference gateway's usage log: every model-service request it answers becomes a row of its usage table.

003: "Request tags are logged to the request_tags column in both the usage tracking system table and inference
tables", and "Requests made through ai_query to Azure Databricks-provided model services are captured in the
usage tracking system table (system.ai_gateway.usage)". The recorder is ASGI middleware around every route, so
no surface module has to remember to log: it notes what the request carried (the tags header, who asked) and
what was answered (status, body), and appends an event to a list. Making rows of them (parsing the answer for
its token counts, inserting into DuckDB) waits until a SQL statement reads the table (conformance/gateway/sql.py):
a run that never queries the table pays microseconds per request, not a database insert. The usage switches
(usage-lag, usage-clock-behind, the tags deviations, ai-query-not-captured) are asked then too, when a row is
made: only a statement's answer shows them, so a self-test gateway notes them only for the requests that read the
table (GatewayState.on, conformance/gateway/selftest.py), not for every model-service request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from conformance.gateway.common import REQUEST_TAGS_HEADER, GatewayState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

MODEL_SERVICE_PREFIXES = ("/ai-gateway/", "/serving-endpoints/")
AI_QUERY_HEADER = "x-conformance-ai-query"  # marks the chat requests the warehouse's ai_query makes (sql.py)
REQUESTER = "conformance@reference.invalid"  # the identity behind the reference gateway's one token
BODY_CAP = 4 << 20  # answers longer than this are logged without token counts
LAG_S = 1.0  # the usage-lag variation: rows become visible this long after the request
PENDING_CAP = 20_000  # a long-lived `conformance serve` nobody queries keeps at most this many events
GATEWAY_TAG = ("ai_gateway_route", "reference")  # the usage-gateway-tags variation adds a tag of its own
CLOCK_BEHIND_S = 1.0  # the usage-clock-behind variation: the gateway's clock is this far behind the warehouse's


@dataclass
class UsageEvent:
    """One answered model-service request, as the recorder saw it (the switches apply when its row is made)."""

    request_id: str
    event_time: datetime  # by the gateway's clock, when the request began
    requester: str | None
    path: str
    request_tags: dict[str, str] | None  # as the request sent them
    status: int
    content_type: str
    body: bytes
    ai_query: bool
    logged_at: float  # time.monotonic() when it was answered; its row is readable from logged_at + the lag
    released: bool = False  # readable now, whatever the lag (UsageLog.release)


class UsageLog:
    """The events not yet in the table, in arrival order; thread-safe (the SQL endpoint reads from a thread)."""

    def __init__(self) -> None:
        self._events: deque[UsageEvent] = deque(maxlen=PENDING_CAP)
        self._lock = threading.Lock()
        self.lag_s = 0.0  # how long a row stays invisible (the usage-lag variation; the self-tests set more)

    def release(self) -> None:
        """Every logged row visible now (a self-test's stand-in for a lagging table catching up)."""
        with self._lock:
            for event in self._events:
                event.released = True

    def add(self, event: UsageEvent) -> None:
        with self._lock:
            self._events.append(event)

    def take_visible(self, lag_s: float | None = None) -> list[UsageEvent]:
        """The events whose rows may be read now (logged at least `lag_s` ago, default the log's own lag),
        removed from the log (later ones stay, in order)."""
        lag = self.lag_s if lag_s is None else lag_s
        now = time.monotonic()

        def visible(event: UsageEvent) -> bool:
            return event.released or event.logged_at + lag <= now

        with self._lock:
            taken = [e for e in self._events if visible(e)]
            if taken:
                remaining = [e for e in self._events if not visible(e)]
                self._events.clear()
                self._events.extend(remaining)
        return taken


def parse_tags(raw: str | None) -> dict[str, str] | None:
    """The tags header as the table stores it: a JSON object of strings, else nothing (the request was refused)."""
    if raw is None:
        return None
    try:
        tags = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        return None
    return tags


def recorded_tags(state: GatewayState, tags: dict[str, str] | None) -> dict[str, str] | None:
    """The tags the row gets: as sent, unless a switch says otherwise."""
    if tags is None or state.on("usage-tags-not-recorded"):
        return None
    if state.on("usage-tags-altered") and tags:
        tags = dict(list(tags.items())[:-1])  # the last tag is lost, as a gateway capping tag counts would
    if state.on("usage-gateway-tags"):
        tags = {**tags, GATEWAY_TAG[0]: GATEWAY_TAG[1]}
    return tags


class UsageRecorder:
    """ASGI middleware: model-service requests are logged once answered (whatever the status)."""

    def __init__(self, app: ASGIApp, state: GatewayState, log: UsageLog) -> None:
        self.app = app
        self.state = state
        self.log = log

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(MODEL_SERVICE_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = datetime.now(timezone.utc)
        answer: dict[str, Any] = {"status": 0, "content_type": "", "chunks": [], "size": 0}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-type":
                        answer["content_type"] = value.decode("latin-1")
            elif message["type"] == "http.response.body" and answer["size"] <= BODY_CAP:
                chunk = message.get("body", b"")
                answer["chunks"].append(chunk)
                answer["size"] += len(chunk)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if answer["status"]:
                self._record(scope, path, started, answer)

    def _record(self, scope: Scope, path: str, started: datetime, answer: dict[str, Any]) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in scope.get("headers", [])}
        self.log.add(UsageEvent(
            request_id=str(uuid.uuid4()),
            event_time=started,
            requester=None if answer["status"] == 401 else REQUESTER,
            path=path,
            request_tags=parse_tags(headers.get(REQUEST_TAGS_HEADER)),
            status=answer["status"],
            content_type=answer["content_type"],
            body=b"".join(answer["chunks"]) if answer["size"] <= BODY_CAP else b"",
            ai_query=AI_QUERY_HEADER in headers,
            logged_at=time.monotonic(),
        ))


def lag_of(state: GatewayState, log: UsageLog) -> float:
    """How long a row stays unreadable: the log's own lag (self-tests set a live table's), or the usage-lag
    variation's."""
    return max(log.lag_s, LAG_S if state.on("usage-lag") else 0.0)


def captured(state: GatewayState, event: UsageEvent) -> bool:
    """Whether the request gets a row at all (ai-query-not-captured drops ai_query's)."""
    return not (event.ai_query and state.on("ai-query-not-captured"))


def event_time_of(state: GatewayState, event: UsageEvent) -> datetime:
    """The row's event_time: the gateway's clock (usage-clock-behind: a second behind the warehouse's)."""
    return event.event_time - timedelta(seconds=CLOCK_BEHIND_S if state.on("usage-clock-behind") else 0)
