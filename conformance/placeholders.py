"""Placeholders of request bodies, expanded per model when a case runs.

- `{model}` in any string: the name the target serves the model under.
- `{media:FILE:FORM}` in any string: a media fixture's base64, data URI or URL (conformance/media.py).
- `{$image: {...}}`: generated image content part(s), see IMAGE_KEYS. Its numbers may be expressions over the
  model's vision limits (the catalog's, then the target profile's `limits`): an integer, a limit name, `[i]`,
  `+ - * //` ("max_images + 1", "max_pixels[0]"), or a fraction of a limit, `{fraction_of: max_total_bytes,
  value: 0.74}` (74 % of it, rounded down). `total_bytes` says what a request's images weigh together: each of
  the `count` files is a `count`-th of it.
- `{$response: {step: N, path: "$.choices[0].message"}}`: a value of the answer to an earlier step, unmodified.
"""

from __future__ import annotations

import ast
import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from conformance import media
from conformance.errors import BadInput
from conformance.images import data_uri, image_bytes

IMAGE_KEYS = {
    "format": "jpeg | png | webp | gif (required)",
    "width": "pixels, default 64", "height": "pixels, default 64",
    "count": "how many parts; in a list they are spliced in, default 1",
    "animated": "two-frame gif",
    "size_bytes": "pad each PNG file to exactly this many bytes",
    "total_bytes": "pad the PNG files to this many bytes together (each a count-th of it)",
    "media_type": "the data URI's media type (default image/<format>)",
    "payload": "image (default) | text: the data is plain text, not an image",
}
_NUMBER_KEYS = ("width", "height", "count", "size_bytes", "total_bytes")
PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.FloorDiv: int.__floordiv__}


class Unresolved(Exception):
    """A `$response` placeholder names a value an earlier answer does not have: the later step cannot be sent."""


def _limit(name: str, limits: dict[str, Any], what: str) -> Any:
    if limits.get(name) is None:
        raise BadInput(f"{what}: the model has no vision limit {name!r}")
    return limits[name]


def fraction_of(value: dict[str, Any], limits: dict[str, Any], what: str) -> int:
    """`{fraction_of: LIMIT, value: X}`: X times the limit, rounded down (exact: X is read as a decimal)."""
    if set(value) != {"fraction_of", "value"} or not isinstance(value["fraction_of"], str) or isinstance(
            value["value"], bool) or not isinstance(value["value"], int | float):
        raise BadInput(f"{what}: {value!r}: a fraction is {{fraction_of: <limit name>, value: <number>}}")
    limit = _limit(value["fraction_of"], limits, what)
    if not isinstance(limit, int):
        raise BadInput(f"{what}: the limit {value['fraction_of']!r} is not a number")
    return math.floor(Fraction(str(value["value"])) * limit)


def limit_number(value: Any, limits: dict[str, Any], what: str) -> int:
    """An int, a fraction of a limit, or an arithmetic expression (+ - * //, [i]) over the model's vision limits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return fraction_of(value, limits, what)
    if not isinstance(value, str):
        raise BadInput(f"{what}: {value!r} is neither an integer nor an expression")

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return _limit(node.id, limits, what)
        if isinstance(node, ast.Subscript):
            return walk(node.value)[walk(node.slice)]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise BadInput(f"{what}: {value!r}: only integers, limit names, [i], + - * // are allowed")

    try:
        result = walk(ast.parse(value, mode="eval"))
    except SyntaxError:
        raise BadInput(f"{what}: {value!r} is not an expression") from None
    if not isinstance(result, int) or isinstance(result, bool):
        raise BadInput(f"{what}: {value!r} is not a number")
    return result


def image_problem(spec: Any) -> str | None:
    """Why an `$image` spec is malformed (checked when a case file loads), or None."""
    if not isinstance(spec, dict) or "format" not in spec or set(spec) - set(IMAGE_KEYS):
        return f"$image needs a format and only the keys {sorted(IMAGE_KEYS)}"
    if "size_bytes" in spec and "total_bytes" in spec:
        return "$image takes size_bytes (each file) or total_bytes (all files together), not both"
    return None


@dataclass(frozen=True)
class ImagePlan:
    """What an `$image` spec asks for on one model, its numbers evaluated: all that its parts depend on."""

    format: str
    width: int
    height: int
    count: int
    animated: bool
    file_bytes: int | None  # each file padded to this size; None: as encoded
    media_type: str
    payload: str  # image | text


def image_plan(spec: dict[str, Any], limits: dict[str, Any]) -> ImagePlan:
    problem = image_problem(spec)
    if problem:
        raise BadInput(f"{problem} ({IMAGE_KEYS})")
    n = {k: limit_number(spec[k], limits, f"$image.{k}") for k in _NUMBER_KEYS if k in spec}
    count = n.get("count", 1)
    size = n["total_bytes"] // count if "total_bytes" in n else n.get("size_bytes")
    fmt = spec["format"]
    return ImagePlan(fmt, n.get("width", 64), n.get("height", 64), count, bool(spec.get("animated")), size,
                     spec.get("media_type", f"image/{fmt}"), spec.get("payload", "image"))


def image_parts(spec: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    plan = image_plan(spec, limits)
    parts = []
    for i in range(plan.count):
        if plan.payload == "text":
            data = b"This is plain text, not an image. " * 4
        else:
            data = image_bytes(plan.format, plan.width, plan.height, i, plan.animated, plan.file_bytes)
        parts.append({"type": "image_url", "image_url": {"url": data_uri(plan.media_type, data)}})
    return parts


def response_problem(spec: Any, step: int) -> str | None:
    """Why a `$response` reference in step `step` is malformed, or None."""
    if isinstance(spec, dict) and isinstance(spec.get("step"), int) and 0 <= spec["step"] < step and PATH.sub(
            "", spec.get("path", "$")) == "$":
        return None
    return "$response needs an earlier step and a path like $.choices[0].message"


def response_value(ref: dict[str, Any], responses: list[Any]) -> Any:
    step, path = ref.get("step"), ref.get("path", "$")
    if not isinstance(step, int) or not 0 <= step < len(responses):
        raise BadInput(f"$response: step {step!r} is not an earlier step")
    value = responses[step]
    for key, index in PATH.findall(path[1:]):
        ok = isinstance(value, dict) and key in value if key else isinstance(value, list) and int(index) < len(value)
        if not ok:
            raise Unresolved(f"the answer to step {step} has no {path}, which a later step sends back")
        value = value[key] if key else value[int(index)]
    return copy.deepcopy(value)


def substitute(value: Any, model: str | None, limits: dict[str, Any] | None = None,
               responses: list[Any] | None = None) -> Any:
    """Expand the placeholders of a request body (see the module docstring)."""
    limits, responses = limits or {}, responses or []
    if isinstance(value, str):
        return media.expand(value.replace("{model}", model or ""))
    if isinstance(value, dict):
        if set(value) == {"$image"}:
            parts = image_parts(value["$image"], limits)
            if len(parts) != 1:
                raise BadInput("$image: a count other than 1 needs a list to splice into")
            return parts[0]
        if set(value) == {"$response"}:
            return response_value(value["$response"], responses)
        return {k: substitute(v, model, limits, responses) for k, v in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            if isinstance(v, dict) and set(v) == {"$image"}:
                out += image_parts(v["$image"], limits)
            else:
                out.append(substitute(v, model, limits, responses))
        return out
    return copy.deepcopy(value)


def placeholders(value: Any) -> list[tuple[str, Any]]:
    """(kind, spec) of every `$image` / `$response` placeholder of a body."""
    if isinstance(value, dict):
        if set(value) in ({"$image"}, {"$response"}):
            return [(next(iter(value)), next(iter(value.values())))]
        return [p for v in value.values() for p in placeholders(v)]
    if isinstance(value, list):
        return [p for v in value for p in placeholders(v)]
    return []
