"""Server-sent events: parsing, shared by every streaming surface, and the one reading of each event's payload.

The parser follows the WHATWG event-stream interpretation, so every framing the SSE format allows reads the
same: LF, CRLF or lone CR line ends, comments (lines starting with a colon), `data:` with or without the one
space after the colon, multi-line data, fields without a colon, unknown fields (`id`, `retry`, anything else:
ignored), and a leading byte-order mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.bounds import loads

DONE = "[DONE]"
BOM = "\ufeff"


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
    """Events as the WHATWG algorithm frames them: blank-line separated, multi-line data joined by newlines,
    an empty `event:` meaning no name (the default type, message)."""
    events: list[SSEEvent] = []
    data: list[str] = []
    name: str | None = None
    text = text[1:] if text.startswith(BOM) else text
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
            name = value or None
    if data:  # a final event without its blank line (WHATWG drops it): kept, so the evidence shows what came
        events.append(SSEEvent(data="\n".join(data), event=name))
    return events


@dataclass(frozen=True)
class StreamPayload:
    """One data event of a stream as every reader sees it: its position among the stream's events (the
    `event[i]` of every message), its SSE event name, and its JSON payload, or why it has none."""

    index: int
    event: str | None
    payload: Any = None
    error: str | None = None

    @property
    def is_json(self) -> bool:
        return self.error is None


def stream_payloads(events: list[SSEEvent]) -> list[StreamPayload]:
    """The payload of every event but the [DONE] terminator, parsed once; an event that is not JSON keeps its
    place with its parse error (the judge reports it once; the checks read the others). Nothing nested deeper
    than bounds.MAX_JSON_DEPTH is parsed (a ValueError like any other)."""
    out: list[StreamPayload] = []
    for index, event in enumerate(events):
        if event.is_done:
            continue
        try:
            out.append(StreamPayload(index, event.event, event.json()))
        except ValueError as exc:
            out.append(StreamPayload(index, event.event, error=str(exc)))
    return out
