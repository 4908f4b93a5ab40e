"""The background matrix (tests/background_matrix.py) only moves where the matrix is judged: what the collected
tests ask for is what it plans, a worker keeps what a background judged and performs again only what it could
not answer, and a background that ends early fails the test that waits for it, with its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from background_matrix import PLAN, BackgroundMatrix, log_of, plan_for
from harness import Verdict

from conformance.gateway.behaviours import deviations, switches

DEVIATION = "tests/test_deviations.py::test_deviation_fails_and_warns_exactly_its_cases"
CONFORMANT = "tests/test_deviations.py::test_conformant_switch_passes_every_case"


def test_the_plan_is_each_judgement_the_tests_ask_for_once_in_their_order():
    known = switches()
    drifting = next(s for s in known.values() if s.drifts)
    plain = next(s for s in deviations() if not s.drifts)
    keeping = next(s for s in known.values() if s.keeps_shape and s.name != "other-text")
    ids = [f"{CONFORMANT}[{keeping.name}]", "tests/test_config.py::test_x", f"{DEVIATION}[{plain.name}]",
           f"{CONFORMANT}[{drifting.name}]", "tests/test_snapshots.py::test_text_only_change_is_no_drift",
           f"{DEVIATION}[{plain.name}]", f"{DEVIATION}[no-such-switch]"]
    assert plan_for(ids) == [(keeping.name, True), (plain.name, False), (drifting.name, True), ("other-text", True)]


def test_a_background_that_ended_fails_the_waiting_test_with_its_log(tmp_path: Path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (tmp_path / PLAN).write_text(json.dumps({"pids": {"unpaced": ended.pid, "paced": ended.pid},
                                             "plan": [["other-text", True]]}))
    log_of(tmp_path, "unpaced").write_text("Traceback: the gateway would not start\n")
    matrix = BackgroundMatrix.at(tmp_path)
    assert matrix is not None and matrix.judgement("gzip", False, False) is None, "an unplanned switch is the worker's"
    with pytest.raises(RuntimeError, match=r"(?s)ended before publishing.*the gateway would not start"):
        matrix.judgement("other-text", False, True)


def test_a_worker_keeps_what_the_background_judged_and_performs_its_errors_again(harness):
    """`done` stands for a background's publication: its verdicts are taken as they are (a made-up `passed` for
    an item the switch fails stays passed: it is not performed again), and an infrastructure error there is no
    verdict, so that item is performed here and gets the outcome the switch must give it."""
    harness.baseline()
    switch = min((s for s in deviations() if len(harness._applied(s, harness.items)) >= 2),
                 key=lambda s: len(harness._applied(s, harness.items)))
    applied = sorted(harness._applied(switch, harness.items))
    expected = {item.test_id: switch.expected(item, True) for item in harness.items if item.test_id in applied}
    kept, redone = applied[0], applied[1]
    done = {test: Verdict("passed") if test == kept else Verdict("error", message="starved") for test in applied}
    judged = harness._judge(switch, harness.items, harness.baseline(), False, False, done=done)
    assert judged.performed == len(applied) - 1, "only the errors are performed again"
    assert judged.verdicts[kept] is done[kept]
    assert {test: judged.verdicts[test].outcome for test in applied[1:]} == {t: expected[t] for t in applied[1:]}
    assert judged.verdicts[redone].outcome != "error"
