"""The bodies of the two conformance tests: keep the evidence, judge what was performed, conclude.

Judging is evaluate.py's (one path for every surface); shape drift is recorded, never a failure of the case. A
case's findings decide its outcome (CONTRACT: outcomes): a broken `must` rule fails the test; only `should` /
`advisory` ones leave it passed in pytest's terms, recorded as `warned` with its findings (the
`conformance_findings` user property, which xdist workers forward with the report).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import cases as case_data
from conformance import evidence
from conformance.casemodel import Case, ClientCase
from conformance.client import Exchange
from conformance.evaluate import evaluate_client, evaluate_steps
from conformance.findings import Finding, outcome_of
from conformance.redact import REDACTOR
from conformance.runner import Performed
from conformance.snapshots import ShapeCheck, attach_snapshot

FINDINGS_PROPERTY = "conformance_findings"


def shape_check(snapshot: Any, request: pytest.FixtureRequest) -> ShapeCheck:
    """The shape-snapshot comparison of this test (see conformance/snapshots.py): built in the test body, not
    as a fixture of its own, because allure-pytest reports (and pays for) every fixture of every case."""
    return ShapeCheck(snapshot, bool(request.config.option.update_snapshots), request.node)


def run_case(case_item: case_data.CaseItem[Case], exchange: Exchange, request: pytest.FixtureRequest,
             shape_check: ShapeCheck | None = None) -> None:
    """Label and keep the evidence first (whatever happens while judging, the answer is in the report), evaluate,
    compare the shape, conclude."""
    evidence.label(case_item)
    evidence.record_exchange(exchange)
    findings = evaluate_steps(case_item, exchange)
    evidence.record_findings(findings)
    snapshot = shape_check.check(exchange) if shape_check is not None else None
    if snapshot is not None:
        attach_snapshot(snapshot)
    conclude(request, findings)


def conclude(request: pytest.FixtureRequest, findings: list[Finding]) -> None:
    """Record the findings on the test and fail it if they amount to a failure (--conformance-strict: any)."""
    findings = [Finding(f.check, f.strength, REDACTOR.text(f.message)) for f in findings]
    request.node.user_properties.append((FINDINGS_PROPERTY, [f.as_dict() for f in findings]))
    # (the session sets the option from its settings, so `conformance run --strict` reads the same)
    if outcome_of(findings, bool(request.config.getoption("conformance_strict"))) == "failed":
        pytest.fail("\n".join(f.text() for f in findings), pytrace=False)


def run_client_case(client_item: case_data.CaseItem[ClientCase], client_result: Performed,
                    request: pytest.FixtureRequest) -> None:
    evidence.label(client_item)
    findings = evaluate_client(client_item, client_result)
    evidence.record_findings(findings)
    conclude(request, findings)
