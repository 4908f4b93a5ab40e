"""Case records (conformance/cases/*.yaml): loading, validation, and expansion into (case, model) items."""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from conformance import media
from conformance.catalog import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDINGS_MODEL, Model, load_catalog
from conformance.config import Target, features, surfaces
from conformance.errors import BadInput
from conformance.images import data_uri, image_bytes
from conformance.resources import CASES_DIR
from conformance.schemas import schema_names, validate
from conformance.yamlio import load_yaml


@dataclass(frozen=True)
class Case:
    raw: dict[str, Any]
    source: str

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # pickling (a helper process) looks these up before `raw` is set
            raise AttributeError(key)
        try:
            return self.__dict__["raw"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def route_surface(self) -> str:
        """The surface whose route the request goes to (auth and request_tags cases borrow another's)."""
        return self.raw.get("route", self.raw["surface"])

    @property
    def request(self) -> dict[str, Any]:
        return self.raw.get("request", {})

    @property
    def expect(self) -> dict[str, Any]:
        return self.raw["expect"]

    @property
    def stream(self) -> bool:
        return bool(self.request.get("stream"))

    @property
    def negative(self) -> bool:
        """A case whose expected answer is an error: its 4xx/5xx answers are evidence, never retried."""
        return is_negative(self.expect)

    @property
    def steps(self) -> list[Step]:
        """Every request of the case in order: the earlier `steps`, then the case's own request/expect."""
        earlier = [Step(i, s["request"], s["expect"]) for i, s in enumerate(self.raw.get("steps", []))]
        return [*earlier, Step(len(earlier), self.request, self.expect)]

    @property
    def markers(self) -> list[str]:
        return list(self.raw.get("markers", []))


def is_negative(expect: dict[str, Any]) -> bool:
    status = expect["status"]
    return status == "4xx" or (isinstance(status, int) and status >= 400) or (
        isinstance(status, list) and all(s >= 400 for s in status)
    )


@dataclass(frozen=True)
class Step:
    """One request of a (possibly multi-step) case and the expectation its answer is judged by."""

    index: int
    request: dict[str, Any]
    expect: dict[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.request.get("stream"))

    @property
    def negative(self) -> bool:
        return is_negative(self.expect)


class Unresolved(Exception):
    """A `$response` placeholder names a value an earlier answer does not have: the later step cannot be sent."""


@dataclass(frozen=True)
class CaseItem:
    """One parametrised test: a case on one model (or on none, for cases that name no catalog model)."""

    case: Case
    model: Model | None
    served_model: str | None
    limits: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def test_id(self) -> str:
        return f"{self.case.id}@{self.model.name}" if self.model else self.case.id

    def body(self, step: Step | None = None, responses: list[Any] | None = None) -> Any:
        """The request body of a step (default: the case's own request), placeholders expanded."""
        request = step.request if step is not None else self.case.request
        return substitute(request.get("body"), self.served_model, self.limits, responses or [])


# --- body placeholders ----------------------------------------------------------------------------------------
# `{model}` in any string: the name the target serves the model under.
# `{media:FILE:FORM}` in any string: a media fixture's base64, data URI or URL (conformance/media.py).
# {$image: {...}}: generated image content part(s), see IMAGE_KEYS; numbers may be expressions over the model's
#   vision limits (catalog, then the target profile's `limits`), e.g. "max_images + 1", "max_pixels[0]".
# {$response: {step: N, path: "$.choices[0].message"}}: a value of the answer to an earlier step, unmodified.

IMAGE_KEYS = {
    "format": "jpeg | png | webp | gif (required)",
    "width": "pixels, default 64", "height": "pixels, default 64",
    "count": "how many parts; in a list they are spliced in, default 1",
    "animated": "two-frame gif",
    "size_bytes": "pad each PNG file to exactly this many bytes",
    "media_type": "the data URI's media type (default image/<format>)",
    "payload": "image (default) | text: the data is plain text, not an image",
}
_NUMBER_KEYS = ("width", "height", "count", "size_bytes")
_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def limit_number(value: Any, limits: dict[str, Any], what: str) -> int:
    """An int, or an arithmetic expression (+ - * //, [i]) over the model's vision limits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise BadInput(f"{what}: {value!r} is neither an integer nor an expression")

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if limits.get(node.id) is None:
                raise BadInput(f"{what}: the model has no vision limit {node.id!r}")
            return limits[node.id]
        if isinstance(node, ast.Subscript):
            return walk(node.value)[walk(node.slice)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.FloorDiv):
            left, right = walk(node.left), walk(node.right)
            ops = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.FloorDiv: int.__floordiv__}
            return ops[type(node.op)](left, right)
        raise BadInput(f"{what}: {value!r}: only integers, limit names, [i], + - * // are allowed")

    try:
        result = walk(ast.parse(value, mode="eval"))
    except SyntaxError:
        raise BadInput(f"{what}: {value!r} is not an expression") from None
    if not isinstance(result, int) or isinstance(result, bool):
        raise BadInput(f"{what}: {value!r} is not a number")
    return result


def image_parts(spec: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = set(spec) - set(IMAGE_KEYS)
    if unknown or "format" not in spec:
        raise BadInput(f"$image: unknown keys {sorted(unknown)} or no format ({IMAGE_KEYS})")
    n = {k: limit_number(spec[k], limits, f"$image.{k}") for k in _NUMBER_KEYS if k in spec}
    fmt = spec["format"]
    media_type = spec.get("media_type", f"image/{fmt}")
    parts = []
    for i in range(n.get("count", 1)):
        if spec.get("payload", "image") == "text":
            data = b"This is plain text, not an image. " * 4
        else:
            data = image_bytes(fmt, n.get("width", 64), n.get("height", 64), i,
                               bool(spec.get("animated")), n.get("size_bytes"))
        parts.append({"type": "image_url", "image_url": {"url": data_uri(media_type, data)}})
    return parts


def response_value(ref: dict[str, Any], responses: list[Any]) -> Any:
    step, path = ref.get("step"), ref.get("path", "$")
    if not isinstance(step, int) or not 0 <= step < len(responses):
        raise BadInput(f"$response: step {step!r} is not an earlier step")
    value = responses[step]
    for key, index in _PATH.findall(path[1:]):
        ok = isinstance(value, dict) and key in value if key else isinstance(value, list) and int(index) < len(value)
        if not ok:
            raise Unresolved(f"the answer to step {step} has no {path}, which a later step sends back")
        value = value[key] if key else value[int(index)]
    return copy.deepcopy(value)


def substitute(value: Any, model: str | None, limits: dict[str, Any] | None = None,
               responses: list[Any] | None = None) -> Any:
    """Expand the placeholders of a request body (see above)."""
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


def _placeholders(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        if set(value) in ({"$image"}, {"$response"}):
            return [(next(iter(value)), next(iter(value.values())))]
        return [p for v in value.values() for p in _placeholders(v)]
    if isinstance(value, list):
        return [p for v in value for p in _placeholders(v)]
    return []


def _check_references(case: dict[str, Any], where: str, known_checks: set[str]) -> None:
    from conformance.findings import RULES

    for name in case.get("check_strengths") or {}:
        if name not in known_checks and name not in RULES:
            raise BadInput(f"{where}: check_strengths names {name!r}, neither a check nor a rule of "
                           f"{sorted(RULES)} (the status takes the case's own strength)")
    for name in case["expect"].get("checks", []):
        if name not in known_checks:
            raise BadInput(f"{where}: unknown check {name!r}")
    schema = case["expect"].get("schema")
    if schema and schema not in schema_names():
        raise BadInput(f"{where}: unknown schema {schema!r}")
    for feature in case["features"]:
        if feature not in features():
            raise BadInput(f"{where}: unknown feature {feature!r} (add it to data/features.yaml)")
    route = case.get("route", case["surface"])
    if "route" not in surfaces().get(route, {}):
        raise BadInput(f"{where}: surface {route!r} has no route; name one with `route:`")
    steps = [*case.get("steps", []), case]
    nonce = "{nonce}" in repr(case.get("request", {}).get("body"))
    if nonce != ("concurrent" in case) or ("concurrent" in case and "steps" in case):
        raise BadInput(f"{where}: a concurrent case has one request, with {{nonce}} in its body (and only it)")
    for index, step in enumerate(steps):
        request = step.get("request", {})
        if "route" in request and "route" not in surfaces().get(request["route"], {}):
            raise BadInput(f"{where}: step route {request['route']!r} is not a surface with a route")
        if ("body" in request) == ("raw_body" in request):
            raise BadInput(f"{where}: a request has exactly one of body and raw_body")
        for name in step["expect"].get("checks", []):
            if name not in known_checks:
                raise BadInput(f"{where}: unknown check {name!r}")
        if step["expect"].get("schema") and step["expect"]["schema"] not in schema_names():
            raise BadInput(f"{where}: unknown schema {step['expect']['schema']!r}")
        for kind, spec in _placeholders(request.get("body")):
            if kind == "$image" and (not isinstance(spec, dict) or set(spec) - set(IMAGE_KEYS) or "format" not in spec):
                raise BadInput(f"{where}: $image needs a format and only the keys {sorted(IMAGE_KEYS)}")
            if kind == "$response" and not (isinstance(spec, dict) and isinstance(spec.get("step"), int)
                                            and 0 <= spec["step"] < index and _PATH.sub("", spec.get("path", "$"))
                                            == "$"):
                raise BadInput(f"{where}: $response needs an earlier step and a path like $.choices[0].message")


@cache
def load_cases(directory: Path = CASES_DIR) -> tuple[Case, ...]:
    from conformance.checks import CHECKS  # the registry imports every check module

    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        data = load_yaml(path)
        errors = validate("case-file", data)
        if errors:
            raise BadInput(f"case file {path.name} is invalid: {errors[0]}")
        for raw in data["cases"]:
            where = f"{path.name}: case {raw['id']}"
            if raw["id"] in seen:
                raise BadInput(f"{where}: duplicate id (also in {seen[raw['id']]})")
            seen[raw["id"]] = path.name
            _check_references(raw, where, set(CHECKS))
            cases.append(Case(raw=raw, source=path.name))
    return tuple(cases)


def select_models(case: Case, target: Target) -> list[Model]:
    selector = case.models
    if selector == "none":
        return []
    served = [m for m in load_catalog().models if target.served_name(m.name) is not None]
    chosen = [
        m
        for m in served
        if all(m.has(c) for c in selector.get("capabilities", []))
        and ("families" not in selector or m.family in selector["families"])
        and ("providers" not in selector or m.provider in selector["providers"])
        and ("reasoning" not in selector or m.reasoning in selector["reasoning"])
        and ("names" not in selector or m.name in selector["names"])
        and m.family not in selector.get("exclude_families", [])
        and not any(m.has(c) for c in selector.get("exclude_capabilities", []))
        and all(effective_limits(m, target).get(name) for name in selector.get("limits", []))
    ]
    if selector.get("one_per_family"):
        chosen = [m for i, m in enumerate(chosen) if m.family not in {c.family for c in chosen[:i]}]
    if selector.get("default") and chosen:
        preferred = DEFAULT_EMBEDDINGS_MODEL if "embeddings" in selector.get("capabilities", []) else DEFAULT_CHAT_MODEL
        chosen = [next((m for m in chosen if m.name == preferred), chosen[0])]
    return chosen


def effective_limits(model: Model, target: Target) -> dict[str, Any]:
    """The model's vision limits: the catalog's, overridden by the target profile's `limits`."""
    return {**model.vision, **target.limits.get(model.name, {})}


def expand(cases: tuple[Case, ...], target: Target) -> list[CaseItem]:
    media.use_target(target)
    items: list[CaseItem] = []
    for case in cases:
        if case.models == "none":
            # a case naming no catalog model may name the (unknown) model its route path carries
            items.append(CaseItem(case, None, case.request.get("model")))
            continue
        for model in select_models(case, target):
            items.append(CaseItem(case, model, target.served_name(model.name), effective_limits(model, target)))
    return items


def unclaimed_features(case: Case, target: Target) -> list[str]:
    missing = [f for f in case.features if not target.claims(f)]
    return missing + [f"media URL ({why})" for why in media.unreachable(case.request.get("body"), target)]
