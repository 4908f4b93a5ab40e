"""Embeddings checks (003 Query model services with unified APIs / MLflow Embeddings API)."""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterator
from typing import Any

from conformance.checks.base import CheckContext, check, get, is_int

SPEC = "003 Query model services with unified APIs / MLflow Embeddings API"


def _inputs(ctx: CheckContext) -> list[Any] | None:
    value = get(ctx.request_body, "input")
    if isinstance(value, str):
        return [value]
    return value if isinstance(value, list) else None


def _data(ctx: CheckContext) -> list[Any]:
    data = get(ctx.body, "data")
    return data if isinstance(data, list) else []


def _base64_requested(ctx: CheckContext) -> bool:
    return get(ctx.request_body, "encoding_format") == "base64"


def decode_vector(value: Any) -> list[float] | str:
    """The numbers of one embedding (a list, or a base64 string of little-endian float32), or why not."""
    if isinstance(value, list):
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
            return "not a list of numbers"
        return [float(x) for x in value]
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "a string that is not base64"
        if len(raw) % 4:
            return f"base64 of {len(raw)} bytes, not a whole number of float32 values"
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return f"a {type(value).__name__}, neither a list of numbers nor a base64 string"


@check("embeddings_one_per_input",
       spec=f"{SPEC}: print(embeddings.data[0].embedding); OpenAI-compatible: one embedding per input, "
            "data[i].index == i, in input order",
       strength="must",
       reason='what the documented example reads: "print(embeddings.data[0].embedding)", the vector of its input; '
              'one per input is how "OpenAI-compatible interfaces" answer a list')
def embeddings_one_per_input(ctx: CheckContext) -> Iterator[str]:
    inputs = _inputs(ctx)
    if inputs is None:
        yield "case error: embeddings_one_per_input needs input in the request"
        return
    data = _data(ctx)
    if len(data) != len(inputs):
        yield f"$.data: {len(data)} embeddings for {len(inputs)} inputs"
    indexes = [get(item, "index") for item in data]
    if indexes != list(range(len(data))):
        yield f"$.data[*].index: {indexes}, expected {list(range(len(data)))} (one per input, in input order)"


@check("embeddings_vectors_valid",
       spec=f"{SPEC}: data[i].embedding is the vector; ours: every vector non-empty, finite, and all of the "
            "same length (one model, one dimension)",
       strength="should",
       reason='implied: "print(embeddings.data[0].embedding)" prints a vector; that it is non-empty, finite and of '
              "one length per model is what an embedding is, not a stated rule")
def embeddings_vectors_valid(ctx: CheckContext) -> Iterator[str]:
    lengths = set()
    for i, item in enumerate(_data(ctx)):
        vector = decode_vector(get(item, "embedding"))
        if isinstance(vector, str):
            yield f"$.data[{i}].embedding: {vector}"
            continue
        if not vector:
            yield f"$.data[{i}].embedding: empty"
            continue
        bad = [j for j, x in enumerate(vector) if not math.isfinite(x)]
        if bad:
            yield f"$.data[{i}].embedding[{bad[0]}]: {vector[bad[0]]} is not a finite number"
        lengths.add(len(vector))
    if len(lengths) > 1:
        yield f"$.data[*].embedding: vectors of different lengths {sorted(lengths)}"


@check("embeddings_encoding_honoured",
       spec=f"{SPEC}: client.embeddings.create(...) of the OpenAI client sends encoding_format base64 by default "
            "(FIELD-NOTES) and reads base64 strings back; float (the default) means lists of numbers",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces": the OpenAI client asks for encoding_format base64 (FIELD-'
              "NOTES); the client also reads lists")
def embeddings_encoding_honoured(ctx: CheckContext) -> Iterator[str]:
    wanted = str if _base64_requested(ctx) else list
    label = "a base64 string (encoding_format base64)" if wanted is str else "a list of numbers"
    for i, item in enumerate(_data(ctx)):
        value = get(item, "embedding")
        if value is not None and not isinstance(value, wanted):
            yield f"$.data[{i}].embedding: a {type(value).__name__}, expected {label}"


@check("embeddings_usage_consistent",
       spec=f"{SPEC}; OpenAI-compatible embeddings usage: total_tokens = prompt_tokens (+ completion_tokens, if "
            "any), and a non-empty input costs at least one prompt token",
       strength="should",
       reason='implied by "OpenAI-compatible interfaces"; the spec shows no embeddings usage')
def embeddings_usage_consistent(ctx: CheckContext) -> Iterator[str]:
    usage = get(ctx.body, "usage")
    if not isinstance(usage, dict):
        yield "$.usage: missing"
        return
    prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
    completion = usage.get("completion_tokens") or 0
    if is_int(prompt) and is_int(total) and is_int(completion) and total != prompt + completion:
        yield f"$.usage.total_tokens: {total} != prompt_tokens {prompt} + completion_tokens {completion}"
    if is_int(prompt) and prompt < 1:
        yield f"$.usage.prompt_tokens: {prompt} for a non-empty input"


def _cosine(a: list[float], b: list[float]) -> float | None:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm and len(a) == len(b) else None


SAME_TEXT_COSINE = 0.99  # the same text twice in one request: the same vector, up to a batch's float noise


@check("embeddings_in_input_order",
       spec=f"{SPEC}: data[i] is the embedding of input[i] (print(embeddings.data[0].embedding)); one text sent "
            "twice gets the same vector both times, so vectors out of input order (even re-indexed) show",
       strength="should",
       reason='implied: "print(embeddings.data[0].embedding)" reads the first input\'s vector, and "OpenAI-compatible '
              'interfaces" answer a list in input order; that one text gets one vector is what an embedding is')
def embeddings_in_input_order(ctx: CheckContext) -> Iterator[str]:
    inputs, data = _inputs(ctx), _data(ctx)
    if inputs is None or len(set(map(str, inputs))) == len(inputs):
        yield "case error: embeddings_in_input_order needs an input list with a text repeated"
        return
    vectors = [decode_vector(get(item, "embedding")) for item in data[: len(inputs)]]
    first: dict[str, int] = {}
    for i, text in enumerate(inputs[: len(vectors)]):
        j = first.setdefault(str(text), i)
        a, b = vectors[j], vectors[i]
        if j == i or isinstance(a, str) or isinstance(b, str):
            continue  # a vector that is not one is embeddings_vectors_valid's business
        cosine = _cosine(a, b)
        if cosine is not None and cosine < SAME_TEXT_COSINE:
            yield (f"$.data[{i}].embedding: cosine {cosine:.3f} with $.data[{j}].embedding, though input[{i}] "
                   f"and input[{j}] are the same text (vectors not in input order)")
