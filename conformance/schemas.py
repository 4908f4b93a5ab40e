"""JSON Schema loading and validation: the one structural validation path every surface shares."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from conformance import validity, vocabulary
from conformance.resources import schemas_dir

GENERATED = ("vocabulary",)  # schemas made in code (conformance/vocabulary.py), not answers' schemas


@cache
def _registry() -> tuple[Registry, dict[str, dict[str, Any]]]:
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(schemas_dir().glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        schemas[schema["$id"]] = schema
    schemas["vocabulary"] = vocabulary.schema()
    registry = Registry().with_resources(
        (sid, Resource.from_contents(schema)) for sid, schema in schemas.items()
    )
    return registry, schemas


def schema_names() -> list[str]:
    """The schemas a case may name (an answer's `expect.schema`, a client's output)."""
    return sorted(set(_registry()[1]) - set(GENERATED))


@cache
def _validator(name: str) -> Draft202012Validator:
    """A schema by its `$id`, or a part of one: `case-file#/$defs/case`."""
    registry, schemas = _registry()
    if name.partition("#")[0] not in schemas:
        raise KeyError(f"no schema named {name!r} in {schemas_dir()}")
    return Draft202012Validator(schemas[name] if "#" not in name else {"$ref": name}, registry=registry)


@cache
def _predicate(name: str) -> validity.Predicate | None:
    """Whether an instance is valid, without jsonschema (conformance/validity.py); None for a schema that uses a
    keyword it does not implement."""
    if name.partition("#")[0] not in _registry()[1]:
        raise KeyError(f"no schema named {name!r} in {schemas_dir()}")
    try:
        return _compiler().predicate(name)
    except validity.Unsupported:
        return None


@cache
def _compiler() -> validity.Compiler:
    return validity.Compiler(_registry()[1])


def json_path(parts: Any) -> str:
    """`$.choices[0].message` style path, the form every failure message uses."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


MEMO_MAX_CHARS = 64 << 10  # answers longer than this are validated every time (their key would cost as much)
MEMO_TOTAL_CHARS = 16 << 20  # the memo's keys at most (then it starts again): a few MB per process
_memo: dict[tuple[str, str], list[str]] = {}
_memo_chars = 0


def validate(name: str, instance: Any) -> list[str]:
    """Every violation as 'path: message', most specific first; [] when valid. A pure function of the schema and
    the instance, so it is remembered by the instance's JSON text (key order and 1 / 1.0 / true kept apart, as
    the messages tell them apart): a run validates the same chunk, error body or usage object many times.
    Most instances are valid: the compiled predicate says so first, and jsonschema only validates the others,
    for their messages (the predicate's yes must be jsonschema's, tests/test_validity.py)."""
    predicate = _predicate(name)
    if predicate is not None and predicate(instance):
        return []
    try:
        text = json.dumps(instance, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return _validate(name, instance)
    if len(text) > MEMO_MAX_CHARS:
        return _validate(name, instance)
    global _memo_chars
    key = (name, text)
    found = _memo.get(key)  # one lookup: another thread may clear the memo at any time
    if found is None:
        found = _validate(name, instance)
        if _memo_chars + len(text) > MEMO_TOTAL_CHARS:
            _memo.clear()
            _memo_chars = 0
        _memo[key] = found
        _memo_chars += len(text)
    return list(found)


def _validate(name: str, instance: Any) -> list[str]:
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message))
    out = []
    for err in errors:
        # For oneOf/anyOf, the best sub-error says more than "is not valid under any of the given schemas".
        leaf = min(err.context, key=lambda e: -len(e.absolute_path)) if err.context else err
        out.append(f"{json_path(leaf.absolute_path)}: {leaf.message[:300]}")
    return out
