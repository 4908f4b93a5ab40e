"""Compact case files: what a file says once instead of in every record, expanded into plain records.

A case file (schemas/case-file.schema.json) is a list of records, `cases`, and may also give:
- `defaults`: keys every record of the file takes unless it gives its own; a record's key replaces the default's
  whole value (no deep merge: a record's `expect` is never half its own);
- `check_sets`: named lists of checks. In any `checks` list (and in a set), an item `$name` is that set's checks
  spliced in, in order. The sets every file shares are in data/check_sets.yaml; a file may add its own (not
  redefine a shared one). A check named twice after splicing is an error;
- `shared`: values defined once for YAML anchors (`&name`) that records refer to (`*name`); the loader ignores it;
- tables, as items of `cases`: `{table: {id, rows | axes, record, overrides}}` is a family of near-identical
  records made from one template, in place:
  - `rows`: a list of variable mappings, one record per row; or `axes`: named lists of variable mappings, one
    record per combination (the first axis outermost, as nested loops in the order written);
  - `id`: the records' id pattern, e.g. `auth-{mode}-{route}`;
  - `record`: the template. In its strings `{name}` is the variable's value (a string that is only `{name}`
    takes the value whatever its type, and a mapping entry whose value is that and whose variable is null is
    left out). `{model}` is not a table variable (it is the served model name, filled in at run time). The
    values of an axis may use the variables of the axes before it (an inner loop sees the outer variables);
    otherwise a variable's value is inserted as it is, never interpolated itself;
  - `overrides`: generated id -> keys that replace the generated record's (the few records of a family that
    differ), then the file's `defaults` apply as to any record.
The expansion is all the loader adds to plain YAML: expand() of a file gives the records a runner without this
module would have to write out.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from conformance.errors import BadInput
from conformance.resources import DATA_DIR
from conformance.yamlio import load_yaml

SHARED_CHECK_SETS = DATA_DIR / "check_sets.yaml"
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# filled in at run time: `{model}` the served name (placeholders.py), `{nonce}` a concurrent request's (concurrency.py)
RUN_TIME_PLACEHOLDERS = frozenset({"model", "nonce"})


@cache
def shared_check_sets(path: Path = SHARED_CHECK_SETS) -> dict[str, list[str]]:
    data = load_yaml(path)
    sets = data.get("check_sets") if isinstance(data, dict) else None
    if not isinstance(sets, dict) or not all(isinstance(v, list) for v in sets.values()):
        raise BadInput(f"{path.name}: `check_sets` must map names to lists of check names")
    return sets


def expand(data: Mapping[str, Any], where: str, check_sets: Mapping[str, list[str]] | None = None
           ) -> list[dict[str, Any]]:
    """The plain records of a (schema-valid) case file, in file order."""
    shared = shared_check_sets() if check_sets is None else check_sets
    own = data.get("check_sets") or {}
    redefined = sorted(set(own) & set(shared))
    if redefined:
        raise BadInput(f"{where}: check set(s) {redefined} are already defined in {SHARED_CHECK_SETS.name}")
    sets = {**shared, **own}
    defaults = data.get("defaults") or {}
    records = []
    for entry in data["cases"]:
        for record in (_table(entry["table"], where) if set(entry) == {"table"} else [entry]):
            merged = {**copy.deepcopy(defaults), **record}
            records.append(_with_check_sets(merged, sets, f"{where}: case {merged.get('id', '?')}"))
    return records


# --- check sets -----------------------------------------------------------------------------------------------


def splice(names: list[Any], sets: Mapping[str, list[str]], where: str, seen: tuple[str, ...] = ()) -> list[str]:
    """A checks list with every `$set` item replaced by the set's checks."""
    out: list[str] = []
    for name in names:
        if isinstance(name, str) and name.startswith("$"):
            key = name[1:]
            if key not in sets:
                raise BadInput(f"{where}: unknown check set {name!r} (known: {', '.join(sorted(sets))})")
            if key in seen:
                raise BadInput(f"{where}: check set {name!r} includes itself")
            out += splice(sets[key], sets, where, (*seen, key))
        else:
            out.append(name)
    return out


def _with_check_sets(record: dict[str, Any], sets: Mapping[str, list[str]], where: str) -> dict[str, Any]:
    for holder in [record, *(s for s in record.get("steps") or [] if isinstance(s, dict))]:
        expect = holder.get("expect")
        if isinstance(expect, dict) and isinstance(expect.get("checks"), list):
            checks = splice(expect["checks"], sets, where)
            twice = sorted({c for c in checks if checks.count(c) > 1})
            if twice:
                raise BadInput(f"{where}: check(s) {twice} listed twice (after expanding check sets)")
            holder["expect"] = {**expect, "checks": checks}
    return record


# --- tables ---------------------------------------------------------------------------------------------------


def _combinations(table: Mapping[str, Any], where: str, used: set[str]) -> list[dict[str, Any]]:
    """The variables of each record: a row, or one entry of every axis (the first axis outermost). The values of
    an axis may use the variables of the axes before it, as the body of an inner loop sees the outer ones."""
    if ("rows" in table) == ("axes" in table):
        raise BadInput(f"{where}: a table has exactly one of rows and axes")
    if "rows" in table:
        return [dict(row) for row in table["rows"]]
    out = []
    for combination in itertools.product(*table["axes"].values()):
        variables: dict[str, Any] = {}
        for entry in combination:
            clash = sorted(set(variables) & set(entry))
            if clash:
                raise BadInput(f"{where}: variable(s) {clash} given by more than one axis")
            variables.update(_fill(entry, variables, where, used, keep_null=True) if variables else entry)
        out.append(variables)
    return out


def _table(table: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    where = f"{where}: table {table['id']}"
    records: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    combinations = _combinations(table, where, used)
    for variables in combinations:
        reserved = sorted(set(variables) & RUN_TIME_PLACEHOLDERS)
        if reserved:
            raise BadInput(f"{where}: {reserved} cannot be a table variable (it is filled in at run time)")
        case_id = _fill(table["id"], variables, where, used)
        if not isinstance(case_id, str):
            raise BadInput(f"{where}: the id pattern must give a string")
        if case_id in records:
            raise BadInput(f"{where}: two rows give the id {case_id}")
        record = _fill(table["record"], variables, f"{where}: {case_id}", used)
        records[case_id] = {"id": case_id, **record}
    unused = sorted({name for variables in combinations for name in variables} - used)
    if unused:
        raise BadInput(f"{where}: variable(s) {unused} used nowhere (a misspelt name in the template?)")
    for case_id, replacement in (table.get("overrides") or {}).items():
        if case_id not in records:
            raise BadInput(f"{where}: overrides names {case_id}, which the table does not make")
        records[case_id] = {**records[case_id], **copy.deepcopy(replacement)}
    return list(records.values())


_DROP = object()  # a mapping entry whose value is a null variable: left out


def _fill(value: Any, variables: Mapping[str, Any], where: str, used: set[str], keep_null: bool = False) -> Any:
    """The template with the row's variables in (see the module docstring). `keep_null`: a null variable stays
    null (an inner axis's value, whose key the record template may still leave out)."""
    if isinstance(value, str):
        whole = _VARIABLE.fullmatch(value)
        if whole and whole.group(1) in variables:
            used.add(whole.group(1))
            found = variables[whole.group(1)]
            return (None if keep_null else _DROP) if found is None else copy.deepcopy(found)

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in RUN_TIME_PLACEHOLDERS:
                return match.group(0)
            if name not in variables:
                raise BadInput(f"{where}: {match.group(0)} is not a variable of the table "
                               f"(variables: {', '.join(sorted(variables))})")
            found = variables[name]
            if isinstance(found, bool) or not isinstance(found, str | int | float):
                raise BadInput(f"{where}: {match.group(0)} inside a longer string must be a string or a number")
            used.add(name)
            return str(found)

        return _VARIABLE.sub(one, value)
    if isinstance(value, dict):
        filled = {key: _fill(item, variables, where, used, keep_null) for key, item in value.items()}
        return {key: item for key, item in filled.items() if item is not _DROP}
    if isinstance(value, list):
        items = [_fill(item, variables, where, used, keep_null) for item in value]
        if any(item is _DROP for item in items):
            raise BadInput(f"{where}: a list item is a null variable")
        return items
    return value
