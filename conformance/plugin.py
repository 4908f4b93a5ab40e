"""The pytest plugin: target options, case parametrisation, the request fixture, summary.json.

It is inert in a pytest session that does not collect the conformance suite (the suite's own self-tests
load it too, through the pytest11 entry point).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from conformance import cases as case_data
from conformance import concurrency
from conformance.certify import implementation_of
from conformance.client import Exchange, RetryPolicy, probe_target, shorten
from conformance.config import REFERENCE_TOKEN_ENV, Target, TargetOptions, resolve_target, surfaces
from conformance.errors import BadInput, InfrastructureError
from conformance.evaluate import evaluate_client, evaluate_steps
from conformance.findings import STRENGTHS, Finding, outcome_of
from conformance.gateway import behaviours
from conformance.pacing import Pacer, TokenBudget, make_store
from conformance.redact import REDACTOR, redact_report
from conformance.resources import PACKAGE_DIR
from conformance.runner import Performed, Runtime
from conformance.snapshots import SNAPSHOT_DIR_ENV, ShapeCheck, attach_snapshot, report_drift, snapshot_setup
from conformance.stopping import DEFAULT_MAX_CONSECUTIVE_ERRORS, RunGuard, stop_reason
from conformance.summary import SummaryCollector, new_run_dir, point_latest, write_json
from conformance.timing import case_latency

TARGET_KEY = pytest.StashKey[Target]()
STATE_KEY = pytest.StashKey[dict[str, Any]]()
MODEL_TYPES = ("chat", "vision", "audio_video", "reasoning", "embeddings")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "AI gateway conformance suite")
    group.addoption("--gateway-url", help="gateway under test (default: GATEWAY_URL, DATABRICKS_HOST, "
                                           "else the embedded reference gateway)")
    group.addoption("--gateway-token-env", help="environment variable holding the token (default DATABRICKS_TOKEN)")
    group.addoption("--gateway-profile", help="read host and token from this ~/.databrickscfg profile")
    group.addoption("--gateway-auth", help="bearer (default) or basic (user `token`, password the token)")
    group.addoption("--gateway-target", help="YAML target profile of a non-Databricks gateway")
    group.addoption("--gateway-insecure", action="store_true", help="do not verify TLS certificates")
    group.addoption("--gateway-timeout", type=float, default=60.0, help="seconds per request (default 60)")
    group.addoption("--gateway-name-form", help="model name form: system.ai (default) or databricks")
    group.addoption("--gateway-deviation", action="append", default=[],
                    help="reference gateway only: turn on a deviation or variation switch (repeatable)")
    group.addoption("--gateway-retries", type=int, default=5, help="attempts per request for transient answers")
    group.addoption("--gateway-stream-delay", type=float, default=0.0,
                    help="reference gateway only: seconds per streamed token (default 0: at once)")
    group.addoption("--gateway-concurrency", type=int, default=8,
                    help="requests in flight at once without xdist (read-ahead; 1 = one after another)")
    group.addoption("--gateway-max-rps", type=float, default=None,
                    help="ceiling on requests per second for the whole run (all workers together)")
    group.addoption("--gateway-token-budget", type=int, default=None,
                    help="skip cases that would call a model once this many tokens are spent")
    group.addoption("--gateway-max-body-bytes", type=int, default=None,
                    help="cap on the decoded bytes of one answer (default 32 MiB; see conformance/bounds.py)")
    group.addoption("--gateway-max-consecutive-errors", type=int, default=DEFAULT_MAX_CONSECUTIVE_ERRORS,
                    help="stop the run after this many consecutive infrastructure errors (0: never; default "
                         f"{DEFAULT_MAX_CONSECUTIVE_ERRORS})")
    group.addoption("--conformance-strict", action="store_true",
                    help="count warnings (broken should/advisory rules) as failures")
    group.addoption("--conformance-reports", help="folder for run folders (default reports/)")
    group.addoption("--conformance-run-dir", help="write this run into exactly this (existing) folder")
    group.addoption("--conformance-snapshots", help="root of the shape snapshots (default: the checkout's "
                                                     "snapshots/); each target has a folder <root>/<target name>")


def _is_active(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return "conformance" in config.workerinput
    if any(config.getoption(o) for o in ("gateway_url", "conformance_reports", "conformance_run_dir")):
        return True
    for arg in config.args:
        path = arg.split("::")[0]
        if config.getoption("pyargs") and path.split(".")[0] == "conformance":
            return True
        try:
            Path(path).resolve().relative_to(PACKAGE_DIR)
            return True
        except ValueError:
            continue
    return False


def _options(config: pytest.Config) -> TargetOptions:
    return TargetOptions(
        url=config.getoption("gateway_url"),
        token_env=config.getoption("gateway_token_env"),
        databricks_profile=config.getoption("gateway_profile"),
        auth=config.getoption("gateway_auth"),
        target_file=config.getoption("gateway_target"),
        insecure=config.getoption("gateway_insecure"),
        timeout=config.getoption("gateway_timeout"),
        name_form=config.getoption("gateway_name_form"),
        max_body_bytes=config.getoption("gateway_max_body_bytes"),
        concurrency=config.getoption("gateway_concurrency"),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expensive: sends many images or megabytes; a live run may leave it out")
    for name in [*surfaces(), *MODEL_TYPES, *STRENGTHS]:
        config.addinivalue_line("markers", f"{name}: conformance cases of {name}")
    if not _is_active(config):
        return
    state: dict[str, Any] = {}
    config.stash[STATE_KEY] = state
    worker = getattr(config, "workerinput", None)
    try:
        switches = behaviours.check_names(config.getoption("gateway_deviation"))
        target = resolve_target(_options(config))
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None
    if worker is not None:
        target.url = worker["conformance"]["url"]
        state["run_dir"] = Path(worker["conformance"]["run_dir"])
        _lean_allure(config, worker["conformance"].get("allure_dir"))
    else:
        if switches and not target.reference:
            raise pytest.UsageError("--deviation applies to the reference gateway only (no --url)")
        given = config.getoption("conformance_run_dir")
        run_dir = Path(given) if given else new_run_dir(Path(config.getoption("conformance_reports") or "reports"))
        state["run_dir"] = run_dir
        if config.option.xmlpath is None:
            config.option.xmlpath = str(run_dir / "junit.xml")
        if hasattr(config.option, "allure_report_dir"):
            state["allure_dir"] = config.option.allure_report_dir or str(run_dir / "allure-results")
            _lean_allure(config, state["allure_dir"])
        if target.reference:
            token = os.environ.get(REFERENCE_TOKEN_ENV) or "ref-" + secrets.token_urlsafe(24)
            os.environ[REFERENCE_TOKEN_ENV] = token  # xdist workers inherit it; it is never printed
            target.token = token
            from conformance.gateway.server import GatewayProcess

            gateway = GatewayProcess(token, sorted(switches),
                                     stream_delay_s=config.getoption("gateway_stream_delay"))
            try:
                gateway.__enter__()
            except InfrastructureError as exc:
                raise pytest.UsageError(str(exc)) from None
            state["gateway"] = gateway
            target.url = gateway.url
        state["collector"] = SummaryCollector(strict=config.getoption("conformance_strict"))
        state["extra"] = {**snapshot_setup(config, target), **implementation_of(target)}
        state["switches"] = sorted(switches)
        config.pluginmanager.register(_Recorder(state["collector"]), "conformance-recorder")
        guard = RunGuard(config, run_dir, max(0, config.getoption("gateway_max_consecutive_errors")))
        state["guard"] = guard
        config.pluginmanager.register(guard, "conformance-run-guard")
        guard.install_signals()  # SIGTERM/SIGINT: a partial summary, helpers and gateway stopped
    REDACTOR.add(target.token)
    config.stash[TARGET_KEY] = target


def _lean_allure(config: pytest.Config, report_dir: str | None) -> None:
    """Allure results through the lean listener (conformance/allure_lean.py) instead of allure-pytest's own."""
    if report_dir is None or not hasattr(config.option, "allure_report_dir"):
        return
    from conformance import allure_lean

    config.option.allure_report_dir = None  # allure-pytest's pytest_configure runs after this one
    allure_lean.install(config, report_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the started gateway's URL and the run folder to each worker."""
    state = node.config.stash.get(STATE_KEY, None)
    if state is not None:
        node.workerinput["conformance"] = {
            "url": node.config.stash[TARGET_KEY].url,
            "run_dir": str(state["run_dir"]),
            "allure_dir": state.get("allure_dir"),
        }


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return
    target = config.stash[TARGET_KEY]
    retry = RetryPolicy.for_timeout(target.timeout, config.getoption("gateway_retries"))
    # one reset or timeout is not an unreachable target; the probe reads no body (client.probe_target)
    problem = probe_target(target, retry)
    if problem is not None:
        reason = REDACTOR.text(problem)
        _write_summary(config, extra={"unreachable": reason})
        _stop_gateway(state)
        pytest.exit(reason, returncode=3)
    if _read_ahead_allowed(config) and not config.option.collectonly:
        _runtime(config).start_helpers()  # their interpreters start while pytest collects


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, loader in (("case_item", case_data.load_cases), ("client_item", _client_cases)):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _params(metafunc.config, loader))


def _client_cases() -> tuple[case_data.Case, ...]:
    from conformance.clientcases import load_client_cases

    return load_client_cases()


def _params(config: pytest.Config, loader: Any) -> list[Any]:
    target = config.stash.get(TARGET_KEY, None)
    if target is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason="suite inactive"))]
    try:
        items = case_data.expand(loader(), target)
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None
    params = []
    for item in items:
        case = item.case
        marks = [getattr(pytest.mark, case.surface), getattr(pytest.mark, case.model_type),
                 getattr(pytest.mark, case.strength), *(getattr(pytest.mark, m) for m in case.markers)]
        missing = case_data.unclaimed_features(case, target)
        if missing:
            marks.append(pytest.mark.skip(reason=f"target does not claim feature(s): {', '.join(missing)}"))
        params.append(pytest.param(item, id=item.test_id, marks=marks))
    return params


def case_metadata(item: case_data.CaseItem) -> dict[str, Any]:
    case = item.case
    return {
        "id": case.id,
        "surface": case.surface,
        "model": item.model.name if item.model else None,
        "model_type": case.model_type,
        "features": list(case.features),
        "strength": case.strength,
        "strength_reason": case.strength_reason,
        "spec": case.spec.get("section"),
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for test in items:
        callspec = getattr(test, "callspec", None)
        params = callspec.params if callspec else {}
        case_item = params.get("case_item") or params.get("client_item")
        if isinstance(case_item, case_data.CaseItem):
            test.user_properties.append(("conformance_case", case_metadata(case_item)))


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Cases left out by -k / -m: the run is incomplete, and the certificate must say so. Under xdist each
    worker collects (and deselects) the same items; the first worker's list reaches the controller."""
    deselected = []
    for test in items:
        params = getattr(getattr(test, "callspec", None), "params", {})
        case_item = params.get("case_item") or params.get("client_item")
        if isinstance(case_item, case_data.CaseItem):
            deselected.append(case_metadata(case_item))
    if not deselected:
        return
    config = items[0].config
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput.setdefault("conformance_deselected", []).extend(deselected)
    else:
        state["collector"].deselected(deselected)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    state = node.config.stash.get(STATE_KEY, None)
    deselected = getattr(node, "workeroutput", {}).get("conformance_deselected")
    if state is not None and deselected and not state.get("deselected_from_worker"):
        state["deselected_from_worker"] = True
        state["collector"].deselected(deselected)


# pytest-xdist puts "[gw0] linux -- Python 3.x /path/to/python" before a worker's failure text
XDIST_HEADER = re.compile(r"\A\[gw\d+\] [^\n]* -- Python [^\n]*\n")


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = XDIST_HEADER.sub("", report.longreprtext.strip(), count=1)
        for prefix in ("Failed: ", "E   "):
            text = text.removeprefix(prefix)
        return REDACTOR.text(text)
    return ""


class _Recorder:
    """Registered on the controller only: xdist forwards every worker's reports to it."""

    def __init__(self, collector: SummaryCollector) -> None:
        self.collector = collector

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report.nodeid, report.when, report.outcome, _message(report),
                           dict(report.user_properties))


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """pytest's failure text and captured output, redacted where the report is made: the console, junit.xml,
    summary.json and xdist's transfer to the controller all read this report (innermost wrapper: before the
    others, Allure's included, look at it)."""
    outcome = yield
    report = outcome.get_result()
    if item.config.stash.get(TARGET_KEY, None) is not None:
        redact_report(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None or hasattr(session.config, "workerinput"):
        return
    _write_summary(session.config)


def _write_summary(config: pytest.Config, extra: dict[str, Any] | None = None) -> None:
    state = config.stash[STATE_KEY]
    if state.get("written"):
        return
    target = config.stash[TARGET_KEY]
    public = REDACTOR.value(target.public())
    from conformance.clients import versions

    info = {"clients": versions(), **({"deviations": state["switches"]} if state.get("switches") else {})}
    info.update(state.get("extra", {}))
    guard = state.get("guard")
    if guard is not None:
        info.update(guard.summary_fields())  # aborted (circuit breaker) / interrupted (a signal)
    document = REDACTOR.value(state["collector"].document(public, {**info, **(extra or {})}))
    write_json(state["run_dir"] / "summary.json", document)
    point_latest(state["run_dir"])
    state["written"] = True
    state["summary"] = document


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if not state or "summary" not in state:
        return
    from conformance.findings import group

    summary = state["summary"]
    totals, failed, warned = summary["totals"], summary["failures_by_strength"], summary["warnings_by_strength"]
    terminalreporter.write_sep("=", "conformance")
    terminalreporter.write_line(
        f"target {summary['target']['name']} ({summary['target']['url']}): "
        + ", ".join(f"{v} {k}" for k, v in totals.items())
        + f" ({failed['must']} must failures; {warned['should']} should, {warned['advisory']} advisory warnings"
        + (", --strict: warnings counted as failures" if summary.get("strict") else "") + ")")
    for key in ("aborted", "interrupted"):  # the circuit breaker or a signal ended the run (stopping.py)
        if summary.get(key):
            terminalreporter.write_line(f"run {key}: {summary[key]} (partial summary)", red=True)
    if summary.get("incomplete"):
        not_run = summary["not_run"]
        terminalreporter.write_line(f"incomplete run: {not_run['deselected']} case(s) deselected, "
                                    f"{not_run['budget_skipped']} skipped for the token budget")
    for outcome, title in (("failed", "failures"), ("warned", "warnings")):
        groups = group(summary["cases"], outcome)
        if groups:
            cases = sum(len(g.cases) for g in groups)
            terminalreporter.write_line(f"{title}: {cases} case(s), {len(groups)} root cause(s)")
            for entry in groups[:10]:
                terminalreporter.write_line(f"  {entry.line(limit=160, names=3)}")
            if len(groups) > 10:
                terminalreporter.write_line(f"  ... and {len(groups) - 10} more (summary.md)")
    terminalreporter.write_line(f"summary: {state['run_dir'] / 'summary.json'}")
    report_drift(terminalreporter, summary)


def _stop_gateway(state: dict[str, Any]) -> None:
    gateway = state.pop("gateway", None)
    if gateway is not None:
        gateway.__exit__()


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        runtime.close()
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        _stop_gateway(state)
        if state.get("guard") is not None:
            state["guard"].restore_signals()
        if not hasattr(config, "workerinput"):
            os.environ.pop(SNAPSHOT_DIR_ENV, None)


# --- fixtures ---------------------------------------------------------------------------------------------


RUNTIME_KEY = pytest.StashKey["Runtime"]()


def _runtime(config: pytest.Config) -> Runtime:
    """The process's Runtime (client pool, pacer, budget), made on first use: under xdist the pacer's and
    budget's state is shared by all workers through a file in the run folder."""
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is None:
        state = config.stash[STATE_KEY]
        shared = state["run_dir"] / ".run-limits.json" if hasattr(config, "workerinput") else None
        concurrency = config.getoption("gateway_concurrency")
        helpers = concurrency > 1 and _read_ahead_allowed(config)  # read-ahead in helper processes
        store = make_store(shared, shared=helpers)
        target = config.stash[TARGET_KEY]
        runtime = Runtime(target, Pacer(config.getoption("gateway_max_rps"), store),
                          TokenBudget(config.getoption("gateway_token_budget"), store),
                          RetryPolicy.for_timeout(target.timeout, config.getoption("gateway_retries")),
                          concurrency=concurrency if helpers else 1)
        config.stash[RUNTIME_KEY] = runtime
    return runtime


def _read_ahead_allowed(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and not getattr(config.option, "numprocesses", None)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist, start performing the selected cases ahead of the tests (see conformance/runner.py)."""
    config = session.config
    if config.stash.get(TARGET_KEY, None) is None or not _read_ahead_allowed(config) or config.option.collectonly:
        return
    work = []
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("skip") is not None:
            continue
        if isinstance(params.get("case_item"), case_data.CaseItem):
            work.append((item.nodeid, "case", params["case_item"]))
        elif isinstance(params.get("client_item"), case_data.CaseItem):
            work.append((item.nodeid, "client", params["client_item"]))
    _runtime(config).read_ahead(work)


def _performed(request: pytest.FixtureRequest, kind: str, item: case_data.CaseItem) -> Performed:
    """Setup phase: a skip skips, an infrastructure problem is an *error* (never a failure)."""
    if request.config.stash.get(TARGET_KEY, None) is None:
        pytest.skip("the conformance suite is not active in this session")
    if hasattr(request.config, "workerinput"):  # xdist: the controller may have stopped the run (stopping.py)
        stopped = stop_reason(request.config.stash[STATE_KEY]["run_dir"])
        if stopped:
            pytest.skip(f"not run: the run was stopped ({stopped[:200]})")
    performed = _runtime(request.config).take(request.node.nodeid, kind, item)
    if performed.skip:
        pytest.skip(performed.skip)
    if performed.infra:
        pytest.fail(performed.infra, pytrace=False)
    if performed.usage:
        request.node.user_properties.append(("usage", {"prompt": performed.usage[0],
                                                       "completion": performed.usage[1]}))
    if performed.exchange is not None:  # time to first byte, total, first content (conformance/timing.py)
        latency = case_latency([*performed.exchange.previous, performed.exchange])
        if latency is not None:
            request.node.user_properties.append(("latency", latency))
    return performed


@pytest.fixture
def exchange(case_item: case_data.CaseItem, request: pytest.FixtureRequest) -> Exchange:
    """The answer(s) to the case's request(s), fetched ahead or now."""
    performed = _performed(request, "case", case_item)
    assert performed.exchange is not None
    return performed.exchange


def shape_check(snapshot: Any, request: pytest.FixtureRequest) -> ShapeCheck:
    """The shape-snapshot comparison of this test (see conformance/snapshots.py): built in the test body, not
    as a fixture of its own, because allure-pytest reports (and pays for) every fixture of every case."""
    return ShapeCheck(snapshot, bool(request.config.option.update_snapshots), request.node)


def run_case(case_item: case_data.CaseItem, exchange: Exchange, request: pytest.FixtureRequest,
             shape_check: ShapeCheck | None = None) -> None:
    """The body of every conformance test: record the evidence, evaluate, compare the shape, and conclude: a
    broken must rule fails the test; only should/advisory ones leave it passed in pytest's terms but recorded
    as `warned` with its findings (shape drift is recorded, never a failure of the case). The evidence comes
    first, so whatever happens while judging, the answer is in the report."""
    _attach(case_item, exchange)
    findings = evaluate_steps(case_item, exchange)
    if findings:
        _attach_findings(findings)
    snapshot = shape_check.check(exchange) if shape_check is not None else None
    if snapshot is not None:
        attach_snapshot(snapshot)
    conclude(request, findings)


def conclude(request: pytest.FixtureRequest, findings: list[Finding]) -> None:
    """Record the findings on the test (a user property: xdist workers forward it with the report) and fail
    the test if they amount to a failure (CONTRACT outcomes; --conformance-strict fails on any finding)."""
    findings = [Finding(f.check, f.strength, REDACTOR.text(f.message)) for f in findings]
    request.node.user_properties.append(("conformance_findings", [f.as_dict() for f in findings]))
    if outcome_of(findings, bool(request.config.getoption("conformance_strict"))) == "failed":
        pytest.fail("\n".join(f.text() for f in findings), pytrace=False)


def _attach_findings(findings: list[Finding]) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    text = "\n".join(f"({f.strength}) {f.text()}" for f in findings)
    name = "failed checks" if any(f.strength == "must" for f in findings) else "warnings"
    allure.attach(REDACTOR.text(text), name, allure.attachment_type.TEXT)
    if name == "warnings":
        allure.dynamic.tag("warned")


def _attach(case_item: case_data.CaseItem, exchange: Exchange) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    case = case_item.case
    allure.dynamic.epic(case.surface)
    allure.dynamic.feature(case.model_type)
    allure.dynamic.story(case_item.model.name if case_item.model else "no model")
    allure.dynamic.description(f"{case.description}\n\nspec: {case.spec.get('doc')} {case.spec['section']}\n"
                               f"{case.spec.get('quote', case.spec.get('reason', ''))}")
    sent = [*exchange.previous, exchange]
    kind = "request" if concurrency.is_concurrent(case) else "step"  # N requests at once, or steps in turn
    for index, step_exchange in enumerate(sent):
        label = f"{kind} {index} " if len(sent) > 1 else ""
        _attach_exchange(allure, step_exchange, label)


EVIDENCE_LIMIT = 2000  # characters of one request string (a base64 image) kept in the evidence


def _attach_exchange(allure: Any, exchange: Exchange, label: str) -> None:
    """One attachment per request: what was sent and what came back, side by side (one file, not two)."""
    body = exchange.request_body
    request_doc = {"method": exchange.method, "url": exchange.url,
                   "headers": REDACTOR.headers(exchange.request_headers),
                   "body": REDACTOR.value(shorten(body, EVIDENCE_LIMIT)) if exchange.raw_request is None
                   else REDACTOR.text(exchange.raw_request)}
    response_doc = {"status": exchange.status, "headers": REDACTOR.headers(exchange.response_headers),
                    "body": REDACTOR.text(exchange.text[:200_000])}
    allure.attach(json.dumps({"request": request_doc, "response": response_doc}),
                  f"{label}exchange", allure.attachment_type.JSON)


@pytest.fixture
def client_result(client_item: case_data.CaseItem, request: pytest.FixtureRequest) -> Performed:
    """The documented client example's result (or its verdict, when a helper process judged it), or the
    failure of a client that broke on the answer."""
    return _performed(request, "client", client_item)


def run_client_case(client_item: case_data.CaseItem, client_result: Performed, request: pytest.FixtureRequest) -> None:
    conclude(request, evaluate_client(client_item, client_result))
