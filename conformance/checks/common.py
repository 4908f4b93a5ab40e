"""Checks that apply to the answers of every surface."""

from __future__ import annotations

from collections.abc import Iterator

from conformance.checks.base import CheckContext, check

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
