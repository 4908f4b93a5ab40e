"""Behaviour no schema catches: answers that cross between concurrent requests, streams that do not stream,
usage that does not add up between a request streamed and the same request not streamed. Surface-generic: each
reads any surface's answer (chat, Responses, Anthropic, Gemini)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get, is_int
from conformance.client import Exchange
from conformance.timing import stream_profile

SPEC_ANSWER = "001 Chat: The following is an expected response format for a request made using the REST API"
SPEC_STREAM = '001 Reasoning / Gemini model example: "stream": true; 003: OpenAI-compatible interfaces'
TEXT_KEYS = ("content", "text", "output_text", "delta")  # where any surface's answer (or stream delta) has text
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def folded(text: str) -> str:
    """Letters and digits only, lower case: a nonce a model re-spelt (spaces, dashes, case) is still found."""
    return _NOT_ALNUM.sub("", text.casefold())


def _texts(value: Any, under: str | None = None) -> Iterator[str]:
    if isinstance(value, str):
        if under in TEXT_KEYS:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item, under)


def answer_text(exchange: Exchange) -> str:
    """The model output of any surface's answer or stream: every string under a text key (chat content, content
    blocks' and parts' text, Responses output_text and deltas)."""
    if exchange.events is not None:
        return " ".join(t for p in exchange.payloads if p.is_json for t in _texts(p.payload))
    return " ".join(_texts(exchange.json))


def answer_id(exchange: Exchange) -> Any:
    """The answer's id (chat, Responses, Anthropic: id; Gemini: responseId); in a stream, the first one given."""
    bodies = [p.payload for p in exchange.payloads if p.is_json] if exchange.events is not None else [exchange.json]
    for body in bodies:
        for path in (("id",), ("responseId",), ("message", "id"), ("response", "id")):
            found = get(body, *path)
            if isinstance(found, str) and found:
                return found
    return None


def _position(ctx: CheckContext) -> int:
    return next((i for i, e in enumerate(ctx.group) if e is ctx.exchange), -1)


def _group_ready(ctx: CheckContext, name: str) -> Iterator[str]:
    if len(ctx.group) < 2 or ctx.exchange.nonce is None or _position(ctx) < 0:
        yield f"case error: {name} judges the answers of a concurrent case (concurrent: in the case data)"


@check("concurrency_answer_own",
       spec=f"{SPEC_ANSWER}: a response answers the request it was made for, also when others are in flight",
       strength="must",
       reason='a response is the answer to its own request ("expected response format for a request made using '
              'the REST API"): an answer that carries the nonce another concurrent request asked for was made for '
              "that request and handed to this one")
def concurrency_answer_own(ctx: CheckContext) -> Iterator[str]:
    problems = list(_group_ready(ctx, "concurrency_answer_own"))
    if problems:
        yield from problems
        return
    whole = folded(ctx.exchange.text)  # anywhere in the answer: a foreign nonce is never there by chance
    here = _position(ctx)
    for index, other in enumerate(ctx.group):
        if index != here and other.nonce and folded(other.nonce) in whole:
            yield (f"$: the answer to request {here} carries the nonce {other.nonce} of request {index} "
                   f"(its own is {ctx.exchange.nonce}): answers crossed between concurrent requests")


@check("concurrency_ids_unique",
       spec=f"{SPEC_ANSWER}: each answer has its own id (null allowed: 001's example id is null)",
       strength="must",
       reason='each response to a request is its own ("expected response format for a request made using the REST '
              'API"): two different concurrent answers under one id are one response handed to several requests, '
              "or indistinguishable to a client and to usage tracking")
def concurrency_ids_unique(ctx: CheckContext) -> Iterator[str]:
    problems = list(_group_ready(ctx, "concurrency_ids_unique"))
    if problems:
        yield from problems
        return
    mine, here = answer_id(ctx.exchange), _position(ctx)
    if mine is None:
        return
    same = [i for i, other in enumerate(ctx.group) if i != here and answer_id(other) == mine]
    if same:
        yield f"$.id: {mine!r} is also the id of the answer(s) to request(s) {same} sent at the same time"


@check("concurrency_nonce_echoed",
       spec="ours: a model asked to repeat a code does so; a live model may paraphrase around it, re-spell it or "
            "refuse, so its absence is evidence to look at, not a broken rule",
       strength="advisory",
       reason="ours: whether a model repeats what it is asked to is the model's behaviour, not the gateway's "
              "contract; a foreign nonce (concurrency_answer_own) is the isolation failure")
def concurrency_nonce_echoed(ctx: CheckContext) -> Iterator[str]:
    problems = list(_group_ready(ctx, "concurrency_nonce_echoed"))
    if problems:
        yield from problems
        return
    nonce = ctx.exchange.nonce or ""
    text = answer_text(ctx.exchange)
    if folded(nonce) not in folded(text):
        shown = " ".join(text.split())[:120]
        yield f"$: the answer does not repeat its request's nonce {nonce} (answer text: {shown!r})"


@check("streaming_incremental",
       spec=f"{SPEC_STREAM}: a stream delivers its content as it is made, not all at once at the end",
       strength="should",
       reason="implied, not stated: 001 sends stream true and the unified APIs are \"OpenAI-compatible "
              "interfaces\", whose streams deliver tokens as they are generated; no sentence says how soon")
def streaming_incremental(ctx: CheckContext) -> Iterator[str]:
    """A stream long enough to measure (min_content_events content events, the last content at least
    min_duration_s after the request) must have its first content arrive well before its last: first/last at most
    max_ratio. A shorter or faster stream cannot tell buffering from speed and is not judged."""
    if ctx.exchange.events is None:
        return  # stream_is_sse's finding
    if ctx.exchange.timing is None:
        yield "case error: streaming_incremental needs a timed answer (the suite's HTTP lane times every answer)"
        return
    max_ratio = float(ctx.args.get("max_ratio", 0.9))
    min_events = int(ctx.args.get("min_content_events", 5))
    min_duration = float(ctx.args.get("min_duration_s", 1.0))
    profile = stream_profile(ctx.exchange)
    if profile is None or profile.content_events < min_events or profile.last_content_s < min_duration:
        return
    if profile.ratio > max_ratio:
        yield (f"stream: the first of {profile.content_events} content events arrived {profile.first_content_s:.3f} s "
               f"after the request, the last {profile.last_content_s:.3f} s (first/last {profile.ratio:.2f} > "
               f"{max_ratio:g}): the content came all at once at the end, as from a buffered stream")


def prompt_count(usage: Any) -> int | None:
    """The prompt (input) tokens a usage object reports, in any surface's names: chat prompt_tokens and Gemini
    promptTokenCount include cached tokens; Anthropic's input_tokens exclude them, so its cache_creation and
    cache_read input tokens are added (a prompt-cache hit moves tokens between them, not out of the prompt)."""
    if not isinstance(usage, dict):
        return None
    for key in ("prompt_tokens", "promptTokenCount"):
        if is_int(usage.get(key)):
            return int(usage[key])
    if is_int(usage.get("input_tokens")):
        extra = [usage.get(k) for k in ("cache_creation_input_tokens", "cache_read_input_tokens")]
        return int(usage["input_tokens"]) + sum(v for v in extra if is_int(v))
    return None


USAGE_PLACES = ((("usage",), ".usage"), (("usageMetadata",), ".usageMetadata"),
                (("message", "usage"), ".message.usage"), (("response", "usage"), ".response.usage"))


def _prompt_counts(payload: Any) -> Iterator[tuple[str, int]]:
    for path, where in USAGE_PLACES:
        count = prompt_count(get(payload, *path))
        if count is not None:
            yield where, count


@check("usage_stream_consistent",
       spec="003 Tag requests for usage tracking; 001 Chat usage: the same request streamed and not streamed "
            "reports the same prompt tokens (Anthropic's message_start and message_delta, Gemini's usageMetadata "
            "on any event, a chat usage chunk, a Responses terminal event)",
       strength="should",
       reason='implied, not stated: usage is tracked per request ("captured in the usage tracking system table") '
              "and the same input is the same prompt whether the answer is streamed or not; the spec shows no "
              "streamed usage")
def usage_stream_consistent(ctx: CheckContext) -> Iterator[str]:
    """The stream's prompt counts against the earlier step's non-streamed answer to the same request; with
    `requires_usage`, a stream that reports no prompt count at all is a finding too (an OpenAI-compatible
    stream asked for stream_options.include_usage; Anthropic's message_start; Gemini's last event)."""
    if ctx.exchange.events is None:
        return
    whole = [e for e in ctx.exchange.previous if e.events is None and 200 <= e.status < 300]
    if not whole:
        yield "case error: usage_stream_consistent needs an earlier step: the same request, not streamed"
        return
    body = whole[-1].json
    expected = next((count for _, count in _prompt_counts(body)), None)
    if expected is None:
        return  # the whole answer's usage is its own rules' business
    counted = [(p.index, where, count) for p in ctx.json_events() for where, count in _prompt_counts(p.payload)]
    if not counted and ctx.args.get("requires_usage"):
        yield f"stream: no event reports the prompt tokens (the same request not streamed: {expected})"
    wrong = [(i, where, count) for i, where, count in counted if count != expected]
    if wrong:
        i, where, count = wrong[0]
        more = f" (and {len(wrong) - 1} more event(s))" if len(wrong) > 1 else ""
        yield (f"event[{i}]{where}: {count} prompt tokens, the same request not streamed reported {expected}"
               f"{more}")
