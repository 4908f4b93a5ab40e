"""The bodies of the two conformance tests: judge what was performed, keep the evidence, fail with every broken rule.

Judging is evaluate.py's (one path for every surface); shape drift is recorded, never a failure of the case.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import cases as case_data
from conformance import evidence
from conformance.client import Exchange
from conformance.evaluate import evaluate_steps
from conformance.redact import REDACTOR
from conformance.runner import Performed
from conformance.snapshots import ShapeCheck, attach_snapshot


def shape_check(snapshot: Any, request: pytest.FixtureRequest) -> ShapeCheck:
    """The shape-snapshot comparison of this test (see conformance/snapshots.py): built in the test body, not
    as a fixture of its own, because allure-pytest reports (and pays for) every fixture of every case."""
    return ShapeCheck(snapshot, bool(request.config.option.update_snapshots), request.node)


def run_case(case_item: case_data.CaseItem, exchange: Exchange, shape_check: ShapeCheck | None = None) -> None:
    evidence.label(case_item)  # first: a check that raises still leaves a labelled, titled result
    failures = evaluate_steps(case_item, exchange)
    snapshot = shape_check.check(exchange) if shape_check is not None else None
    evidence.record_exchange(case_item, exchange, failures)
    if snapshot is not None:
        attach_snapshot(snapshot)
    if failures:
        pytest.fail(REDACTOR.text("\n".join(failures)), pytrace=False)


def run_client_case(client_item: case_data.CaseItem, client_result: Performed) -> None:
    from conformance.clientcases import judge

    if client_result.failure:
        failures = [client_result.failure]
    elif client_result.judged is not None:
        failures = client_result.judged
    else:
        failures = judge(client_item, client_result.result)
    evidence.record_client(client_item, failures)
    if failures:
        pytest.fail(REDACTOR.text("\n".join(failures)), pytrace=False)
