"""The conformance session: one object per pytest process, registered as a plugin by conformance/plugin.py.

On the controller (the only process without xdist) it owns the run: the reference gateway's lifetime, the
preflight, the parametrisation, the read-ahead of cases, the record of every outcome (summary.json), the reports
and the exit status. On an xdist worker it parametrises and performs the same way, from the settings the
controller handed over, and leaves the recording to the controller (xdist forwards every report to it).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from conformance import cases as case_data
from conformance.casemodel import Case, ClientCase
from conformance.certify import implementation_of
from conformance.client import RetryPolicy
from conformance.config import REFERENCE_TOKEN_ENV
from conformance.errors import BadInput, InfrastructureError
from conformance.evidence import install_lean_allure
from conformance.pacing import Pacer, TokenBudget, make_store
from conformance.preflight import Preflight, Use, preflight
from conformance.redact import REDACTOR, redact_report
from conformance.runner import Performed, Runtime
from conformance.settings import RunSettings
from conformance.snapshots import SNAPSHOT_DIR_ENV, snapshot_setup
from conformance.stopping import RunGuard, stop_reason
from conformance.summary import SummaryCollector, exit_status, new_run_dir, point_latest, write_json
from conformance.timing import case_latency

NAME = "conformance-session"
USAGE_PLUGIN = "conformance-usage"
EXIT_BAD_INPUT = 2
MODEL_NOT_SERVED = "model not served"


def session_of(config: pytest.Config) -> Session | None:
    plugin = config.pluginmanager.get_plugin(NAME)
    return plugin if isinstance(plugin, Session) else None


def performed(request: pytest.FixtureRequest, kind: str, item: case_data.CaseItem[Any]) -> Performed:
    """The `exchange` / `client_result` fixtures' work: a skip skips, an infrastructure problem is an *error*."""
    session = session_of(request.config)
    if session is None:
        pytest.skip("the conformance suite is not active in this session")
    if session.worker is not None and session.run_dir is not None:  # xdist: the controller may have stopped it
        stopped = stop_reason(session.run_dir)
        if stopped:
            pytest.skip(f"not run: the run was stopped ({stopped[:200]})")
    result = session.runtime().take(request.node.nodeid, kind, item)
    if result.skip:
        pytest.skip(result.skip)
    if result.infra:
        pytest.fail(result.infra, pytrace=False)
    if result.usage:
        request.node.user_properties.append(("usage", {"prompt": result.usage[0], "completion": result.usage[1]}))
    if result.exchange is not None:  # time to first byte, total, first content (conformance/timing.py)
        latency = case_latency([*result.exchange.previous, result.exchange])
        if latency is not None:
            request.node.user_properties.append(("latency", latency))
    return result


def case_metadata(item: case_data.CaseItem[Any]) -> dict[str, Any]:
    case = item.case
    return {"id": case.id, "surface": case.surface, "model": item.model.name if item.model else None,
            "model_type": case.model_type, "features": list(case.features), "strength": case.strength,
            "strength_reason": case.strength_reason, "spec": case.spec.section}


def _client_cases() -> tuple[ClientCase, ...]:
    from conformance.clientcases import load_client_cases

    return load_client_cases()


def route_of(case: Case | ClientCase) -> str:
    return case.route_surface


# pytest-xdist puts "[gw0] linux -- Python 3.x /path/to/python" before a worker's failure text
XDIST_HEADER = re.compile(r"\A\[gw\d+\] [^\n]* -- Python [^\n]*\n")


def report_message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = XDIST_HEADER.sub("", report.longreprtext.strip(), count=1)
        for prefix in ("Failed: ", "E   "):
            text = text.removeprefix(prefix)
        return REDACTOR.text(text)
    return ""


class Session:
    def __init__(self, settings: RunSettings, handover: Any = None, worker: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.target = settings.target
        self.handover = handover
        self.worker = worker
        self.run_dir: Path | None = Path(worker["run_dir"]) if worker else None
        self.allure_dir: str | None = worker.get("allure_dir") if worker else None
        self.gateway: Any = None
        self.preflight: Preflight | None = None
        self.collector = SummaryCollector(strict=settings.strict)
        self.guard: RunGuard | None = None  # the circuit breaker and the signals (stopping.py), controller only
        self._deselected_from_worker = False
        self.extra: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.status: int | None = None
        self.report_lines: list[str] = []
        self.notes: list[str] = []  # console lines before the verdict (preflight notes, spec differences)
        self._runtime: Runtime | None = None
        self.quiet_since: float | None = None
        self.xdist = False
        for secret in self.target.secrets():  # the token and credential-carrying profile headers
            REDACTOR.add(secret)

    # --- start: the controller, before pytest configures (plugin.pytest_cmdline_main) ---------------------

    def start(self, config: pytest.Config, probe: bool = True) -> int | None:
        """Start the reference gateway and run the preflight; an exit status when the run must stop here. From
        here on SIGTERM and SIGINT end the run cleanly (stopping.py), during the preflight as during the cases."""
        settings = self.settings
        self.run_dir = settings.run_dir or new_run_dir(settings.reports)
        self.guard = RunGuard(config, self.run_dir, settings.max_consecutive_errors)
        self.guard.install_signals()
        try:
            return self._start(probe)
        except KeyboardInterrupt:
            import signal

            name = self.guard.interrupted or "SIGINT"
            return self._stop_early(f"interrupted by {name} before any case ran", 128 + int(getattr(signal, name)),
                                    key="interrupted", value=name)

    def _start(self, probe: bool) -> int | None:
        settings = self.settings
        if self.target.reference:
            token = os.environ.get(REFERENCE_TOKEN_ENV) or "ref-" + secrets.token_urlsafe(24)
            os.environ[REFERENCE_TOKEN_ENV] = token  # xdist workers inherit it; it is never printed
            self.target.token = token
            REDACTOR.add(token)
            from conformance.gateway.server import GatewayProcess

            gateway = GatewayProcess(token, list(settings.switches), stream_delay_s=settings.stream_delay_s)
            try:
                gateway.__enter__()
            except InfrastructureError as exc:
                return self._stop_early(f"the reference gateway did not start: {exc}", 3)
            self.gateway = gateway
            self.target.url = gateway.url
        if not probe:
            return None
        self.preflight = preflight(self.target, self._uses(), Pacer(settings.max_rps))
        self.quiet_since = time.monotonic()  # the preflight's last request (usage_tracking.Begin waits from it)
        self.target.unserved = dict(self.preflight.not_served)
        self.target.routes_missing = dict(self.preflight.routes_missing)
        self.notes += self.preflight.notes
        if self.preflight.fatal:
            return self._stop_early(self.preflight.fatal, self.preflight.exit_status or 3)
        return None

    def _uses(self) -> list[Use]:
        """The case items this run can perform (claimed features), as the preflight needs them; a usage case
        uses the route of its tagged request, and ai_query the chat model it names (the SQL statement API is the
        usage cases' own to prove: an unusable warehouse skips or errors them alone)."""
        from conformance.usage_tracking import expand_usage

        items: list[case_data.CaseItem[Any]] = [*case_data.expand(case_data.load_cases(), self.target),
                                                 *case_data.expand(_client_cases(), self.target)]
        uses = [Use(route_of(item.case), item.model) for item in items
                if not case_data.unclaimed_features(item.case, self.target)]
        uses += [Use(usage_item.case.route or "chat_completions", usage_item.model)
                 for usage_item in expand_usage(self.target)
                 if usage_item.skip is None and usage_item.model is not None]
        return uses

    def _stop_early(self, line: str, status: int, key: str | None = None, value: str | None = None) -> int:
        """Nothing was judged: record why in the run folder, leave reports/latest alone, say it in one line."""
        line = REDACTOR.text(line)
        extra: dict[str, Any] = {"preflight": self.preflight.record() if self.preflight else {}}
        extra[key or ("unreachable" if status == 3 else "setup_error")] = value or line
        assert self.run_dir is not None
        write_json(self.run_dir / "summary.json", self.collector.document(REDACTOR.value(self.target.public()),
                                                                          {**implementation_of(self.target),
                                                                           **extra}))
        self._stop_gateway()
        if self.guard is not None:
            self.guard.restore_signals()
        print(f"conformance: {'error: ' if key is None else ''}{line}" + ("" if key is None else
              f": nothing judged (summary in {self.run_dir})"), file=sys.stderr)
        self._set_status(status)
        return status

    def _set_status(self, status: int | None) -> None:
        self.status = status
        if self.handover is not None:
            self.handover.status = status

    # --- pytest hooks ---------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.xdist = bool(getattr(config.option, "numprocesses", None))
        config.option.conformance_strict = self.settings.strict  # what the test bodies read (suite/bodies.py)
        if self.worker is not None:
            install_lean_allure(config, self.allure_dir)
            self._activate_usage(config)
            return
        assert self.run_dir is not None
        if config.option.xmlpath is None:
            config.option.xmlpath = str(self.run_dir / "junit.xml")
        if hasattr(config.option, "allure_report_dir"):
            self.allure_dir = config.option.allure_report_dir or str(self.run_dir / "allure-results")
            install_lean_allure(config, self.allure_dir)
        self.extra = {**snapshot_setup(config, self.target, self.settings.snapshots), **implementation_of(self.target)}
        if self.guard is None:  # (start() made it, and installed the signal handlers, unless a test skipped it)
            self.guard = RunGuard(config, self.run_dir, self.settings.max_consecutive_errors)
            self.guard.install_signals()  # SIGTERM/SIGINT: a partial summary, helpers and gateway stopped
        config.pluginmanager.register(self.guard, "conformance-run-guard")
        self._activate_usage(config)

    def _activate_usage(self, config: pytest.Config) -> None:
        """The usage cases' hooks (usage_plugin.py) in this process, with the run they belong to: its record goes
        into this session's summary (`extra`) on the controller; every process makes requests and looks rows up
        through its own Runtime."""
        from conformance import usage_plugin

        if not config.pluginmanager.has_plugin(USAGE_PLUGIN):
            config.pluginmanager.register(usage_plugin, USAGE_PLUGIN)
        assert self.run_dir is not None
        usage_plugin.activate(config, self.target, self.run_dir, None if self.worker is not None else self.extra,
                              self.runtime, self.settings.usage_wait, self.quiet_since)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """xdist: an official client's cases on one worker (conformance/scheduling.py)."""
        from conformance.scheduling import make_scheduler

        return make_scheduler(config, log)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: hand the settings (the started gateway's URL, the preflight's findings) to each worker."""
        node.workerinput["conformance"] = {"settings": self.settings.to_plain(), "run_dir": str(self.run_dir),
                                           "allure_dir": self.allure_dir}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self._read_ahead_allowed() and not session.config.option.collectonly:
            self.runtime().start_helpers()  # their interpreters start while pytest collects

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for fixture, loader in (("case_item", case_data.load_cases), ("client_item", _client_cases)):
            if fixture in metafunc.fixturenames:
                metafunc.parametrize(fixture, self._params(loader))

    def _params(self, loader: Any) -> list[Any]:
        try:
            items = case_data.expand(loader(), self.target)
        except BadInput as exc:
            raise pytest.UsageError(str(exc)) from None
        params = []
        for item in items:
            case = item.case
            marks = [getattr(pytest.mark, case.surface), getattr(pytest.mark, case.model_type),
                     getattr(pytest.mark, case.strength), *(getattr(pytest.mark, m) for m in case.markers)]
            reason = self.skip_reason(item)
            if reason:
                marks.append(pytest.mark.skip(reason=reason))
            params.append(pytest.param(item, id=item.test_id, marks=marks))
        return params

    def skip_reason(self, item: case_data.CaseItem[Any]) -> str | None:
        """Why a case cannot run on this target: a feature it does not claim, a route the preflight found
        missing, a model it does not serve (its route having no route at all is the runner's to say)."""
        missing = case_data.unclaimed_features(item.case, self.target)
        if missing:
            return f"target does not claim feature(s): {', '.join(missing)}"
        route = route_of(item.case)
        if route in self.target.routes_missing:
            return self.target.routes_missing[route]
        if item.model is not None and item.model.name in self.target.unserved:
            return f"{MODEL_NOT_SERVED}: {item.model.name} ({self.target.unserved[item.model.name]})"
        return None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for test in items:
            callspec = getattr(test, "callspec", None)
            params = callspec.params if callspec else {}
            item = params.get("case_item") or params.get("client_item")
            if isinstance(item, case_data.CaseItem):
                test.user_properties.append(("conformance_case", case_metadata(item)))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Cases left out by -k / -m: the run is incomplete, and the certificate must say so. Under xdist each
        worker collects (and deselects) the same items; the first worker's list reaches the controller."""
        from conformance import usage_plugin

        deselected = []
        for test in items:
            params = getattr(getattr(test, "callspec", None), "params", {})
            item = params.get("case_item") or params.get("client_item")
            if isinstance(item, case_data.CaseItem):
                deselected.append(case_metadata(item))
            elif isinstance(params.get("usage_item"), usage_plugin.usage.UsageItem):
                deselected.append(usage_plugin.metadata(params["usage_item"]))
        if not deselected:
            return
        if self.worker is not None:
            cast(Any, items[0].config).workeroutput.setdefault("conformance_deselected", []).extend(deselected)
        else:
            self.collector.deselected(deselected)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        deselected = getattr(node, "workeroutput", {}).get("conformance_deselected")
        if deselected and not self._deselected_from_worker:
            self._deselected_from_worker = True
            self.collector.deselected(deselected)

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """pytest's failure text and captured output, redacted where the report is made: the console, junit.xml,
        summary.json and xdist's transfer to the controller all read this report (innermost wrapper: before the
        others, Allure's included, look at it)."""
        outcome = yield
        redact_report(outcome.get_result())

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Without xdist, start performing the selected cases ahead of the tests (see conformance/runner.py)."""
        config = session.config
        if not self._read_ahead_allowed() or config.option.collectonly:
            return
        work = []
        for test in session.items:
            params = getattr(getattr(test, "callspec", None), "params", {})
            if test.get_closest_marker("skip") is not None:
                continue
            if isinstance(params.get("case_item"), case_data.CaseItem):
                work.append((test.nodeid, "case", params["case_item"]))
            elif isinstance(params.get("client_item"), case_data.CaseItem):
                work.append((test.nodeid, "client", params["client_item"]))
        self.runtime().read_ahead(work)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker is None:  # xdist forwards every worker's reports to the controller
            self.collector.add(report.nodeid, report.when, report.outcome, report_message(report),
                               dict(report.user_properties))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After xdist's teardown of the workers (and syrupy's status), before pytest's terminal summary: a worker
        has its results on disk before xdist says it finished; the controller ends the run (finish)."""
        from conformance import allure_lean

        allure_lean.flush()
        if self.worker is None:
            self.finish(session)

    def finish(self, session: pytest.Session) -> None:
        """The controller's end of the run: summary.json, reports/latest, the reports, the exit status.

        A run stopped early (the circuit breaker: exit 3; SIGTERM/SIGINT: 128 + the signal's number) keeps a
        partial summary and its reports in its run folder (no HTML after a signal: a terminating process should
        end quickly), says so in one line, and never becomes reports/latest: the next run's `conformance diff`
        must not compare with a run that left cases out. Nor does a run that judged nothing."""
        if self.summary is not None:
            return
        if session.config.option.collectonly:  # nothing ran: no summary, pytest's status
            self._set_status(int(session.exitstatus))
            return
        stopped = self.guard.summary_fields() if self.guard is not None else {}
        interrupted = session.exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR,
                                             pytest.ExitCode.USAGE_ERROR)
        self.summary = self._write_summary()
        judged = sum(self.summary["totals"].get(k, 0) for k in ("passed", "failed", "warned"))
        if stopped:
            status = self._stopped_status(stopped)
        elif interrupted:  # pytest's own status stands; a partial run is never the next run's baseline
            self._set_status(None)
            return
        else:
            if judged:
                point_latest(self.run_dir)  # type: ignore[arg-type]
            status = self._status(judged)
        if self.summary["cases"] or stopped:  # a partial run's summary.md and certificate say what it had judged
            self._render("none" if stopped.get("interrupted") else self.settings.html)
        session.exitstatus = status
        self._set_status(status)

    def _stopped_status(self, stopped: dict[str, str]) -> int:
        import signal

        if stopped.get("interrupted"):
            name = stopped["interrupted"]
            print(f"conformance: interrupted by {name}: partial summary in {self.run_dir}", file=sys.stderr)
            return 128 + int(getattr(signal, name, signal.SIGTERM))
        print(f"conformance: {stopped['aborted']} (partial summary in {self.run_dir})", file=sys.stderr)
        return 3

    def _render(self, html: str) -> None:
        from conformance.reporting import render_reports

        try:
            self.report_lines = render_reports(self.run_dir, html=html,  # type: ignore[arg-type]
                                               spec_dir=str(self.settings.spec_dir) if self.settings.spec_dir
                                               else None)
        except BadInput as exc:
            self.notes.append(f"reports: {exc}")

    def _status(self, judged: int) -> int:
        assert self.summary is not None
        if not self.summary["cases"]:
            print("conformance: error: no case selected (check -k / -m / the target's models)", file=sys.stderr)
            return EXIT_BAD_INPUT
        status = exit_status(self.summary)
        drift = self.summary["totals"].get("drift")
        if status == 0 and self.settings.fail_on_drift and drift:
            self.notes.append(f"{drift} case(s) drifted from the snapshot baseline (--fail-on-drift)")
            return 1
        return status

    def _write_summary(self) -> dict[str, Any]:
        from conformance.clients import versions

        info: dict[str, Any] = {"clients": versions(),
                                **({"deviations": list(self.settings.switches)} if self.settings.switches else {})}
        info.update(self.extra)
        if self.preflight is not None:
            info["preflight"] = self.preflight.record()
        if self.guard is not None:
            info.update(self.guard.summary_fields())  # aborted (circuit breaker) / interrupted (a signal)
        document = REDACTOR.value(self.collector.document(REDACTOR.value(self.target.public()), info))
        write_json(self.run_dir / "summary.json", document)  # type: ignore[operator]
        return document

    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.worker is None and self.summary is not None:
            from conformance.console import write_summary

            write_summary(terminalreporter, self)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.guard is not None:
            self.guard.restore_signals()
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        self._stop_gateway()
        if self.worker is None:
            os.environ.pop(SNAPSHOT_DIR_ENV, None)

    def _stop_gateway(self) -> None:
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.__exit__()

    # --- performing ----------------------------------------------------------------------------------------

    def runtime(self) -> Runtime:
        """The process's Runtime (client pool, pacer, budget), made on first use: under xdist the pacer's and
        budget's state is shared by all workers through a file in the run folder."""
        if self._runtime is None:
            settings = self.settings
            shared = self.run_dir / ".run-limits.json" if self.worker is not None and self.run_dir else None
            helpers = settings.concurrency > 1 and self._read_ahead_allowed()  # read-ahead in helper processes
            store = make_store(shared, shared=helpers)
            from conformance.helper import spawn_helper

            self._runtime = Runtime(self.target, Pacer(settings.max_rps, store),
                                    TokenBudget(settings.token_budget, store),
                                    RetryPolicy.for_timeout(self.target.timeout, settings.retries),
                                    concurrency=settings.concurrency if helpers else 1,
                                    spawn=spawn_helper if helpers else None)
        return self._runtime

    def _read_ahead_allowed(self) -> bool:
        """Read-ahead is for the one process that runs every test; under xdist the workers are the concurrency."""
        return self.worker is None and not self.xdist
