"""The pytest plugin's entry point (pytest11): options, markers, and the registration of the session.

Split the way pytest-xdist splits its own: this module only declares options and decides, per process, whether a
conformance session runs and which (conformance/session.py holds the session: gateway, preflight, parametrisation,
read-ahead, summary; evidence.py the Allure evidence; suite/ the test bodies). It is inert in a pytest session that
does not collect the conformance suite (the suite's own self-tests load it too, through the entry point).

Two ways in, one object: `conformance run` resolves its flags into RunSettings and passes them with `run()`;
`pytest --pyargs conformance --gateway-url ...` has them made from the options below. Bad input either way is one
line on stderr and exit status 2, and a preflight that stops the run (a refused token: 2; not a gateway: 3) ends
it before pytest prints anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance.config import surfaces
from conformance.errors import BadInput
from conformance.findings import STRENGTHS
from conformance.resources import PACKAGE_DIR, SUITE_DIR
from conformance.settings import DEFAULT_USAGE_WAIT_S, HTML_MODES, RunSettings, from_pytest_options
from conformance.stopping import DEFAULT_MAX_CONSECUTIVE_ERRORS
from conformance.vocabulary import MODEL_TYPES

EXIT_BAD_INPUT = 2
# pytest plugins a conformance run has no use for (no log capture, Python warnings or thread exceptions to
# report about the suite's own code); their per-test wrappers were a quarter of the pytest process's CPU. Nor
# assertion rewriting: the verdicts are findings, not asserts, and rewriting every module of the package (a pytest11
# plugin's distribution is rewritten whole) was a fifth of the CPU of a run the preflight ends at once.
LEAN_PLUGINS = ("-p", "no:logging", "-p", "no:warnings", "-p", "no:unraisableexception", "-p", "no:threadexception",
                "--assert=plain")


class Handover:
    """What `conformance run` gives pytest.main: the resolved settings; the session leaves the run's exit status
    here (None: pytest's own status stands, e.g. an interrupted run)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.status: int | None = None


def suite_arguments() -> list[str]:
    """The pytest arguments that collect the suite as `conformance run` does, from wherever it is installed."""
    return [str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR),
            "-p", "no:cacheprovider", *LEAN_PLUGINS]


def run(settings: RunSettings, pytest_args: list[str]) -> tuple[int | None, int]:
    """Run the suite with these settings: (the session's exit status or None, pytest's own exit code)."""
    handover = Handover(settings)
    code = pytest.main([*suite_arguments(), *pytest_args], plugins=[handover])
    return handover.status, int(code)


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
    group.addoption("--gateway-usage-wait", type=float, default=DEFAULT_USAGE_WAIT_S,
                    help="seconds the usage cases poll system.ai_gateway.usage for the run's rows (default "
                         f"{DEFAULT_USAGE_WAIT_S:g})")
    group.addoption("--gateway-max-body-bytes", type=int, default=None,
                    help="cap on the decoded bytes of one answer (default 32 MiB; see conformance/bounds.py)")
    group.addoption("--gateway-max-consecutive-errors", type=int, default=DEFAULT_MAX_CONSECUTIVE_ERRORS,
                    help="stop the run after this many consecutive infrastructure errors (0: never; default "
                         f"{DEFAULT_MAX_CONSECUTIVE_ERRORS})")
    group.addoption("--conformance-strict", action="store_true",
                    help="count warnings (broken should/advisory rules) as failures")
    group.addoption("--conformance-reports", help="folder for run folders (default reports/)")
    group.addoption("--conformance-run-dir", help="write this run into exactly this (existing) folder")
    group.addoption("--conformance-snapshots", help="root of the shape snapshots (default: the shipped baseline "
                                                     "for the reference gateway, else ./snapshots)")
    group.addoption("--conformance-html", default="auto", help=f"HTML report: {' | '.join(HTML_MODES)} (default auto)")
    group.addoption("--conformance-spec", help="spec documents to compare with the pinned spec in the certificate")
    group.addoption("--conformance-fail-on-drift", action="store_true",
                    help="exit 1 when a response shape drifted from the baseline")


def _handover(config: pytest.Config) -> Handover | None:
    return next((p for p in config.pluginmanager.get_plugins() if isinstance(p, Handover)), None)


def _is_active(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return "conformance" in config.workerinput
    if _handover(config) is not None:
        return True
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


def _informational(config: pytest.Config) -> bool:
    """pytest asked for help, fixtures or markers: no run (and no requests to the target)."""
    option = config.option
    return any(getattr(option, name, False) for name in ("help", "version", "showfixtures",
                                                         "show_fixtures_per_test", "markers"))


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Before pytest configures: resolve the settings, start the session (reference gateway, preflight)."""
    if _informational(config) or not _is_active(config):
        return None
    from conformance.session import NAME, Session

    if hasattr(config, "workerinput"):
        given = config.workerinput["conformance"]
        config.pluginmanager.register(Session(RunSettings.from_plain(given["settings"]), worker=given), NAME)
        return None
    handover = _handover(config)
    try:
        settings = handover.settings.check() if handover is not None else from_pytest_options(config)
        _load_case_data()
    except BadInput as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        if handover is not None:
            handover.status = EXIT_BAD_INPUT
        return EXIT_BAD_INPUT
    session = Session(settings, handover)
    config.pluginmanager.register(session, NAME)
    status = session.start(config, probe=not config.option.collectonly)
    if status is not None:
        config.pluginmanager.unregister(session)
    return status


def _load_case_data() -> None:
    """Every case file read and checked now, so a broken one is bad input before the gateway starts."""
    from conformance.cases import load_cases
    from conformance.clientcases import load_client_cases
    from conformance.usage_tracking import load_usage_cases

    load_cases()
    load_client_cases()
    load_usage_cases()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expensive: sends many images or megabytes; a live run may leave it out")
    for name in [*surfaces(), *MODEL_TYPES, *STRENGTHS]:
        config.addinivalue_line("markers", f"{name}: conformance cases of {name}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The suite collected in a session where it is not active: its tests skip (the session parametrises them
    otherwise)."""
    from conformance.session import session_of

    if session_of(metafunc.config) is not None:
        return
    for fixture in ("case_item", "client_item", "usage_item"):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, [pytest.param(None, marks=pytest.mark.skip(reason="suite inactive"))])


def terminal_arguments() -> list[str]:
    """pytest's output for `conformance run`: progress only; the failures and the verdict are the session's lines
    (console.py), so nothing is said twice."""
    return ["-q", "--tb=no", "-rN"]

