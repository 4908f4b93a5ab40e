"""Gemini generateContent checks (003 Native APIs / Google Gemini API; 001 Audio and video / Google Gemini API).

A stream (streamGenerateContent?alt=sse) is judged by the same checks after its events are merged the way
google-genai's response.text reads them, plus a check of where the final fields come.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get, is_int, within_limit

SPEC = "003 Native APIs / Google Gemini API"
SPEC_STREAM = f"{SPEC}: streamGenerateContent?alt=sse, each event a GenerateContentResponse"
USAGE_PARTS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount")


def _payloads(ctx: CheckContext) -> list[tuple[int, Any]]:
    """(index, payload) of every JSON event (an event that is not JSON is the judge's finding)."""
    return [(p.index, p.payload) for p in ctx.json_events()]


def merge(events: list[Any]) -> dict[str, Any]:
    """One GenerateContentResponse from a stream: parts appended per candidate index, last finishReason and
    last usageMetadata kept."""
    candidates: dict[int, dict[str, Any]] = {}
    merged: dict[str, Any] = {}
    for payload in events:
        for position, cand in enumerate(get(payload, "candidates") or []):
            if not isinstance(cand, dict):
                continue
            index = cand.get("index", position) if is_int(cand.get("index", position)) else position
            into = candidates.setdefault(index, {"content": {"parts": []}})
            content = cand.get("content")
            if isinstance(content, dict):
                if "role" in content:
                    into["content"]["role"] = content["role"]
                into["content"]["parts"] += [p for p in content.get("parts") or [] if isinstance(p, dict)]
            if cand.get("finishReason") is not None:
                into["finishReason"] = cand["finishReason"]
        if isinstance(get(payload, "usageMetadata"), dict):
            merged["usageMetadata"] = payload["usageMetadata"]
    merged["candidates"] = [candidates[i] for i in sorted(candidates)]
    return merged


def response_of(ctx: CheckContext) -> Any:
    if ctx.exchange.events is not None:
        return merge([payload for _, payload in _payloads(ctx)])
    return ctx.body


def _candidates(response: Any) -> list[Any]:
    value = get(response, "candidates")
    return value if isinstance(value, list) else []


def _max_output_tokens(ctx: CheckContext) -> int | None:
    value = get(ctx.request_body, "generationConfig", "maxOutputTokens")
    return value if is_int(value) else None


def answer_text(candidate: Any) -> str:
    parts = get(candidate, "content", "parts")
    if not isinstance(parts, list):
        return ""
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and not p.get("thought"))


@check("gemini_candidates_answer",
       spec=f"{SPEC}: print(response.text) reads the candidates' text parts, role 'model' as in the documented "
            "contents; every candidate says why it finished (finishReason); a cut answer may have no text",
       strength="must",
       reason='what the documented example reads: "print(response.text)", the text of the candidates')
def gemini_candidates_answer(ctx: CheckContext) -> Iterator[str]:
    response = response_of(ctx)
    candidates = _candidates(response)
    if not candidates:
        yield "$.candidates: no candidate"
    for i, candidate in enumerate(candidates):
        reason = get(candidate, "finishReason")
        if reason is None:
            yield f"$.candidates[{i}].finishReason: missing on the answer"
        if reason in (None, "STOP"):
            role = get(candidate, "content", "role")
            if role != "model":
                yield f"$.candidates[{i}].content.role: {role!r}, expected 'model'"
            if not answer_text(candidate).strip():
                yield f"$.candidates[{i}].content.parts: no text, although the answer finished with {reason!r}"


@check("gemini_usage_consistent",
       spec=f"{SPEC}: usageMetadata totalTokenCount = promptTokenCount + candidatesTokenCount + thoughtsTokenCount "
            "(+ toolUsePromptTokenCount), as Google's API reference defines the total",
       strength="should",
       reason='implied by "Provider-specific interfaces" (Google\'s usageMetadata); the spec shows no Gemini answer')
def gemini_usage_consistent(ctx: CheckContext) -> Iterator[str]:
    usage = get(response_of(ctx), "usageMetadata")
    if not isinstance(usage, dict):
        yield "$.usageMetadata: missing"
        return
    counts = {k: usage.get(k) or 0 for k in USAGE_PARTS}
    total = usage.get("totalTokenCount")
    if all(is_int(v) for v in (*counts.values(), total)) and total != sum(counts.values()):
        parts = " + ".join(f"{k} {v}" for k, v in counts.items() if v)
        yield f"$.usageMetadata.totalTokenCount: {total} != {parts}"


@check("gemini_max_output_tokens_respected",
       spec=f"{SPEC}: generationConfig.maxOutputTokens bounds the answer (candidatesTokenCount)",
       strength="should",
       reason="implied: the documented requests send maxOutputTokens as the limit of the answer; no sentence says "
              "so")
def gemini_max_output_tokens_respected(ctx: CheckContext) -> Iterator[str]:
    yield from within_limit("gemini_max_output_tokens_respected", _max_output_tokens(ctx),
                            "generationConfig.maxOutputTokens",
                            get(response_of(ctx), "usageMetadata", "candidatesTokenCount"),
                            "$.usageMetadata.candidatesTokenCount")


@check("gemini_finish_max_tokens_when_truncated",
       spec=f"{SPEC}: FinishReason MAX_TOKENS, 'the maximum number of tokens as specified in the request was "
            "reached' (Gemini API reference), when candidates and thoughts used maxOutputTokens",
       strength="should",
       reason='implied by "Provider-specific interfaces": Google\'s FinishReason MAX_TOKENS; the spec shows no '
              "Gemini answer")
def gemini_finish_max_tokens_when_truncated(ctx: CheckContext) -> Iterator[str]:
    limit, response = _max_output_tokens(ctx), response_of(ctx)
    usage = get(response, "usageMetadata") or {}
    used = sum(v for v in (get(usage, "candidatesTokenCount"), get(usage, "thoughtsTokenCount")) if is_int(v))
    if limit is None or used < limit:
        return
    for i, candidate in enumerate(_candidates(response)):
        if get(candidate, "finishReason") != "MAX_TOKENS":
            yield (f"$.candidates[{i}].finishReason: {get(candidate, 'finishReason')!r}, expected 'MAX_TOKENS' "
                   f"({used} tokens reached maxOutputTokens {limit})")


@check("gemini_stream_final_event",
       spec=f"{SPEC_STREAM}: the last event with candidates carries finishReason, and no earlier event finishes; "
            "the last event carries usageMetadata (a usage-only last event without candidates is a "
            "GenerateContentResponse too: its candidates are optional)",
       strength="should",
       reason='implied by "Provider-specific interfaces" (Google\'s stream); the spec shows no Gemini stream')
def gemini_stream_final_event(ctx: CheckContext) -> Iterator[str]:
    payloads = _payloads(ctx)
    if not payloads:
        yield "stream: no event"
        return
    with_candidates = [i for i, p in payloads if _candidates(p)]
    finished = [i for i, p in payloads if any(get(c, "finishReason") for c in _candidates(p))]
    if not with_candidates:
        yield "stream: no event has candidates"
    elif with_candidates[-1] not in finished:
        yield f"event[{with_candidates[-1]}]: the last event with candidates has no finishReason"
    if finished and finished[0] != with_candidates[-1]:
        yield f"event[{finished[0]}]: finishReason before the last event with candidates ({with_candidates[-1]})"
    last_index, last = payloads[-1]
    if not isinstance(get(last, "usageMetadata"), dict):
        yield f"event[{last_index}]: the last event has no usageMetadata"
