"""Whether an instance is valid under one of the suite's schemas, without jsonschema: a predicate compiled once per
schema from the keywords the schemas use.

Why: validating answers is the largest single cost of judging them (jsonschema evolves a validator and resolves
each `$ref` through `referencing` on every descent), and almost every instance a run validates is valid. So
schemas.validate asks this predicate first; only an instance it finds invalid is validated by jsonschema, which
gives the messages. A verdict therefore never rests on this module's wording, only on its yes: a `True` must mean
jsonschema finds no error. It is kept to Draft 2020-12's meaning of each keyword as jsonschema implements it
(bool is neither integer nor number, 1.0 is an integer, `const` and `enum` tell true from 1), and a schema with a
keyword this module does not know is not compiled at all (`Unsupported`): it is always validated by jsonschema.
tests/test_validity.py compares the two on every schema with valid and broken instances.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]

# keywords that assert nothing (annotations, and `$defs`, which is only reached through `$ref`)
ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default",
                         "deprecated", "readOnly", "writeOnly"})
OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties", "minProperties", "maxProperties",
                             "propertyNames"})
ARRAY_KEYWORDS = frozenset({"items", "minItems", "maxItems"})
STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern"})
NUMBER_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
OTHER_KEYWORDS = frozenset({"type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"})
KNOWN = ANNOTATIONS | OBJECT_KEYWORDS | ARRAY_KEYWORDS | STRING_KEYWORDS | NUMBER_KEYWORDS | OTHER_KEYWORDS


class Unsupported(Exception):
    """The schema uses a keyword (or a form of one) this module does not implement: use jsonschema alone."""


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


TYPES: dict[str, Predicate] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema's `const` and `enum` see it: true is not 1, 1 is 1.0, and so inside arrays and
    objects."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(key in two and equal(value, two[key]) for key, value in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    return bool(one == two)


def _length_within(low: int | None, high: int | None) -> Callable[[int], bool]:
    """minLength/maxLength, minItems/maxItems, minProperties/maxProperties: a length between the two, if given."""
    if low is None and high is None:
        return _always
    return lambda n: (low is None or n >= low) and (high is None or n <= high)


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _all(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]

    def every(x: Any) -> bool:
        for predicate in predicates:  # noqa: SIM110 - a loop is quicker than all() over a generator, and hot
            if not predicate(x):
                return False
        return True

    return every


class Compiler:
    """Compiles the schemas of one registry (`$id` -> schema) into predicates; `$ref`s are resolved by resource
    name and JSON pointer, and compiled once each (a recursive schema refers to its own predicate)."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self._refs: dict[tuple[str, str], Predicate] = {}
        # one compilation at a time: while a `$ref` is compiled its entry is a placeholder that must not be called
        # (the request threads of a run validate side by side from the first answer on)
        self._lock = threading.Lock()

    def predicate(self, name: str) -> Predicate:
        """The predicate of a schema by its `$id`, or of a part of one: `case-file#/$defs/case`."""
        resource, _, pointer = name.partition("#")
        with self._lock:
            known = set(self._refs)
            try:
                return self._ref(resource, pointer)
            except Unsupported:
                # what was compiled in this attempt may refer to a part that failed: forget it, and only it (a
                # predicate compiled before may be looking its `$ref`s up in this dict at this moment)
                for key in set(self._refs) - known:
                    del self._refs[key]
                raise

    def _ref(self, resource: str, pointer: str) -> Predicate:
        key = (resource, pointer)
        if key not in self._refs:
            cell: list[Predicate] = []
            self._refs[key] = lambda x: cell[0](x)  # refers to itself while it is compiled (recursion)
            try:
                target = self._resolve(resource, pointer)
                cell.append(self.compile(target, resource))
            except BaseException:
                del self._refs[key]
                raise
            self._refs[key] = cell[0]
        return self._refs[key]

    def _resolve(self, resource: str, pointer: str) -> Any:
        if resource not in self.schemas:
            raise Unsupported(f"no schema named {resource!r}")
        node = self.schemas[resource]
        if pointer in ("", "/"):
            return node
        if not pointer.startswith("/") or "%" in pointer:
            raise Unsupported(f"pointer {pointer!r}")
        for part in pointer[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise Unsupported(f"pointer {pointer!r} leads nowhere")
        return node

    def compile(self, schema: Any, base: str) -> Predicate:
        """A schema's predicate; `base` is the resource its relative `$ref`s resolve in."""
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        unknown = set(schema) - KNOWN
        if unknown:
            raise Unsupported(f"keywords {sorted(unknown)}")
        if "$id" in schema and schema["$id"] != base:
            raise Unsupported("an embedded resource ($id inside a schema)")
        present = set(schema)
        return _all([build(self, schema, base) for keywords, build in BUILDERS if keywords & present])

    def _const(self, schema: dict[str, Any], base: str) -> Predicate:
        const = schema["const"]
        return lambda x: equal(x, const)

    def _reference(self, schema: dict[str, Any], base: str) -> Predicate:
        ref = schema["$ref"]
        if not isinstance(ref, str):
            raise Unsupported("$ref")
        resource, _, pointer = ref.partition("#")
        if ":" in resource or "/" in resource:
            raise Unsupported(f"$ref {ref!r}")
        return self._lazy(resource or base, pointer)

    def _not(self, schema: dict[str, Any], base: str) -> Predicate:
        negated = self.compile(schema["not"], base)
        return lambda x: not negated(x)

    def _lazy(self, resource: str, pointer: str) -> Predicate:
        """A `$ref`, compiled now (its errors are this schema's) and looked up at each call: a recursive reference
        is still being compiled when it is met."""
        self._ref(resource, pointer)
        refs, key = self._refs, (resource, pointer)
        return lambda x: refs[key](x)

    def _type(self, schema: dict[str, Any], base: str) -> Predicate:
        spec = schema["type"]
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list) or not all(isinstance(n, str) and n in TYPES for n in names):
            raise Unsupported(f"type {spec!r}")
        checks = [TYPES[n] for n in names]
        if len(checks) == 1:
            return checks[0]
        return lambda x: any(check(x) for check in checks)

    def _enum(self, schema: dict[str, Any], base: str) -> Predicate:
        values = schema["enum"]
        if not isinstance(values, list):
            raise Unsupported("enum")
        if all(isinstance(v, str) for v in values):
            strings = frozenset(values)
            return lambda x: isinstance(x, str) and x in strings  # a string equals only a string
        return lambda x: any(equal(x, v) for v in values)

    def _object(self, schema: dict[str, Any], base: str) -> Predicate:
        checks = [self._properties(schema, base)]
        additional = schema.get("additionalProperties", True)
        if additional is not True:
            extra = self.compile(additional, base)
            known = frozenset(schema.get("properties", {}))
            checks.append(lambda x: all(extra(v) for k, v in x.items() if k not in known))
        if "propertyNames" in schema:
            names = self.compile(schema["propertyNames"], base)
            checks.append(lambda x: all(names(k) for k in x))
        if "minProperties" in schema or "maxProperties" in schema:
            within = _length_within(schema.get("minProperties"), schema.get("maxProperties"))
            checks.append(lambda x: within(len(x)))
        every = _all(checks)
        return lambda x: not isinstance(x, dict) or every(x)

    def _properties(self, schema: dict[str, Any], base: str) -> Predicate:
        """`properties` and `required`, of an object."""
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise Unsupported("properties or required")
        compiled = [(key, self.compile(sub, base)) for key, sub in properties.items()]

        def check(x: dict[str, Any]) -> bool:
            for key in required:
                if key not in x:
                    return False
            for key, predicate in compiled:  # noqa: SIM110 - as in _all: a loop is quicker
                if key in x and not predicate(x[key]):
                    return False
            return True

        return check

    def _array(self, schema: dict[str, Any], base: str) -> Predicate:
        items = schema.get("items", True)
        if isinstance(items, list):
            raise Unsupported("items as a list")
        element = None if items is True else self.compile(items, base)
        within = _length_within(schema.get("minItems"), schema.get("maxItems"))

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            if not within(len(x)):
                return False
            if element is not None:
                for value in x:
                    if not element(value):
                        return False
            return True

        return check

    def _string(self, schema: dict[str, Any], base: str) -> Predicate:
        within = _length_within(schema.get("minLength"), schema.get("maxLength"))
        pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

        def check(x: Any) -> bool:
            if not isinstance(x, str):
                return True
            return within(len(x)) and (pattern is None or pattern.search(x) is not None)

        return check

    def _number(self, schema: dict[str, Any], base: str) -> Predicate:
        bounds = [(schema.get(k), op) for k, op in (
            ("minimum", lambda x, b: x >= b), ("maximum", lambda x, b: x <= b),
            ("exclusiveMinimum", lambda x, b: x > b), ("exclusiveMaximum", lambda x, b: x < b))]
        if not all(b is None or _is_number(b) for b, _ in bounds):
            raise Unsupported("a bound that is not a number")
        active = [(b, op) for b, op in bounds if b is not None]

        def check(x: Any) -> bool:
            if not _is_number(x):
                return True
            return all(op(x, b) for b, op in active)

        return check

    def _subschemas(self, schema: dict[str, Any], keyword: str, base: str) -> list[Predicate]:
        subschemas = schema[keyword]
        if not isinstance(subschemas, list) or not subschemas:
            raise Unsupported(keyword)
        return [self.compile(sub, base) for sub in subschemas]

    def _all_of(self, schema: dict[str, Any], base: str) -> Predicate:
        return _all(self._subschemas(schema, "allOf", base))

    def _any_of(self, schema: dict[str, Any], base: str) -> Predicate:
        compiled = self._subschemas(schema, "anyOf", base)
        return lambda x: any(p(x) for p in compiled)

    def _one_of(self, schema: dict[str, Any], base: str) -> Predicate:
        compiled = self._subschemas(schema, "oneOf", base)
        return lambda x: sum(1 for p in compiled if p(x)) == 1

    def _conditional(self, schema: dict[str, Any], base: str) -> Predicate:
        condition = self.compile(schema["if"], base)
        then = self.compile(schema.get("then", True), base)
        otherwise = self.compile(schema.get("else", True), base)
        return lambda x: then(x) if condition(x) else otherwise(x)


# which keywords each part of a compiled schema implements (Compiler.compile builds the parts a schema has)
BUILDERS: list[tuple[frozenset[str], Callable[[Compiler, dict[str, Any], str], Predicate]]] = [
    (frozenset({"type"}), Compiler._type),
    (frozenset({"const"}), Compiler._const),
    (frozenset({"enum"}), Compiler._enum),
    (frozenset({"$ref"}), Compiler._reference),
    (OBJECT_KEYWORDS, Compiler._object),
    (ARRAY_KEYWORDS, Compiler._array),
    (STRING_KEYWORDS, Compiler._string),
    (NUMBER_KEYWORDS, Compiler._number),
    (frozenset({"allOf"}), Compiler._all_of),
    (frozenset({"anyOf"}), Compiler._any_of),
    (frozenset({"oneOf"}), Compiler._one_of),
    (frozenset({"not"}), Compiler._not),
    (frozenset({"if"}), Compiler._conditional),
]
