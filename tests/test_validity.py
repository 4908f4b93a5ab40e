"""The compiled validity predicate (conformance/validity.py) gives jsonschema's yes and no: on each keyword's edge
cases, and on every instance the suite validates while judging real answers (plain and under the deviations
that break a schema) and on mutations of each. schemas.validate trusts its yes without asking jsonschema, so a
yes where jsonschema says no would be a missed schema failure."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import threading
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conformance import schemas, validity
from conformance.cases import CaseItem
from conformance.gateway.behaviours import is_client_case, switches

# (schema, instances): every instance is judged by both, and they must agree
KEYWORDS: list[tuple[Any, list[Any]]] = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, False, "1", None, -3, 10**30, 1e300]),
    ({"type": "number"}, [1, 1.5, True, "1", None, float("inf")]),
    ({"type": ["string", "null"]}, ["", None, 0, False, []]),
    ({"type": "boolean"}, [True, False, 0, 1, None]),
    ({"type": "object"}, [{}, [], "x", None]),
    ({"type": "array"}, [[], {}, "x"]),
    ({"const": 1}, [1, 1.0, True, "1", [1]]),
    ({"const": False}, [False, 0, 0.0, None, ""]),
    ({"const": [1, {"a": True}]}, [[1, {"a": True}], [True, {"a": True}], [1, {"a": 1}], [1.0, {"a": True}],
                                    [1, {"a": True, "b": 1}], [1]]),
    ({"const": {"a": [0]}}, [{"a": [0]}, {"a": [False]}, {"a": [0.0]}, {"a": []}, {"a": [0], "b": 0}]),
    ({"enum": ["a", "b"]}, ["a", "c", 1, None, ["a"], {"a": 1}]),
    ({"enum": [1, None, True, [0]]}, [1, 1.0, True, None, False, 0, [0], [False], "1"]),
    ({"minLength": 2}, ["ab", "a", "é", "éé", "", 5, None]),
    ({"maxLength": 1}, ["a", "ab", "😀", 12]),
    ({"pattern": "^a+$"}, ["aaa", "ab", "", 5]),
    ({"pattern": "b"}, ["abc", "a"]),  # a search, not a match
    ({"minimum": 0, "maximum": 2}, [0, 2, 2.0, -1, 3, True, "1", None]),
    ({"exclusiveMinimum": 0}, [0, 0.1, -1]),
    ({"required": ["a"], "properties": {"a": {"type": "string"}}},
     [{"a": "x"}, {"a": 1}, {}, {"b": 1}, [], "x"]),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False},
     [{"a": "x"}, {"a": "x", "b": 1}, {}]),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
     [{"a": "x", "b": 1}, {"b": "y"}, {"b": 2.0}]),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, [{"ab": 1}, {"aB": 1}, {}, ["aB"]]),
    ({"minProperties": 1}, [{}, {"a": 1}, []]),
    ({"items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [[1], [], [1, 2, 3], [1, "x"], {"0": 1}]),
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, [1, 3, 1.5, "x"]),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, [1, "x", None]),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, [1, 3, 2.5]),
    ({"not": {"type": "null"}}, [None, 0]),
    ({"if": {"properties": {"t": {"const": "a"}}}, "then": {"required": ["x"]}, "else": {"required": ["y"]}},
     [{"t": "a", "x": 1}, {"t": "a", "y": 1}, {"t": "b", "y": 1}, {"t": "b", "x": 1}, {"x": 1}, 5]),
    ({"then": {"required": ["x"]}}, [{}]),  # `then` without `if` asserts nothing
    ({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}},
                         "additionalProperties": False}}, "$ref": "#/$defs/node"},
     [{}, {"next": {"next": {}}}, {"next": {"next": {"other": 1}}}, {"next": 1}]),
    (True, [1, None]),
    (False, [1, None]),
    ({"properties": {"a": False}}, [{}, {"a": 1}]),
]


@pytest.mark.parametrize(("schema", "instances"), KEYWORDS, ids=[json.dumps(s)[:60] for s, _ in KEYWORDS])
def test_each_keyword_means_what_jsonschema_means(schema: Any, instances: list[Any]) -> None:
    predicate = validity.Compiler({"t": schema}).predicate("t")
    reference = Draft202012Validator(schema)
    wrong = [i for i in instances if predicate(i) != reference.is_valid(i)]
    assert wrong == []


@pytest.mark.parametrize("schema", [{"format": "date"}, {"prefixItems": [{}]}, {"unevaluatedProperties": False},
                                    {"properties": {"a": {"dependentRequired": {}}}}, {"items": [{}]},
                                    {"$ref": "https://example.com/x"}, {"$ref": "#/nowhere"}])
def test_a_keyword_it_does_not_implement_leaves_the_schema_to_jsonschema(schema: Any) -> None:
    with pytest.raises(validity.Unsupported):
        validity.Compiler({"t": schema}).predicate("t")


def test_every_schema_of_the_suite_is_compiled() -> None:
    """None falls back: otherwise the speed is lost silently, for that schema."""
    assert [name for name in schemas.schema_names() if schemas._predicate(name) is None] == []


def _mutations(instance: Any, rng: random.Random, count: int) -> list[Any]:
    """`count` copies of the instance, each changed in one place: a value of another type, a key dropped or
    added, an array emptied or grown."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node[:4]):
                walk(value, (*path, index))

    walk(instance, ())
    out = []
    for _ in range(count):
        copied = copy.deepcopy(instance)
        path = rng.choice(paths)
        parent, last = None, None
        node = copied
        for part in path:
            parent, last, node = node, part, node[part]
        change = rng.choice(["value", "value", "drop", "add", "empty", "grow"])
        replacement = rng.choice([None, True, False, 0, 1, 1.0, 1.5, -1, "", "x", "end_turn", [], {}])
        if change == "drop" and isinstance(parent, dict):
            del parent[last]
        elif change == "add" and isinstance(node, dict):
            node[rng.choice(["extra", "type", "index", "text", "id"])] = replacement
        elif change == "empty" and isinstance(node, (list, dict)):
            node.clear()
        elif change == "grow" and isinstance(node, list) and node:
            node.append(copy.deepcopy(node[0]))
        elif parent is not None:
            parent[last] = replacement
        else:
            copied = replacement
        out.append(copied)
    return out


def test_the_predicate_agrees_with_jsonschema_on_real_answers_and_their_mutations(harness: Any,
                                                                                 monkeypatch: Any) -> None:
    """Every instance validated while judging one item of each HTTP case, plain and under each deviation that
    breaks a schema (on up to 8 of the items it applies to), and 4 mutations of each: thousands of instances of
    every answer schema, valid and broken in every place."""
    seen: dict[tuple[str, str], tuple[str, Any]] = {}
    compiled = schemas._predicate

    def recording(name: str) -> validity.Predicate | None:
        predicate = compiled(name)

        def record(instance: Any) -> bool:
            seen.setdefault((name, json.dumps(instance, sort_keys=True, default=str)), (name, copy.deepcopy(instance)))
            return predicate(instance) if predicate is not None else False

        return record

    harness.baseline()  # what each item consulted
    monkeypatch.setattr(schemas, "_predicate", recording)
    first: dict[str, CaseItem] = {}
    for item in harness.items:
        if isinstance(item, CaseItem) and not is_client_case(item.case):
            first.setdefault(item.case.id, item)
    for item in first.values():
        harness.perform(item)
    names = set(schemas.schema_names())
    breaking = [s for s in switches().values() if not s.conformant and any(rule in names for rule, _ in s.breaks)]
    assert len(breaking) >= 10
    try:
        for switch in breaking:
            harness.set_switches([switch.name])
            applied = [i for i in harness.items if switch.name in harness.consulted[i.test_id]]
            for item in [i for i in applied if isinstance(i, CaseItem) and not is_client_case(i.case)][:8]:
                harness.perform(item)
    finally:
        harness.set_switches([])
    monkeypatch.setattr(schemas, "_predicate", compiled)

    rng = random.Random(7)
    judged = {True: 0, False: 0}
    disagreements = []
    for name, instance in seen.values():
        predicate = compiled(name)
        assert predicate is not None
        for candidate in [instance, *_mutations(instance, rng, 4)]:
            truth = schemas._validator(name).is_valid(candidate)
            judged[truth] += 1
            if predicate(candidate) != truth:
                disagreements.append(f"{name}: {json.dumps(candidate, default=str)[:300]} jsonschema {truth}")
    assert disagreements == []
    # not vacuous: most answer schemas were met, with valid and invalid instances of each kind
    met = {name for name, _ in seen.values()}
    assert len(met) >= 12, sorted(met)
    assert judged[True] > 1000 and judged[False] > 1000, judged


def _compile_side_by_side(compiler: validity.Compiler) -> list[str]:
    """Every schema's predicate asked for by 16 threads at once, each using it at once on a valid instance of
    the target-profile schema and an empty object: what went wrong in any thread."""
    barrier = threading.Barrier(16)
    problems: list[str] = []
    instance = {"name": "t", "url": "http://127.0.0.1:1", "token_env": "T", "models": {"a": "a"}}

    def ask() -> None:
        barrier.wait()
        try:
            for name in [*schemas.schema_names(), "target-profile"]:
                compiler.predicate(name)({} if name != "target-profile" else instance)
        except Exception as exc:  # any exception is the finding
            problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


def test_threads_asking_for_predicates_at_once_get_finished_ones() -> None:
    """A run's request threads validate from the first answer on: a predicate still being compiled (its `$ref`
    a placeholder) must never be handed to another thread. Without the compiler's lock this fails (shown below:
    the same threads on a compiler whose lock does nothing raise, in some of 20 tries)."""
    for _ in range(20):
        assert _compile_side_by_side(validity.Compiler(schemas._registry()[1])) == []


def test_without_the_lock_the_threads_meet_unfinished_predicates() -> None:
    """The proof that the test above can fail: the same threads, the lock made a no-op."""
    found = []
    for _ in range(20):
        compiler = validity.Compiler(schemas._registry()[1])
        compiler._lock = contextlib.nullcontext()  # type: ignore[assignment]
        found += _compile_side_by_side(compiler)
        if found:
            break
    assert found, "16 threads never met an unfinished predicate in 20 tries"
