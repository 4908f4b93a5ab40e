"""Case records (conformance/cases/*.yaml): loading, validation, and expansion into (case, model) items."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from conformance import media
from conformance.catalog import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDINGS_MODEL, Model, load_catalog
from conformance.config import Target, features, surfaces
from conformance.errors import BadInput
from conformance.resources import CASES_DIR
from conformance.schemas import schema_names, validate
from conformance.yamlio import load_yaml


@dataclass(frozen=True)
class Case:
    raw: dict[str, Any]
    source: str

    def __getattr__(self, key: str) -> Any:
        try:
            return self.raw[key]
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
        status = self.expect["status"]
        return status == "4xx" or (isinstance(status, int) and status >= 400) or (
            isinstance(status, list) and all(s >= 400 for s in status)
        )

    @property
    def markers(self) -> list[str]:
        return list(self.raw.get("markers", []))


@dataclass(frozen=True)
class CaseItem:
    """One parametrised test: a case on one model (or on none, for cases that name no catalog model)."""

    case: Case
    model: Model | None
    served_model: str | None

    @property
    def test_id(self) -> str:
        return f"{self.case.id}@{self.model.name}" if self.model else self.case.id

    def body(self) -> Any:
        return substitute(self.case.request.get("body"), self.served_model)


def substitute(value: Any, model: str | None) -> Any:
    """`{model}` placeholders in a request body become the name the target serves the model under;
    `{media:FILE:FORM}` placeholders a media fixture's base64, data URI or URL (conformance/media.py)."""
    if isinstance(value, str):
        return media.expand(value.replace("{model}", model or ""))
    if isinstance(value, dict):
        return {k: substitute(v, model) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, model) for v in value]
    return copy.deepcopy(value)


def _check_references(case: dict[str, Any], where: str, known_checks: set[str]) -> None:
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
    request = case.get("request", {})
    if ("body" in request) == ("raw_body" in request):
        raise BadInput(f"{where}: a request has exactly one of body and raw_body")


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
    ]
    if selector.get("default") and chosen:
        preferred = DEFAULT_EMBEDDINGS_MODEL if "embeddings" in selector.get("capabilities", []) else DEFAULT_CHAT_MODEL
        chosen = [next((m for m in chosen if m.name == preferred), chosen[0])]
    if selector.get("one_per_family"):
        first: dict[str, Model] = {}
        for m in chosen:
            if m.family not in first or m.name == DEFAULT_CHAT_MODEL:
                first[m.family] = m
        chosen = [m for m in chosen if first[m.family] is m]
    return chosen


def expand(cases: tuple[Case, ...], target: Target) -> list[CaseItem]:
    media.use_target(target)
    items: list[CaseItem] = []
    for case in cases:
        if case.models == "none":
            # a case naming no catalog model may name the (unknown) model its route path carries
            items.append(CaseItem(case, None, case.request.get("model")))
            continue
        for model in select_models(case, target):
            items.append(CaseItem(case, model, target.served_name(model.name)))
    return items


def unclaimed_features(case: Case, target: Target) -> list[str]:
    missing = [f for f in case.features if not target.claims(f)]
    return missing + [f"media URL ({why})" for why in media.unreachable(case.request.get("body"), target)]
