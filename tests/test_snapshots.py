"""Shape snapshots: text changes are no drift; new, retyped or reordered fields are, with a readable diff."""

from __future__ import annotations

import json

from conformance.client import Exchange
from conformance.gateway.behaviours import conformant_switches, drift_switches
from conformance.snapshots import diff_shapes, normalise, shape_of


def _exchange(text: str, stream: bool = False) -> Exchange:
    ctype = "text/event-stream" if stream else "application/json"
    return Exchange("POST", "http://x", {}, None, None, 200, {"content-type": ctype}, text, stream)


def test_text_ids_counts_are_masked_and_stream_deltas_collapse():
    a = {"id": "a1", "object": "chat.completion", "created": 1, "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "short"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    b = json.loads(json.dumps(a).replace("short", "a much longer answer").replace('"a1"', '"zz9"'))
    b["usage"]["completion_tokens"] = 40
    assert shape_of(a) == shape_of(b)

    def sse(words):
        chunks = [{"object": "chat.completion.chunk", "choices": [{"delta": {"role": "assistant", "content": ""}}]}]
        chunks += [{"object": "chat.completion.chunk", "choices": [{"delta": {"content": w}}]} for w in words]
        return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"

    short, long = normalise(_exchange(sse(["a"] * 3), True)), normalise(_exchange(sse(["b"] * 30), True))
    assert short == long and len(short["events"]) == 3 and short["events"][-1] == "[DONE]"


def test_diff_names_each_kind_of_drift():
    old = shape_of({"object": "response", "status": "completed", "n": 1,
                    "output": [{"type": "reasoning", "id": "r"}, {"type": "message", "id": "m"}]})
    new = shape_of({"object": "response.v2", "extra": True, "n": "1",
                    "output": [{"type": "message", "id": "m"}, {"type": "reasoning", "id": "r"}]})
    lines = diff_shapes(old, new)
    assert "$.extra: field added (boolean)" in lines
    assert any(line.startswith("$.status: field removed") for line in lines)
    assert "$.n: type changed: integer -> string" in lines
    assert '$.object: enum value changed: "response" -> "response.v2"' in lines
    assert "$.output: block order changed: [reasoning, message] -> [message, reasoning]" in lines


def test_enumerated_values_that_follow_the_answer_length_are_one_class():
    assert shape_of({"finish_reason": "stop"}) == shape_of({"finish_reason": "length"})
    assert diff_shapes(shape_of({"finish_reason": "stop"}), shape_of({"finish_reason": None}))


def _drifted(result):
    return {(f"{c['id']}@{c['model']}" if c["model"] else c["id"]) for c in result.summary["cases"]
            if c.get("snapshot", {}).get("status") == "drift"}


def test_shape_changing_switch_shows_as_drift_not_failure(run_cli, harness):
    # a real run's console, summary and exit status on a few plain chat answers (every answer's drift under every
    # drift switch is proven in tests/test_deviations.py, through the same comparison)
    switch = next(s for s in drift_switches() if s.name == "drift-new-field")
    result = run_cli("run", "--deviation", switch.name, "-k",
                     "(chat-system-and-user or auth-bearer-chat or auth-basic-chat) and claude", "--html", "none")
    expected = {t for t in result.outcomes()
                if switch.expects_drift(harness.by_id[t], switch.name in harness.applied(t))}
    assert expected, f"{switch.name}: no case that ran is expected to drift"
    assert _drifted(result) == expected
    assert result.with_outcome("passed") == set(result.outcomes())
    assert result.summary["totals"]["drift"] == len(expected)
    assert "shape drift in" in result.out
    case = next(c for c in result.summary["cases"] if c.get("snapshot", {}).get("status") == "drift")
    assert all(line.startswith("$.body") for line in case["snapshot"]["drift"])
    assert result.code == 0
    assert run_cli("run", "--deviation", switch.name, "-k", "chat-system", "--html", "none",
                   "--fail-on-drift").code == 1


def test_text_only_change_is_no_drift(harness):
    judged = harness.judge(next(s for s in conformant_switches() if s.name == "other-text"), shapes=True)
    assert judged.performed > 300, "other-text changes the text of most answers"
    statuses = {test: v.snapshot for test, v in judged.verdicts.items() if v.snapshot is not None}
    assert set(statuses.values()) == {"match"}, [(t, judged.verdicts[t].drift) for t, st in statuses.items()
                                                 if st != "match"][:3]
    assert judged.with_outcome("passed") == set(judged.verdicts)


def test_no_baseline_skips_the_snapshot_check_with_the_reason(run_cli, tmp_path):
    result = run_cli("run", "-k", "chat-system", "--snapshots", str(tmp_path / "none"), "--html", "none")
    assert result.code == 0
    snaps = [c["snapshot"] for c in result.summary["cases"] if "snapshot" in c]
    assert {s["status"] for s in snaps} == {"no-baseline"}
    assert "--snapshot-update" in snaps[0]["reason"]
    assert result.with_outcome("passed") == set(result.outcomes())


def test_snapshot_update_under_xdist_then_compare(run_cli, tmp_path):
    # recorded by two xdist workers at once; read back by one process (comparing under xdist, on every answer,
    # is the end-to-end run's: tests/test_reference_run.py)
    root = tmp_path / "snaps"
    select = ["-m", "chat_completions or auth", "-k", "not vision and not reasoning and not client"]
    recorded = run_cli("run", "-n", "2", "--snapshot-update", "--snapshots", str(root), *select, lean=True)
    assert recorded.code == 0
    files = sorted(p.name for p in (root / "reference").glob("*.json"))
    assert files == ["auth.json", "chat_completions.json"]
    stored = {}
    for name in files:
        stored.update(json.loads((root / "reference" / name).read_text()))
    snapshotted = {(f"{c['id']}@{c['model']}" if c["model"] else c["id"]) for c in recorded.summary["cases"]
                   if "snapshot" in c}
    assert len(snapshotted) > 20 and set(stored) == {f"test_case[{t}]" for t in snapshotted}
    compared = run_cli("run", "--snapshots", str(root), *select, lean=True)
    statuses = {(f"{c['id']}@{c['model']}" if c["model"] else c["id"]): c["snapshot"]["status"]
                for c in compared.summary["cases"] if "snapshot" in c}
    assert statuses == dict.fromkeys(snapshotted, "match")
