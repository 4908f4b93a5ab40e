"""Official-client cases (conformance/client_cases/*.yaml): loading and judging a client's typed result."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from conformance.cases import Case, CaseItem
from conformance.clients import read_path
from conformance.config import features
from conformance.errors import BadInput
from conformance.resources import PACKAGE_DIR
from conformance.schemas import validate
from conformance.yamlio import load_yaml

CLIENT_CASES_DIR = PACKAGE_DIR / "client_cases"


@cache
def load_client_cases(directory: Path = CLIENT_CASES_DIR) -> tuple[Case, ...]:
    cases: list[Case] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        data = load_yaml(path)
        errors = validate("client-case-file", data)
        if errors:
            raise BadInput(f"client case file {path.name} is invalid: {errors[0]}")
        for raw in data["cases"]:
            if raw["id"] in seen:
                raise BadInput(f"{path.name}: duplicate client case id {raw['id']}")
            seen.add(raw["id"])
            for feature in raw["features"]:
                if feature not in features():
                    raise BadInput(f"{path.name}: case {raw['id']}: unknown feature {feature!r}")
            cases.append(Case(raw=raw, source=path.name))
    return tuple(cases)


def _empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def judge(item: CaseItem, result: Any) -> list[str]:
    """Failures of a client result: every field the example reads must be present and non-empty."""
    spec = item.case.client
    who = f"{spec['name']} {spec.get('call', 'POST ' + spec['route'])}"
    failures = []
    if spec.get("schema"):
        failures += [f"[{who}] [schema {spec['schema']}] {e}" for e in validate(spec["schema"], result)]
    if spec.get("iterate"):
        items = result if isinstance(result, list) else []
        values = []
        for element in items:
            try:
                value = read_path(element, spec["iterate"])
            except (AttributeError, IndexError, KeyError, TypeError):
                continue  # e.g. a usage-only chunk with no choices
            if isinstance(value, str):
                values.append(value)
        if not items:
            failures.append(f"[{who}] iterating the stream gave no items")
        elif not "".join(values).strip():
            failures.append(f"[{who}] no item of the stream had text at {spec['iterate']}")
    for path in spec.get("read", []):
        try:
            value = read_path(result, path)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            failures.append(f"[{who}] reading {path} raised {type(exc).__name__}: {exc}")
            continue
        if _empty(value):
            failures.append(f"[{who}] {path} is empty ({value!r})")
    return failures
