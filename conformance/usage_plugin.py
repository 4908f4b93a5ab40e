"""pytest glue of the usage cases (conformance/usage_tracking.py): parametrisation, the two moments, the test.

- The usage items are ordinary collected tests (`test_usage_case`), so -k, -m, markers, JUnit, Allure and
  summary.json treat them as every case; they are moved to the end of the run.
- Their requests are made once, by the process that owns the run, when the selection is known and before any
  other test sends: at the end of collection without xdist (before read-ahead starts), on the first worker's
  collection report under xdist (the controller hands out no test before it returns). The record goes to the
  run folder, where xdist workers read it.
- The first usage test a process runs looks the rows up (polling within --gateway-usage-wait), in its set-up: a
  pending row is an error of set-up, as infrastructure is, never a failure.
- The test concludes as every case does (suite/bodies.conclude): its findings, with the strength of each broken
  rule, fail it on a `must` (or anything under --conformance-strict) and otherwise leave it warned.

The session (conformance/session.py) registers this module and activates it once it knows the run, on the
controller and on each xdist worker; the suite's test module holds the `usage_verdict` fixture and the test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import usage_tracking as usage
from conformance.config import Target
from conformance.errors import BadInput
from conformance.redact import REDACTOR

CONTEXT_KEY = pytest.StashKey["UsageContext"]()
TEST_NAME = "test_usage_case"


@dataclass
class UsageContext:
    target: Target
    run_dir: Path
    # the summary's extra fields on the process that owns the run (the session's), None on an xdist worker
    summary_extra: dict[str, Any] | None
    runtime: Callable[[], Any]  # the process's Runtime (pacer, budget, client), made on demand (session.runtime)
    wait_s: float
    quiet_since: float | None = None  # time.monotonic() of the run's last request before the usage requests
    record: dict[str, Any] | None = None
    evidence: dict[str, list[Any]] = field(default_factory=dict)
    settled: dict[str, usage.Verdict] | None = None


def activate(config: pytest.Config, target: Target, run_dir: Path, summary_extra: dict[str, Any] | None,
             runtime: Callable[[], Any], wait_s: float, quiet_since: float | None = None) -> None:
    """Called by the session once it knows the run (controller and xdist workers alike): `summary_extra` is
    where the controller's summary takes the usage record from (None on a worker), `wait_s` the run's
    --usage-wait (RunSettings.usage_wait, checked there), `quiet_since` when the preflight's last request was
    made (ai_query's window must not reach back to it: usage_tracking.Begin)."""
    config.stash[CONTEXT_KEY] = UsageContext(target, run_dir, summary_extra, runtime, float(wait_s), quiet_since)


def _context(config: pytest.Config) -> UsageContext | None:
    return config.stash.get(CONTEXT_KEY, None)


# --- collection -----------------------------------------------------------------------------------------------

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "usage_item" not in metafunc.fixturenames:
        return
    ctx = _context(metafunc.config)
    if ctx is None:
        metafunc.parametrize("usage_item", [pytest.param(None, marks=pytest.mark.skip(reason="suite inactive"))])
        return
    try:
        items = usage.expand_usage(ctx.target)
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None
    params = []
    for item in items:
        case = item.case
        marks = [pytest.mark.usage, getattr(pytest.mark, case.model_type), getattr(pytest.mark, case.strength)]
        if item.skip:
            marks.append(pytest.mark.skip(reason=item.skip))
        params.append(pytest.param(item, id=item.test_id, marks=marks))
    metafunc.parametrize("usage_item", params)


def metadata(item: usage.UsageItem) -> dict[str, Any]:
    case = item.case
    return {"id": case.id, "surface": "usage", "model": item.model.name if item.model else None,
            "model_type": case.model_type, "features": list(case.features), "strength": case.strength,
            "strength_reason": case.strength_reason, "spec": case.spec.section}


def _usage_item(test: pytest.Item) -> usage.UsageItem | None:
    params = getattr(getattr(test, "callspec", None), "params", {})
    found = params.get("usage_item")
    return found if isinstance(found, usage.UsageItem) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Usage tests last, so the run's whole duration passes before their first lookup."""
    tail = []
    for test in items:
        item = _usage_item(test)
        if item is not None:
            test.user_properties.append(("conformance_case", metadata(item)))
            tail.append(test)
    if tail:
        chosen = set(map(id, tail))
        items[:] = [t for t in items if id(t) not in chosen] + tail


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    ctx = _context(config)
    if ctx is None or ctx.summary_extra is None or config.option.collectonly:
        return
    if getattr(config.option, "numprocesses", None):
        return  # under xdist the controller does not collect: pytest_xdist_node_collection_finished
    chosen = [item for test in session.items if (item := _usage_item(test)) is not None
              and test.get_closest_marker("skip") is None]
    _begin(config, ctx, chosen)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    config = node.config
    ctx = _context(config)
    if ctx is None or ctx.summary_extra is None or ctx.record is not None:
        return
    selected = {nodeid.split(f"{TEST_NAME}[", 1)[1][:-1] for nodeid in ids if f"::{TEST_NAME}[" in nodeid}
    _begin(config, ctx, [i for i in usage.expand_usage(ctx.target) if i.test_id in selected and not i.skip])


def _begin(config: pytest.Config, ctx: UsageContext, items: list[usage.UsageItem]) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        text = REDACTOR.text(line)
        if terminal is not None:
            terminal.write_line(text)
        else:  # pragma: no cover - pytest always has one unless -p no:terminal
            print(text, file=sys.stderr)

    begin = usage.Begin(ctx.target, ctx.runtime(), say, ctx.quiet_since)
    ctx.record = begin.run(items)
    ctx.evidence = begin.evidence
    if ctx.record["cases"]:
        assert ctx.summary_extra is not None
        ctx.summary_extra[usage.SUMMARY_KEY] = ctx.record
        document = {"record": ctx.record, "evidence": ctx.evidence}
        (ctx.run_dir / usage.PHASE_FILE).write_text(json.dumps(REDACTOR.value(document), indent=1), encoding="utf-8")


# --- the test -------------------------------------------------------------------------------------------------

def _settled(config: pytest.Config, ctx: UsageContext) -> dict[str, usage.Verdict]:
    if ctx.settled is None:
        if ctx.record is None:  # an xdist worker: what the controller recorded
            phase = ctx.run_dir / usage.PHASE_FILE
            document: dict[str, Any] = (json.loads(phase.read_text(encoding="utf-8")) if phase.exists()
                                        else {"record": None})
            ctx.record, ctx.evidence = document["record"], document.get("evidence", {})
        ctx.settled = {}
        record = ctx.record
        if record and any(c["outcome"] == "pending" for c in record["cases"].values()):
            from conformance.statements import StatementClient

            runtime = ctx.runtime()
            client = StatementClient(ctx.target, record["warehouse_id"], runtime.retry,
                                     auth_headers=runtime.client.auth_headers("default"), http=runtime.client)
            try:
                ctx.settled = usage.settle(record, client, ctx.wait_s)
            finally:
                client.close()
    return ctx.settled


def usage_verdict_of(usage_item: usage.UsageItem, request: pytest.FixtureRequest) -> usage.Verdict:
    """The `usage_verdict` fixture's work (set-up): the case's verdict; skipped and pending/infrastructure
    outcomes end here, as for other cases."""
    ctx = _context(request.config)
    if ctx is None:
        pytest.skip("the conformance suite is not active in this session")
    settled = _settled(request.config, ctx)
    verdict = usage.verdict_of(ctx.record or {"cases": {}}, usage_item.test_id, settled)
    if verdict.usage:
        request.node.user_properties.append(("usage", verdict.usage))
    _attach(usage_item, ctx, verdict)
    if verdict.outcome == "skipped":
        pytest.skip(verdict.message)
    if verdict.outcome in ("error", "pending"):
        pytest.fail(REDACTOR.text(verdict.message or "no verdict"), pytrace=False)
    return verdict


def run_usage_case(usage_item: usage.UsageItem, usage_verdict: usage.Verdict, request: pytest.FixtureRequest,
                   ) -> None:
    """The test body: the verdict's findings decide, as for every case (a must fails, the rest warns)."""
    from conformance.evidence import record_findings
    from conformance.suite.bodies import conclude

    record_findings(usage_verdict.findings)
    conclude(request, usage_verdict.findings)


def _attach(item: usage.UsageItem, ctx: UsageContext, verdict: usage.Verdict) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    from conformance.evidence import CASE_LABEL

    case = item.case
    allure.dynamic.title(f"{case.id} @ {item.model.name}" if item.model else case.id)
    allure.dynamic.label(CASE_LABEL, item.test_id)  # how the reports find the case's record (evidence.py)
    allure.dynamic.epic("usage")
    allure.dynamic.feature(case.model_type)
    allure.dynamic.story(item.model.name if item.model else "no model")
    allure.dynamic.description(f"{case.description}\n\nspec: {case.spec.doc} {case.spec.section}\n"
                               f"{case.spec.quote or ''}")
    key = {"ai_query_result": "ai_query", "ai_query_captured": "ai_query"}.get(item.kind, item.test_id)
    evidence = {"requests": ctx.evidence.get(key, []), "probe": ctx.evidence.get("probe", []),
                "record": (ctx.record or {}).get("cases", {}).get(item.test_id), "verdict": verdict.as_record()}
    allure.attach(json.dumps(REDACTOR.value(evidence), indent=1), "usage evidence", allure.attachment_type.JSON)
    requests = evidence["requests"]
    for index, document in enumerate(requests):  # each request in the reports' exchange form (html.exchanges_of)
        step = f"step {index} " if len(requests) > 1 else ""
        allure.attach(json.dumps(REDACTOR.value(document)), f"{step}exchange", allure.attachment_type.JSON)
