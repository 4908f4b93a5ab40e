"""Token usage of any surface's answer, so every live run can account for what it spent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conformance.client import Exchange
from conformance.sse import SSEEvent

# (prompt field, completion fields) per usage object, in the order the surfaces name them.
USAGE_FORMS = (
    ("usage", "prompt_tokens", ("completion_tokens",)),
    ("usage", "input_tokens", ("output_tokens",)),
    ("usageMetadata", "promptTokenCount", ("candidatesTokenCount", "thoughtsTokenCount")),
)


def _from_object(obj: Any) -> tuple[int, int] | None:
    if not isinstance(obj, dict):
        return None
    for container, prompt_key, completion_keys in USAGE_FORMS:
        usage = obj.get(container)
        if isinstance(usage, dict) and isinstance(usage.get(prompt_key), int):
            completion = sum(usage.get(k) or 0 for k in completion_keys if isinstance(usage.get(k) or 0, int))
            return usage[prompt_key], completion
    for nested in ("response", "message"):  # Responses and Anthropic stream events wrap the object
        found = _from_object(obj.get(nested))
        if found:
            return found
    return None


def usage_of(exchange: Exchange) -> tuple[int, int] | None:
    """(prompt, completion) tokens, or None when the answer reports none."""
    if exchange.events is not None:
        return usage_of_events(exchange.events)
    return _from_object(exchange.json)


def usage_of_events(events: Iterable[SSEEvent]) -> tuple[int, int] | None:
    """The last usage a stream's events report (the reference gateway's usage table reads its own streams so)."""
    found = None
    for event in events:
        if event.is_done:
            continue
        try:
            payload = event.json()
        except ValueError:
            continue
        found = _from_object(payload) or found
    return found


def usage_of_json(payload: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of one JSON answer, or None."""
    return _from_object(payload)
