"""Compact case files expand to exactly the records they stand for.

tests/data/expanded_cases.json is the record of every case as the loader sees it after expansion (defaults, check
sets, tables): each record in file order, and per (case, model) item on the reference gateway the images its
`$image` placeholders make (their numbers evaluated on that model's limits, so "a fraction of the limit" and the
arithmetic it replaced are compared by what they send). It was written from the case files as they were before
they were compacted; a record that differs from it changed what a case sends or expects.

A new case is not in the record and needs nothing here. A deliberate change to an existing case is re-recorded:
`CONFORMANCE_UPDATE_CASE_RECORDS=1 .venv/bin/pytest tests/test_case_files.py` (and the diff reviewed).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from conformance import casefile
from conformance.cases import expand, load_cases
from conformance.clientcases import CLIENT_CASES_DIR, load_client_cases
from conformance.config import TargetOptions, resolve_target
from conformance.errors import BadInput
from conformance.placeholders import image_plan
from conformance.resources import CASES_DIR
from conformance.yamlio import load_yaml

RECORD = Path(__file__).parent / "data" / "expanded_cases.json"
UPDATE_ENV = "CONFORMANCE_UPDATE_CASE_RECORDS"
IMAGE = "(per model: see items)"


def _records(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        for record in casefile.expand(load_yaml(path), path.name):
            out.append({"_source": path.name, **_without_images(record)})
    return out


def _without_images(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$image"}:
            return {"$image": IMAGE}
        return {k: _without_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_images(v) for v in value]
    return value


def _images(value: Any, limits: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        if set(value) == {"$image"}:
            return [asdict(image_plan(value["$image"], limits))]
        return [p for v in value.values() for p in _images(v, limits)]
    if isinstance(value, list):
        return [p for v in value for p in _images(v, limits)]
    return []


def expansion() -> dict[str, Any]:
    """What the case files say, fully expanded: records, and the items the reference gateway's target gets."""
    target = resolve_target(TargetOptions(), {})
    items: dict[str, Any] = {}
    for item in [*expand(load_cases(), target), *expand(load_client_cases(), target)]:
        images = [_images(step.request.body, item.limits) for step in getattr(item.case, "steps", ())]
        items[item.test_id] = images if any(images) else None
    return {"cases": _records(CASES_DIR), "client_cases": _records(CLIENT_CASES_DIR), "items": items}


def _first_difference(recorded: Any, now: Any, path: str = "") -> str:
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in [*recorded, *(k for k in now if k not in recorded)]:
            if key not in now:
                return f"{path}.{key}: recorded {recorded[key]!r}, now absent"
            if key not in recorded:
                return f"{path}.{key}: now {now[key]!r}, not recorded"
            if recorded[key] != now[key]:
                return _first_difference(recorded[key], now[key], f"{path}.{key}")
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        for index, (a, b) in enumerate(zip(recorded, now, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{index}]")
    return f"{path}: recorded {json.dumps(recorded)[:300]}, now {json.dumps(now)[:300]}"


def test_the_case_files_expand_to_the_recorded_records():
    now = expansion()
    if os.environ.get(UPDATE_ENV):
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(now, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"re-recorded {RECORD.name}")
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    problems = []
    for kind in ("cases", "client_cases"):
        by_id = {r["id"]: r for r in now[kind]}
        for record in recorded[kind]:
            if record["id"] not in by_id:
                problems.append(f"{record['id']}: recorded, no longer in the case files")
            elif by_id[record["id"]] != record:
                problems.append(f"{record['id']}: {_first_difference(record, by_id[record['id']])}")
        # the recorded cases keep their order among themselves (new ones may go anywhere)
        known = {r["id"] for r in recorded[kind]}
        order = [r["id"] for r in now[kind] if r["id"] in known]
        if not problems and order != [r["id"] for r in recorded[kind]]:
            problems.append(f"{kind}: the recorded cases come in another order")
    for test_id, images in recorded["items"].items():
        if test_id not in now["items"]:
            problems.append(f"{test_id}: a recorded (case, model) item the reference target no longer gets")
        elif now["items"][test_id] != images:
            problems.append(f"{test_id}: {_first_difference(images, now['items'][test_id])}")
    recorded_cases = {r["id"] for kind in ("cases", "client_cases") for r in recorded[kind]}
    extra = [t for t in now["items"] if t not in recorded["items"] and t.partition("@")[0] in recorded_cases]
    problems += [f"{t}: an item of a recorded case the record does not have" for t in extra]
    assert not problems, (f"{len(problems)} difference(s) from {RECORD.name} (if deliberate, re-record with "
                          f"{UPDATE_ENV}=1):\n" + "\n".join(problems[:20]))


def test_the_record_is_not_empty_and_covers_every_case_file():
    """A record of nothing would prove nothing."""
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    assert len(recorded["cases"]) > 100 and len(recorded["client_cases"]) > 10
    assert {r["_source"] for r in recorded["cases"]} == {p.name for p in CASES_DIR.glob("*.yaml")}
    assert sum(1 for images in recorded["items"].values() if images) > 20  # the vision cases' images


def test_a_changed_record_is_caught():
    """The comparison sees a change deep inside a record, and in what a size expression evaluates to."""
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    changed = copy.deepcopy(recorded["cases"][0])
    changed["expect"]["status"] = 201
    assert "expect.status" in _first_difference(recorded["cases"][0], changed)
    test_id, images = next((t, i) for t, i in recorded["items"].items() if i)
    bigger = copy.deepcopy(images)
    bigger[-1][0]["width"] += 1
    assert ".width" in _first_difference(images, bigger), test_id


# --- the expansion's own rules ------------------------------------------------------------------------------

SHARED = {"chat_answer": ["usage_total_is_sum", "assistant_role"], "with_text": ["$chat_answer", "message_text"]}


def _expand(data: dict[str, Any]) -> list[dict[str, Any]]:
    return casefile.expand(data, "t.yaml", SHARED)


def test_defaults_apply_to_every_record_unless_it_gives_its_own_value():
    records = _expand({"defaults": {"surface": "chat_completions", "expect": {"status": 200}},
                       "cases": [{"id": "a"}, {"id": "b", "expect": {"status": "4xx"}}]})
    assert records == [{"id": "a", "surface": "chat_completions", "expect": {"status": 200}},
                       {"id": "b", "surface": "chat_completions", "expect": {"status": "4xx"}}]
    records[0]["expect"]["status"] = 500  # each record has its own copy
    assert records[1]["expect"]["status"] == "4xx"


def test_check_sets_splice_in_order_in_cases_and_steps():
    records = _expand({"check_sets": {"mine": ["$with_text", "x"]},
                       "cases": [{"id": "a", "steps": [{"expect": {"checks": ["$chat_answer"]}}],
                                  "expect": {"checks": ["first", "$mine"]}}]})
    assert records[0]["expect"]["checks"] == ["first", "usage_total_is_sum", "assistant_role", "message_text", "x"]
    assert records[0]["steps"][0]["expect"]["checks"] == ["usage_total_is_sum", "assistant_role"]


@pytest.mark.parametrize(("data", "message"), [
    ({"cases": [{"id": "a", "expect": {"checks": ["$nope"]}}]}, "unknown check set '\\$nope'"),
    ({"check_sets": {"loop": ["$loop"]}, "cases": [{"id": "a", "expect": {"checks": ["$loop"]}}]}, "includes itself"),
    ({"cases": [{"id": "a", "expect": {"checks": ["$chat_answer", "assistant_role"]}}]}, "listed twice"),
    ({"check_sets": {"chat_answer": ["x"]}, "cases": []}, "already defined"),
])
def test_check_set_mistakes_are_one_line(data, message):
    with pytest.raises(BadInput, match=message):
        _expand(data)


def test_a_table_makes_one_record_per_combination_outer_axis_first():
    table = {"id": "auth-{mode}-{route}",
             "axes": {"route": [{"route": "chat", "limit": 16}, {"route": "embeddings", "limit": None}],
                      "mode": [{"mode": "bearer"}, {"mode": "basic"}]},
             "record": {"description": "{mode} on {route} for {model}", "request": {"max_tokens": "{limit}"}},
             "overrides": {"auth-basic-embeddings": {"strength": "should"}}}
    records = _expand({"defaults": {"strength": "must"}, "cases": [{"id": "first"}, {"table": table}]})
    assert [r["id"] for r in records] == ["first", "auth-bearer-chat", "auth-basic-chat", "auth-bearer-embeddings",
                                          "auth-basic-embeddings"]
    assert records[1] == {"id": "auth-bearer-chat", "strength": "must", "description": "bearer on chat for {model}",
                          "request": {"max_tokens": 16}}
    assert records[3]["request"] == {}  # a null variable leaves its key out
    assert records[4]["strength"] == "should" and records[3]["strength"] == "must"


def test_an_inner_axis_may_use_the_variables_of_the_axes_before_it():
    table = {"id": "c-{route}-{mode}",
             "axes": {"route": [{"route": "chat", "section": "Chat", "ok": {"status": 200, "schema": "chat"}}],
                      "mode": [{"mode": "bearer", "spec": {"section": "{section}"}, "expect": "{ok}"},
                               {"mode": "none", "spec": {"section": "Auth"}, "expect": {"status": "4xx"}}]},
             "record": {"spec": "{spec}", "expect": "{expect}"}}
    records = _expand({"cases": [{"table": table}]})
    assert records[0] == {"id": "c-chat-bearer", "spec": {"section": "Chat"}, "expect": {"status": 200,
                                                                                         "schema": "chat"}}
    assert records[1] == {"id": "c-chat-none", "spec": {"section": "Auth"}, "expect": {"status": "4xx"}}


@pytest.mark.parametrize(("table", "message"), [
    ({"id": "a-{x}", "rows": [{"x": 1}], "record": {"d": "{y}"}}, "\\{y\\} is not a variable"),
    ({"id": "a-{x}", "rows": [{"x": 1, "z": 2}], "record": {}}, "used nowhere"),
    ({"id": "a", "rows": [{"x": 1}, {"x": 2}], "record": {"d": "{x}"}}, "two rows give the id a"),
    ({"id": "a-{model}", "rows": [{"model": "m"}], "record": {}}, "filled in at run time"),
    ({"id": "a-{x}", "rows": [{"x": 1}], "record": {}, "overrides": {"a-2": {}}}, "overrides names a-2"),
    ({"id": "a-{x}", "rows": [{"x": {"k": 1}}], "record": {"d": "see {x}"}}, "must be a string or a number"),
    ({"id": "a-{x}", "axes": {"p": [{"x": 1}], "q": [{"x": 2}]}, "record": {}}, "given by more than one axis"),
])
def test_table_mistakes_are_one_line(table, message):
    with pytest.raises(BadInput, match=message):
        _expand({"cases": [{"table": table}]})


def test_a_compact_file_is_validated_record_by_record(tmp_path):
    """A table whose records lack a required field is named by the record's id."""
    (tmp_path / "cases.yaml").write_text(
        "cases:\n  - table:\n      id: 'x-{n}'\n      rows: [{n: a}]\n      record: {description: '{n}'}\n")
    with pytest.raises(BadInput, match=r"cases\.yaml: case x-a is invalid"):
        load_cases.__wrapped__(tmp_path)


def test_every_shared_check_set_names_registered_checks_only():
    """A set no case uses yet is still checked: a misspelt name would surface only in the first case using it."""
    from conformance.checks import CHECKS

    sets = casefile.shared_check_sets()
    for name in sets:
        for check in casefile.splice([f"${name}"], sets, "check_sets.yaml"):
            assert check in CHECKS, f"check set {name}: {check} is not a registered check"


def test_surface_and_model_type_names_come_from_one_vocabulary(tmp_path):
    """The case schema takes its names from the vocabulary (data/surfaces.yaml, MODEL_TYPES): a name outside it
    is a load error naming the case, and the summary schema allows exactly the same names."""
    from conformance import vocabulary
    from conformance.schemas import validate

    source = (CASES_DIR / "embeddings.yaml").read_text(encoding="utf-8")
    (tmp_path / "cases.yaml").write_text(source.replace("  surface: embeddings\n", "  surface: no_such_api\n", 1))
    with pytest.raises(BadInput, match="no_such_api"):
        load_cases.__wrapped__(tmp_path)
    assert set(vocabulary.case_surfaces()) >= {c.surface for c in load_cases()}
    assert "gemini_stream_generate_content" not in vocabulary.case_surfaces()  # a route, reported as gemini
    for surface in (*vocabulary.case_surfaces(), "no_such_api"):
        errors = [e for e in validate("summary#/properties/cases/items", {"surface": surface}) if "surface" in e]
        assert bool(errors) == (surface == "no_such_api"), (surface, errors)
