"""Token usage of any surface's answer, so every live run can account for what it spent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conformance.client import Exchange
from conformance.sse import SSEEvent

# (usage object, prompt field, completion fields) per surface, in the order the surfaces name them.
USAGE_FORMS = (
    ("usage", "prompt_tokens", ("completion_tokens",)),
    ("usage", "input_tokens", ("output_tokens",)),
    ("usageMetadata", "promptTokenCount", ("candidatesTokenCount", "thoughtsTokenCount")),
)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parts(obj: Any) -> tuple[int | None, int | None]:
    """(prompt, completion) counts an object carries, each None where it carries none. A stream may give
    them apart: Anthropic's message_start has input_tokens, its message_delta the final output_tokens."""
    if not isinstance(obj, dict):
        return None, None
    for container, prompt_key, completion_keys in USAGE_FORMS:
        usage = obj.get(container)
        if not isinstance(usage, dict):
            continue
        prompt = _count(usage.get(prompt_key))
        present = [c for c in map(_count, (usage.get(k) for k in completion_keys)) if c is not None]
        if prompt is not None or present:
            return prompt, sum(present) if present else None
    for nested in ("response", "message"):  # Responses and Anthropic stream events wrap the object
        found = _parts(obj.get(nested))
        if found != (None, None):
            return found
    return None, None


def _totals(payloads: Iterable[Any]) -> tuple[int, int] | None:
    """The last count of each kind wins (counts are running totals: Gemini's on every event, Anthropic's
    message_delta); None when no payload carries a prompt count."""
    prompt = completion = None
    for payload in payloads:
        p, c = _parts(payload)
        prompt = p if p is not None else prompt
        completion = c if c is not None else completion
    if prompt is None:
        return None
    return prompt, completion or 0


def usage_of(exchange: Exchange) -> tuple[int, int] | None:
    """(prompt, completion) tokens, or None when the answer reports no prompt count."""
    if exchange.events is None:
        return _totals([exchange.json])
    return _totals(event.payload for event in exchange.payloads if event.is_json)


def usage_of_events(events: Iterable[SSEEvent]) -> tuple[int, int] | None:
    """The tokens a stream's raw events report (the reference gateway's usage table reads its own streams so)."""

    def payloads() -> Iterable[Any]:
        for event in events:
            if event.is_done:
                continue
            try:
                yield event.json()
            except ValueError:
                continue

    return _totals(payloads())


def usage_of_json(payload: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of one JSON answer, or None."""
    return _totals([payload])
