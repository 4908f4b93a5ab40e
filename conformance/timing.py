"""When an answer arrived: time to first byte, total time, and when each event of a stream came.

Every exchange of the suite's HTTP lane is timed from the moment its request is handed to the connection
(`Timing.measure`, in client.GatewayClient.request): `ttfb_s` when the status line and headers were in, `total_s`
when the last body byte was, and `arrivals`, the decoded body size after every read with its time. The events of
a stream are mapped onto those reads by where each ends in the body (`event_times`), so a check can ask when the
first and the last *content* arrived (`stream_profile`: a role-only chunk, message_start, response.created or a
ping carries no content): a gateway that buffers a stream and sends it at the end has its first content arrive as
late as its last. Latency figures of the reports (conformance/latency.py) come from `case_latency`.
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass
from typing import Any

from conformance.sse import BOM

LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Timing:
    """One attempt's answer in time, in seconds from the request being handed to the connection."""

    ttfb_s: float  # status line and headers in
    total_s: float  # the last body byte in
    arrivals: tuple[tuple[int, float], ...] = ()  # (decoded body bytes read so far, seconds) after every read

    @classmethod
    def measure(cls, started: float, headers_at: float | None, arrivals: list[tuple[int, float]]) -> Timing:
        """From monotonic times: the request's start, the headers' arrival, and every body read."""
        end = arrivals[-1][1] if arrivals else (headers_at or time.monotonic())
        first = headers_at if headers_at is not None else end
        return cls(round(first - started, 6), round(end - started, 6),
                   tuple((size, round(at - started, 6)) for size, at in arrivals))

    def at_byte(self, offset: int) -> float:
        """When the body had `offset` bytes: the first read that reached it (the total time past the end)."""
        index = bisect.bisect_left(self.arrivals, (offset,))  # (n,) sorts before every (n, t)
        return self.arrivals[index][1] if index < len(self.arrivals) else self.total_s


def event_ends(text: str) -> list[int]:
    """The UTF-8 byte offset where each event of an SSE body ends, framed exactly as sse.parse_sse frames them
    (blank-line separated, only events with data, a last event without its blank line at the end)."""
    ends: list[int] = []
    has_data = False
    pos = 1 if text.startswith(BOM) else 0
    consumed, counted = pos, len(text[:pos].encode())  # bytes counted up to `consumed` (characters)

    def byte_offset(char: int) -> int:
        nonlocal consumed, counted
        counted += len(text[consumed:char].encode())
        consumed = char
        return counted

    def line(value: str) -> bool:
        return not value.startswith(":") and value.partition(":")[0] == "data"

    for match in LINE_END.finditer(text, pos):
        value = text[pos:match.start()]
        if value == "":
            if has_data:
                ends.append(byte_offset(match.end()))
            has_data = False
        elif line(value):
            has_data = True
        pos = match.end()
    if pos < len(text) and line(text[pos:]):
        has_data = True
    if has_data:
        ends.append(byte_offset(len(text)))
    return ends


def event_times(exchange: Any) -> list[float] | None:
    """The arrival time of every event of a stream (parse_sse's order, [DONE] included), or None when the
    exchange is not a timed stream."""
    timing = getattr(exchange, "timing", None)
    if timing is None or exchange.events is None:
        return None
    ends = event_ends(exchange.text)
    if len(ends) != len(exchange.events):  # cannot happen for a body parse_sse read; never a wrong mapping
        return None
    return [timing.at_byte(end) for end in ends]


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def carries_content(payload: Any) -> bool:
    """Whether one stream event carries model output of any surface: a chat delta's content, a Responses
    output_text delta, an Anthropic text or thinking delta, a Gemini part's text. Role-only chunks, usage chunks,
    message_start, response.created, pings and the like carry none."""
    if not isinstance(payload, dict):
        return False
    choices = payload.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            content = choice.get("delta", {}).get("content") if isinstance(choice, dict) and isinstance(
                choice.get("delta"), dict) else None
            if _text(content) or (isinstance(content, list) and any(
                    isinstance(b, dict) and _text(b.get("text")) for b in content)):
                return True
    kind = payload.get("type")
    if kind == "response.output_text.delta":
        return _text(payload.get("delta"))
    if kind == "content_block_delta" and isinstance(payload.get("delta"), dict):
        delta = payload["delta"]
        return _text(delta.get("text")) or _text(delta.get("thinking"))
    candidates = payload.get("candidates")
    if isinstance(candidates, list):
        for candidate in candidates:
            parts = candidate.get("content", {}).get("parts") if isinstance(candidate, dict) and isinstance(
                candidate.get("content"), dict) else None
            if isinstance(parts, list) and any(isinstance(p, dict) and _text(p.get("text")) for p in parts):
                return True
    return False


@dataclass(frozen=True)
class StreamProfile:
    """When a stream's content came: its first and last content events, in seconds from the request."""

    content_events: int
    first_content_s: float
    last_content_s: float

    @property
    def ratio(self) -> float:
        """first / last content arrival: near 1 when everything came at once at the end (a buffered stream), well
        below it when the content came as it was made."""
        return self.first_content_s / self.last_content_s if self.last_content_s > 0 else 1.0


def stream_profile(exchange: Any) -> StreamProfile | None:
    """The content profile of a timed stream; None when it is not one or carries no content."""
    times = event_times(exchange)
    if times is None:
        return None
    content = [times[p.index] for p in exchange.payloads if p.is_json and carries_content(p.payload)]
    if not content:
        return None
    return StreamProfile(len(content), content[0], content[-1])


def case_latency(exchanges: list[Any]) -> dict[str, Any] | None:
    """The latency record of a case (summary.json `latency`): its last answered request's time to first byte
    and total time, and for a stream when its first content came and the first/last ratio. Only 2xx answers
    count (a refusal's speed says nothing of the model's); a case of several requests (steps, concurrent
    requests) also gives how many were timed."""
    timed = [e for e in exchanges if getattr(e, "timing", None) is not None and 200 <= e.status < 300]
    if not timed:
        return None
    last = timed[-1]
    record: dict[str, Any] = {"ttfb_s": last.timing.ttfb_s, "total_s": last.timing.total_s,
                              "stream": last.events is not None}
    profile = stream_profile(last)
    if profile is not None:
        record.update(first_content_s=profile.first_content_s, content_events=profile.content_events,
                      first_last_ratio=round(profile.ratio, 4))
    if len(exchanges) > 1:
        record["requests"] = len(timed)
    return record
