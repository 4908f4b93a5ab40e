"""Official-client cases (conformance/client_cases/*.yaml): loading and judging a client's typed result."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from conformance.casemodel import ClientCase
from conformance.cases import CaseItem, check_common, load_files
from conformance.clients import read_path
from conformance.resources import PACKAGE_DIR
from conformance.schemas import validate

CLIENT_CASES_DIR = PACKAGE_DIR / "client_cases"


@cache
def load_client_cases(directory: Path = CLIENT_CASES_DIR) -> tuple[ClientCase, ...]:
    return load_files(directory, "client-case-file", ClientCase.from_record, check_common, kind="client case")


def _empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def judge(item: CaseItem[ClientCase], result: Any) -> list[str]:
    """Failures of a client result: every field the example reads must be present and non-empty."""
    call = item.case.client
    who = f"{call.name} {call.call or 'POST ' + call.route}"
    failures = []
    if call.schema:
        failures += [f"[{who}] [schema {call.schema}] {e}" for e in validate(call.schema, result)]
    if call.iterate:
        items = result if isinstance(result, list) else []
        values = []
        for element in items:
            try:
                value = read_path(element, call.iterate)
            except (AttributeError, IndexError, KeyError, TypeError):
                continue  # e.g. a usage-only chunk with no choices
            if isinstance(value, str):
                values.append(value)
        if not items:
            failures.append(f"[{who}] iterating the stream gave no items")
        elif not "".join(values).strip():
            failures.append(f"[{who}] no item of the stream had text at {call.iterate}")
    for path in call.read:
        try:
            value = read_path(result, path)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            failures.append(f"[{who}] reading {path} raised {type(exc).__name__}: {exc}")
            continue
        if _empty(value):
            failures.append(f"[{who}] {path} is empty ({value!r})")
    return failures
