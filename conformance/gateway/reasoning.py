"""Reasoning on Chat Completions on the reference gateway (001 Reasoning).

Hybrid models (Claude) reason when asked with `thinking: {type: enabled, budget_tokens}`, budget_tokens less
than max_tokens. Models with a catalog `reasoning_effort` (GPT OSS, GPT-5.1, Gemini 3.1 Pro) take the
documented values and reason unless the effective effort is `none`; any other model refuses the parameter.
A reasoning answer is a list: a `reasoning` block with signed summary items, then a `text` block. An assistant
message sent back with its reasoning block must be unmodified: its signatures are verified.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from starlette.requests import Request

from conformance.catalog import Model
from conformance.gateway.common import ApiError, extra, positive_int, state_of


def _reject(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def signature(text: str) -> str:
    return base64.b64encode(hashlib.sha256(b"reference-reasoning\0" + text.encode()).digest()).decode()


def reasoning_plan(request: Request, model: Model, body: dict[str, Any]) -> tuple[bool, int | None]:
    """(reasoning on, thinking budget) for a request; refuses what the contract refuses."""
    on = state_of(request).on
    enabled, budget = False, None
    thinking = body.get("thinking")
    if thinking is not None:
        if model.reasoning != "hybrid":
            raise _reject(f"Model {model.service_name!r} does not take 'thinking'.")
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
            raise _reject("'thinking' must be {type: enabled, budget_tokens: N} or {type: disabled}.")
        if thinking["type"] == "enabled":
            budget = positive_int(thinking, "budget_tokens", required=True)
            max_tokens = positive_int(body, "max_tokens", required=True)
            assert budget is not None and max_tokens is not None
            if budget >= max_tokens and not on("thinking-budget-not-validated"):
                raise _reject(f"thinking.budget_tokens ({budget}) must be less than max_tokens ({max_tokens}).")
            enabled = True
    effort = body.get("reasoning_effort")
    values = model.reasoning_effort.get("values")
    if effort is not None:
        if not values:
            if not on("reasoning-effort-accepted-on-any-model"):
                raise _reject(f"Model {model.service_name!r} does not take 'reasoning_effort'.")
        elif (effort not in values or (effort == "none" and on("reasoning-effort-none-refused"))) and not (
            on("reasoning-effort-invalid-accepted") and effort not in values
        ):
            raise _reject(f"'reasoning_effort' must be one of {', '.join(values)}, not {effort!r}.")
    if values:
        default = model.reasoning_effort.get("default")
        if effort is None and on("reasoning-effort-required"):
            raise _reject(f"Model {model.service_name!r} needs 'reasoning_effort'.")
        effective = effort if effort in values else default
        enabled = effective != "none"
        if effort is None and default == "none" and on("reasoning-default-none-ignored"):
            enabled = True  # reasons although its documented default is none
    if model.reasoning == "hybrid" and on("reasoning-without-thinking"):
        enabled = True
    if model.reasoning == "reasoning_only" and on("reasoning-hidden"):
        enabled = False  # the variation: reasons, but does not expose it (a plain string answer)
    return enabled, budget


def validate_reasoning_history(request: Request, messages: list[Any]) -> None:
    """Assistant messages sent back with reasoning blocks: accepted when unmodified (signatures verified), in any
    earlier turn (001: only the last assistant turn's reasoning blocks are visible to the model; earlier ones are
    accepted and ignored)."""
    assistant = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and message.get("role") == "assistant"
                and isinstance(message.get("content"), list)):
            continue
        for block in message["content"]:
            if not (isinstance(block, dict) and block.get("type") == "reasoning"):
                continue
            if state_of(request).on("reasoning-multi-turn-refused"):
                raise _reject(f"messages[{i}]: reasoning blocks are not accepted in assistant messages.")
            if i != assistant[-1] and state_of(request).on("reasoning-earlier-turns-refused"):
                raise _reject(f"messages[{i}]: reasoning blocks are accepted on the last assistant turn only.")
            summary = block.get("summary")
            if not isinstance(summary, list):
                raise _reject(f"messages[{i}]: a reasoning block needs a summary list.")
            for item in summary:
                text = item.get("text") if isinstance(item, dict) else None
                if not isinstance(text, str) or item.get("signature") != signature(text):
                    raise _reject(f"messages[{i}]: the reasoning block was modified (signature mismatch).")


def reasoning_content(request: Request, reasoning_words: list[str], text: str, keep_empty_text: bool = True) -> Any:
    """The message content of a reasoning answer. A text block with no text (max_tokens spent reasoning) is left
    out unless keep_empty_text."""
    summary_text = " ".join(reasoning_words)
    item: dict[str, Any] = {"type": "summary_text", "text": summary_text, "signature": signature(summary_text)}
    blocks: list[dict[str, Any]] = [
        {"type": "reasoning", "summary": [item], **extra(request, {"id": "rs_reference"})},
        {"type": "text", "text": text, **extra(request, {"annotations": []})},
    ]
    return blocks if text or keep_empty_text else blocks[:1]


def reasoning_deltas(request: Request, reasoning_words: list[str]) -> list[list[dict[str, Any]]]:
    """The delta contents of a streamed reasoning block: the summary text in two pieces, each a list of one
    reasoning block whose summary item carries its piece; the signature (of the whole summary text, as the whole
    answer's) comes with the last piece, or, with the stream-signature-apart variation, in a piece of its own
    with empty text after the others, as Anthropic sends its signature_delta at the end of a thinking block."""
    if not reasoning_words:
        return []
    half = (len(reasoning_words) + 1) // 2
    texts = [" ".join(reasoning_words[:half]), " " + " ".join(reasoning_words[half:])] if half < len(
        reasoning_words) else [" ".join(reasoning_words)]
    items: list[dict[str, Any]] = [{"type": "summary_text", "text": text} for text in texts]
    signed = signature(" ".join(reasoning_words))
    if state_of(request).on("stream-signature-apart"):
        items.append({"type": "summary_text", "text": "", "signature": signed})
    else:
        items[-1]["signature"] = signed
    return [[{"type": "reasoning", "summary": [item], **extra(request, {"id": "rs_reference"})}] for item in items]
