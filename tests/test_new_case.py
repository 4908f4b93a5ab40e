"""A documented example becomes a case by adding one record, and nothing else: copies of existing records under new
ids, added to a copy of their case files, are loaded, run against the reference gateway and judged under every
switch, and each copy gives what the deviation matrix derives for it (behaviours.Switch.expected), which is what
its original gives. No other file (behaviours.yaml, a Python module, a list of ids) is edited; the copies only
have no baseline shape yet, which a run reports as `no-baseline`, never as a failure."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from conformance import cases as case_data
from conformance.clientcases import CLIENT_CASES_DIR, load_client_cases
from conformance.gateway.behaviours import is_client_case, switches
from conformance.resources import CASES_DIR
from conformance.yamlio import load_yaml

# one of each kind: the example (on every chat model), a reasoning stream, a refusal, a native API's stream,
# embeddings, an auth refusal, an official client's example
COPIED = ("chat-system-and-user", "chat-stream-reasoning-effort-high", "vision-animated-gif-rejected",
          "gemini-stream-truncated", "embeddings-list-input", "auth-wrong-token-chat",
          "client-openai-chat-system-and-user")
SUFFIX = "-contributed"


def add_copies(source: Path, target: Path, ids: tuple[str, ...]) -> set[str]:
    """Copy the case directory; append to each copied file a copy of every record of `ids` it holds, with a new
    id: the contributor's one edit. Returns the ids copied."""
    shutil.copytree(source, target)
    copied = set()
    for path in sorted(target.glob("*.yaml")):
        data = load_yaml(path)
        records = [r for r in data["cases"] if isinstance(r, dict) and r.get("id") in ids]
        if not records:
            continue
        for record in records:
            twin = copy.deepcopy(record)
            twin["id"] = record["id"] + SUFFIX
            data["cases"].append(twin)
            copied.add(record["id"])
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copied


@pytest.fixture(scope="module")
def contributed(harness, tmp_path_factory):
    """(copy items, their originals by test id) from the copied case directories."""
    root = tmp_path_factory.mktemp("contributed")
    copied = add_copies(CASES_DIR, root / "cases", COPIED) | add_copies(CLIENT_CASES_DIR, root / "client", COPIED)
    assert copied == set(COPIED)
    loaded = [*case_data.expand(case_data.load_cases(root / "cases"), harness.target),
              *case_data.expand(load_client_cases(root / "client"), harness.target)]
    copies = [item for item in loaded if item.case.id.endswith(SUFFIX)]
    originals = {item.test_id: harness.by_id[item.test_id.replace(SUFFIX, "", 1)] for item in copies}
    assert {item.case.id for item in copies} == {c + SUFFIX for c in COPIED}
    return copies, originals


def test_a_copied_case_runs_and_passes_on_the_reference_gateway(harness, contributed):
    copies, _ = contributed
    baseline = harness.baseline(copies)
    assert {test: v.outcome for test, v in baseline.items()} == dict.fromkeys(baseline, "passed")
    http = {test for test, item in zip(baseline, copies, strict=True) if not is_client_case(item.case)}
    assert {baseline[test].snapshot for test in http} == {"no-baseline"}  # a run says so; it fails nothing


@pytest.mark.parametrize("switch", list(switches().values()), ids=lambda s: s.name)
def test_every_switch_gives_a_copy_what_it_gives_the_original(harness, contributed, switch):
    copies, originals = contributed
    judged = harness.judge(switch, items=copies)
    for item in copies:
        original = originals[item.test_id]
        wanted = switch.expected(item, item.test_id in judged.applied)
        assert judged.verdicts[item.test_id].outcome == wanted, (item.test_id, judged.verdicts[item.test_id].text())
        assert wanted == switch.expected(original, switch.name in harness.applied(original.test_id)), item.test_id
