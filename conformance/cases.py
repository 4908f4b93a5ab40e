"""Case files (conformance/cases/*.yaml): loading, validation, and expansion into (case, model) items.

A file is validated against schemas/case-file.schema.json, expanded (defaults, check sets, tables:
conformance/casefile.py), and every record validated again as a whole case and made a typed Case
(conformance/casemodel.py) whose references (checks, schemas, features, routes, placeholders) must exist.
All of it happens once, when the cases load; a bad file is one line of BadInput naming the file and the case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from conformance import casefile, media
from conformance.casemodel import Case, CaseBase, Step, is_negative
from conformance.catalog import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDINGS_MODEL, Model, load_catalog
from conformance.config import Target, features
from conformance.errors import BadInput
from conformance.known_valid import validate_known
from conformance.placeholders import Unresolved, image_problem, placeholders, response_problem, substitute
from conformance.resources import CASES_DIR
from conformance.schemas import schema_names
from conformance.vocabulary import surfaces
from conformance.yamlio import load_yaml

__all__ = ["Case", "CaseItem", "Step", "Unresolved", "expand", "is_negative", "load_cases", "select_models",
           "substitute", "unclaimed_features"]

AnyCase = TypeVar("AnyCase", bound=CaseBase)


@dataclass(frozen=True)
class CaseItem(Generic[AnyCase]):
    """One parametrised test: a case (a Case, or a ClientCase) on one model (or on none, for cases that name
    no catalog model)."""

    case: AnyCase
    model: Model | None
    served_model: str | None
    limits: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @cached_property  # asked for every item at every turn of a run and of the self-tests' matrix
    def test_id(self) -> str:
        return f"{self.case.id}@{self.model.name}" if self.model else str(self.case.id)

    def body(self, step: Step | None = None, responses: list[Any] | None = None) -> Any:
        """The request body of a step (default: the case's own request), placeholders expanded."""
        if step is None:
            assert isinstance(self.case, Case), "a client case has no request body"
            step = self.case.steps[-1]
        request = step.request
        return substitute(request.body, self.served_model, self.limits, responses or [])


def load_files(directory: Path, schema: str, make: Callable[[dict[str, Any], str], AnyCase],
               check: Callable[[AnyCase, str], None], kind: str = "case") -> tuple[AnyCase, ...]:
    """Every *.yaml of a directory, in name order: file schema, expansion, record schema, typed case, check."""
    cases: list[AnyCase] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        data = load_yaml(path)
        errors = validate_known(schema, data)
        if errors:
            raise BadInput(f"{kind} file {path.name} is invalid: {errors[0]}")
        for record in casefile.expand(data, path.name):
            where = f"{path.name}: case {record.get('id', '?')}"
            errors = validate_known(f"{schema}#/$defs/case", record)
            if errors:
                raise BadInput(f"{where} is invalid: {errors[0]}")
            if record["id"] in seen:
                raise BadInput(f"{where}: duplicate id (also in {seen[record['id']]})")
            seen[record["id"]] = path.name
            case = make(record, path.name)
            check(case, where)
            cases.append(case)
    return tuple(cases)


def check_common(case: CaseBase, where: str) -> None:
    for feature in case.features:
        if feature not in features():
            raise BadInput(f"{where}: unknown feature {feature!r} (add it to data/features.yaml)")


def check_references(case: Case, where: str) -> None:
    """What a schema cannot say: the names a case uses exist (checks, rules, schemas, features, routes)."""
    from conformance.checks import CHECKS  # the registry imports every check module
    from conformance.findings import RULES

    check_common(case, where)
    for name in case.check_strengths:
        if name not in CHECKS and name not in RULES:
            raise BadInput(f"{where}: check_strengths names {name!r}, neither a check nor a rule of "
                           f"{sorted(RULES)} (the status takes the case's own strength)")
    route = surfaces().get(case.route_surface)
    if route is None or route.route is None:
        raise BadInput(f"{where}: surface {case.route_surface!r} has no route; name one with `route:`")
    nonce = "{nonce}" in repr(case.request.body)
    if nonce != (case.concurrent is not None) or (case.concurrent is not None and case.earlier):
        raise BadInput(f"{where}: a concurrent case has one request, with {{nonce}} in its body (and only it)")
    for step in case.steps:
        step_route = surfaces().get(step.request.route) if step.request.route else route
        if step_route is None or step_route.route is None:
            raise BadInput(f"{where}: step route {step.request.route!r} is not a surface with a route")
        if (step.request.body is None) == (step.request.raw_body is None):
            raise BadInput(f"{where}: a request has exactly one of body and raw_body")
        for name in step.expect.checks:
            if name not in CHECKS:
                raise BadInput(f"{where}: unknown check {name!r}")
        if step.expect.schema and step.expect.schema not in schema_names():
            raise BadInput(f"{where}: unknown schema {step.expect.schema!r}")
        for kind, spec in placeholders(step.request.body):
            problem = image_problem(spec) if kind == "$image" else response_problem(spec, step.index)
            if problem:
                raise BadInput(f"{where}: {problem}")


@cache
def load_cases(directory: Path = CASES_DIR) -> tuple[Case, ...]:
    return load_files(directory, "case-file", Case.from_record, check_references)


def select_models(case: CaseBase, target: Target) -> list[Model]:
    selector = case.models
    if selector.none:
        return []
    served = [m for m in load_catalog().models if target.served_name(m.name) is not None]
    chosen = [
        m
        for m in served
        if all(m.has(c) for c in selector.capabilities)
        and (selector.families is None or m.family in selector.families)
        and (selector.providers is None or m.provider in selector.providers)
        and (selector.reasoning is None or m.reasoning in selector.reasoning)
        and (selector.names is None or m.name in selector.names)
        and m.family not in selector.exclude_families
        and not any(m.has(c) for c in selector.exclude_capabilities)
        and all(effective_limits(m, target).get(name) for name in selector.limits)
    ]
    # where one model stands for many, it is one the target serves (the preflight found the others unserved)
    chosen.sort(key=lambda m: m.name in target.unserved)
    if selector.one_per_family:
        chosen = [m for i, m in enumerate(chosen) if m.family not in {c.family for c in chosen[:i]}]
    if selector.default and chosen:
        preferred = DEFAULT_EMBEDDINGS_MODEL if "embeddings" in selector.capabilities else DEFAULT_CHAT_MODEL
        serving = [m for m in chosen if m.name not in target.unserved] or chosen
        chosen = [next((m for m in serving if m.name == preferred), serving[0])]
    return chosen


def effective_limits(model: Model, target: Target) -> dict[str, Any]:
    """The model's vision limits: the catalog's, overridden by the target profile's `limits`."""
    return {**model.vision, **target.limits.get(model.name, {})}


def expand(cases: Sequence[AnyCase], target: Target) -> list[CaseItem[AnyCase]]:
    media.use_target(target)
    items: list[CaseItem[AnyCase]] = []
    for case in cases:
        if case.models.none:
            # a case naming no catalog model may name the (unknown) model its route path carries
            items.append(CaseItem(case, None, case.request.model if isinstance(case, Case) else None))
            continue
        for model in select_models(case, target):
            served = target.served_name(model.name, case.route_surface)
            items.append(CaseItem(case, model, served, effective_limits(model, target)))
    return items


def unclaimed_features(case: CaseBase, target: Target) -> list[str]:
    missing = [f for f in case.features if not target.claims(f)]
    return missing + [f"media URL ({why})" for why in media.unreachable(case.media_references, target)]
