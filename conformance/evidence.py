"""What each conformance test leaves in the Allure results: labels, title, description, the exchange.

Cheap on purpose (it runs once per case, inside the benchmark's per-case overhead): labels and strings, and one
JSON attachment per request with what was sent and what came back, credentials redacted. The HTML reports make
the readable page from these after the run (html.py): pretty bodies, failed paths highlighted, the spec quote.

Labels: epic = surface, feature = model type, story = model (the report groups by them: `--group-by
epic,feature,story`); `conformance_case` = the case's name (`case@model`), by which the reports find the case's
record in summary.json. The title is `case @ model`.
"""

from __future__ import annotations

import json
from typing import Any

from conformance import cases as case_data
from conformance.client import Exchange, shorten
from conformance.findings import Finding
from conformance.redact import REDACTOR

EVIDENCE_LIMIT = 2000  # characters of one request string (a base64 image) kept in the evidence
RESPONSE_LIMIT = 200_000
CASE_LABEL = "conformance_case"

allure: Any
try:
    import allure
except ImportError:  # pragma: no cover - allure-pytest is a dependency
    allure = None


def title(item: case_data.CaseItem[Any]) -> str:
    return f"{item.case.id} @ {item.model.name}" if item.model else item.case.id


def label(item: case_data.CaseItem[Any]) -> None:
    """Grouping labels, title and the plain description (spec section and quote) of a test."""
    if allure is None:
        return
    case = item.case
    allure.dynamic.title(title(item))
    allure.dynamic.epic(case.surface)
    allure.dynamic.feature(case.model_type)
    allure.dynamic.story(item.model.name if item.model else "no model")
    allure.dynamic.label(CASE_LABEL, item.test_id)
    spec = case.spec
    allure.dynamic.description(f"{case.description.strip()}\n\nspec: {spec.doc} {spec.section}\n{spec.words}")


def record_exchange(exchange: Exchange) -> None:
    """Evidence of an HTTP case (labelled first, by the test body): every request it sent, earlier steps first."""
    if allure is None:
        return
    sent = [*exchange.previous, exchange]
    kind = "request" if exchange.nonce is not None else "step"  # N requests at once (concurrency.py), or steps
    for index, step_exchange in enumerate(sent):
        step = f"{kind} {index} " if len(sent) > 1 else ""
        allure.attach(json.dumps(exchange_document(step_exchange)), f"{step}exchange", allure.attachment_type.JSON)


def record_findings(findings: list[Finding]) -> None:
    """The broken rules, each with its strength: "failed checks" when a must rule is among them, else
    "warnings" (and the result is tagged `warned`: a warned case is not a failure)."""
    if allure is None or not findings:
        return
    text = "\n".join(f"({f.strength}) {f.text()}" for f in findings)
    name = "failed checks" if any(f.strength == "must" for f in findings) else "warnings"
    allure.attach(REDACTOR.text(text), name, allure.attachment_type.TEXT)
    if name == "warnings":
        allure.dynamic.tag("warned")


def exchange_document(exchange: Exchange) -> dict[str, Any]:
    """One request and its answer, redacted, long request strings cut (the form html.py and pretty.py read)."""
    body = exchange.request_body
    request_doc = {"method": exchange.method, "url": REDACTOR.text(exchange.url),
                   "headers": REDACTOR.headers(exchange.request_headers),
                   "body": REDACTOR.value(shorten(body, EVIDENCE_LIMIT)) if exchange.raw_request is None
                   else REDACTOR.text(exchange.raw_request)}
    response_doc = {"status": exchange.status, "headers": REDACTOR.headers(exchange.response_headers),
                    "body": REDACTOR.text(exchange.text[:RESPONSE_LIMIT])}
    return {"request": request_doc, "response": response_doc}


def install_lean_allure(config: Any, report_dir: str | None) -> None:
    """Allure results through the lean listener (conformance/allure_lean.py) instead of allure-pytest's own."""
    if report_dir is None or not hasattr(config.option, "allure_report_dir"):
        return
    from conformance import allure_lean

    config.option.allure_report_dir = None  # allure-pytest's pytest_configure runs after this one
    allure_lean.install(config, report_dir)
