"""Server-sent events parsing, shared by every streaming surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.bounds import loads

DONE = "[DONE]"


@dataclass
class SSEEvent:
    data: str
    event: str | None = None

    @property
    def is_done(self) -> bool:
        return self.data.strip() == DONE

    def json(self) -> Any:
        return loads(self.data)  # never parses JSON nested deeper than bounds.MAX_JSON_DEPTH (ValueError)


def parse_sse(text: str) -> list[SSEEvent]:
    """Events as the WHATWG algorithm frames them: blank-line separated, multi-line data joined by newlines."""
    events: list[SSEEvent] = []
    data: list[str] = []
    name: str | None = None
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw == "":
            if data:
                events.append(SSEEvent(data="\n".join(data), event=name))
            data, name = [], None
            continue
        if raw.startswith(":"):
            continue
        field, _, value = raw.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:  # a final event without its blank line: kept, the framing check reports it
        events.append(SSEEvent(data="\n".join(data), event=name))
    return events
