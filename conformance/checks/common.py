"""Checks that apply to the answers of every surface."""

from __future__ import annotations

from collections.abc import Iterator

from conformance.checks.base import CheckContext, check
from conformance.usage import usage_of

MODEL_OUTPUT_KEYS = ("choices", "output", "content", "candidates", "data")


@check("no_model_output", spec="003/README Auth: an unauthenticated request is refused; ours: refused means no "
                              "model output in the error body",
       strength="should",
       reason="implied: a refused request is not served; the spec states no error body, so an answer in it is an "
              "implication of refusal, not a stated rule")
def no_model_output(ctx: CheckContext) -> Iterator[str]:
    body = ctx.body
    if isinstance(body, dict):
        for key in MODEL_OUTPUT_KEYS:
            if body.get(key):
                yield f"$.{key}: an error answer carries model output"


@check("media_adds_prompt_tokens",
       spec="001 Vision / Image to token conversion; Audio and video / Limitations",
       strength="must",
       reason="a stated rule: \"Each image in a request to a foundation model adds to your token usage\" (and for "
              "audio and video, \"large files increase latency and token usage\"): a part the gateway drops on the "
              "way never reaches the model")
def media_adds_prompt_tokens(ctx: CheckContext) -> Iterator[str]:
    """The answer to a request with media reports more prompt tokens than the answer to the same request without
    them (the earlier step `args.without`, default 0). A gateway that silently drops the parts answers both alike.
    An answer that reports no prompt count cannot be judged here: its surface's usage rule (the schema,
    gemini_usage_consistent) names that absence, and this check stays silent rather than guess."""
    step = ctx.args.get("without", 0)
    earlier = ctx.exchange.previous
    if not isinstance(step, int) or not 0 <= step < len(earlier):
        yield f"case error: media_adds_prompt_tokens compares with step {step!r}, and the case has {len(earlier)}"
        return
    with_media, without = usage_of(ctx.exchange), usage_of(earlier[step])
    if with_media is None or without is None:
        return
    if with_media[0] <= without[0]:
        yield (f"$: {with_media[0]} prompt tokens with the media part(s), {without[0]} without them "
               f"(step {step}): the media did not reach the model")
