"""The `conformance` command: run the suite, serve the reference gateway, show the catalog.

Bad input gets one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from conformance import __version__
from conformance.config import REFERENCE_TOKEN_ENV, TargetOptions, resolve_target
from conformance.errors import BadInput
from conformance.resources import SUITE_DIR
from conformance.stopping import DEFAULT_MAX_CONSECUTIVE_ERRORS

EXIT_BAD_INPUT = 2
EXIT_SUITE_ERROR = 4  # the suite itself crashed: no verdict about the target
DEV_TOKEN = "reference-token"
HTML_MODES = ("auto", "allure", "builtin", "none")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadInput(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)


def _byte_size(text: str) -> int:
    """65536, 64K, 64KiB, 32M, 32MiB, 1G (powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size in bytes (e.g. 65536, 64K, 32MiB): {text!r}")
    unit = (match.group(2) or "B")[0].upper()
    return int(match.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


def _workers(text: str) -> str:
    if text == "auto" or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"-n takes a number of workers or 'auto', not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conformance", description="Contract conformance suite for AI gateway APIs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the suite against a gateway (default: the reference gateway)")
    run.add_argument("--url", help="gateway URL (else GATEWAY_URL, DATABRICKS_HOST, else the reference gateway)")
    run.add_argument("--token-env", metavar="NAME", help="env variable with the token (default DATABRICKS_TOKEN)")
    run.add_argument("--profile", metavar="NAME", help="host and token from this ~/.databrickscfg profile")
    run.add_argument("--auth", choices=("bearer", "basic"), help="auth scheme (default bearer)")
    run.add_argument("--target", metavar="FILE", help="YAML target profile (routes, models, features)")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request (default 60)")
    run.add_argument("--name-form", choices=("system.ai", "databricks"), help="model name form to send")
    run.add_argument("-k", dest="keyword", metavar="EXPR", help="only cases matching this pytest -k expression")
    run.add_argument("-m", dest="markexpr", metavar="MARKEXPR", help="only cases matching this marker expression")
    run.add_argument("-n", dest="workers", type=_workers, default="0",
                     help="pytest-xdist worker processes (default 0: one process, requests read ahead concurrently)")
    run.add_argument("--concurrency", type=int, default=8, metavar="N",
                     help="requests in flight at once within a process (default 8; 1 = one after another)")
    run.add_argument("--reports", metavar="DIR", default="reports", help="where run folders go (default reports/)")
    run.add_argument("--deviation", action="append", default=[], metavar="NAME",
                     help="reference gateway only: turn on a switch (see `conformance serve --list-deviations`)")
    run.add_argument("--retries", type=int, default=5, help="attempts per request for transient answers (default 5)")
    run.add_argument("--stream-delay", type=float, default=0.0, metavar="S",
                     help="reference gateway only: stream at S seconds per token, as a model does (default 0: at "
                          "once), so the incremental-stream cases have something to measure")
    run.add_argument("--snapshot-update", action="store_true",
                     help="record the shape snapshots of this target as its new baseline")
    run.add_argument("--snapshots", metavar="DIR", help="root of the shape snapshots (default: snapshots/)")
    run.add_argument("--strict", action="store_true",
                     help="count warnings (broken should/advisory rules) as failures: such cases are recorded "
                          "failed and the exit status is 1")
    run.add_argument("--fail-on-drift", action="store_true",
                     help="exit 1 when a response shape drifted from the baseline (for nightly jobs)")
    run.add_argument("--html", choices=HTML_MODES, default="auto",
                     help="HTML report: auto (Allure when installed, else the built-in page), allure, builtin, none")
    run.add_argument("--spec", metavar="DIR", help="spec documents to digest in the certificate "
                                                   "(default ../shared/spec or $CONFORMANCE_SPEC_DIR)")
    run.add_argument("--max-rps", type=_positive_float, default=None, metavar="R",
                     help="ceiling on requests per second, all workers together (default: learnt from 429s)")
    run.add_argument("--token-budget", type=int, default=None, metavar="N",
                     help="once N tokens are spent, skip the remaining cases that would call a model")
    run.add_argument("--max-body-bytes", type=_byte_size, default=None, metavar="SIZE",
                     help="cap on the decoded bytes of one answer (default 32MiB); over it: a failure "
                          "(an error when set below the default)")
    run.add_argument("--max-consecutive-errors", type=int, default=DEFAULT_MAX_CONSECUTIVE_ERRORS, metavar="N",
                     help="stop the run (exit 3, partial summary) after N consecutive infrastructure errors "
                          f"(default {DEFAULT_MAX_CONSECUTIVE_ERRORS}; 0: never)")
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")

    serve = sub.add_parser("serve", help="serve the reference gateway on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--deviation", action="append", default=[], metavar="NAME", help="turn on a switch")
    serve.add_argument("--list-deviations", action="store_true", help="list the switches and exit")
    serve.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)  # gateway/selftest.py
    serve.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds added to every answer")
    serve.add_argument("--rate-limit", type=float, default=None, metavar="R",
                       help="requests per second; beyond it 429 with Retry-After")
    serve.add_argument("--faults", type=float, default=0.0, metavar="F",
                       help="fraction of requests answered with a 503, a reset or a cut stream")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault choice (deterministic runs)")
    serve.add_argument("--stream-delay", type=float, default=0.0, metavar="S",
                       help="seconds per token between the events of every stream, as a model generates them "
                            "(default 0: as fast as possible)")
    serve.add_argument("--token-env", metavar="NAME", default=REFERENCE_TOKEN_ENV,
                       help=f"environment variable with the token to accept (default {REFERENCE_TOKEN_ENV}; "
                            f"unset: the development token {DEV_TOKEN!r})")

    sub.add_parser("models", help="print the model catalog")

    report = sub.add_parser("report", help="re-render summary.md, conformance-report.yaml and the HTML of a run")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (reports/<run>, or reports/latest)")
    report.add_argument("--html", choices=HTML_MODES, default="auto", help="as for `run` (default auto)")
    report.add_argument("--spec", metavar="DIR", help="spec documents to digest (default ../shared/spec)")

    diff = sub.add_parser("diff", help="cases that regressed, recovered, appeared or vanished between two runs")
    diff.add_argument("run_a", metavar="RUN_A", help="the earlier run folder (or its summary.json)")
    diff.add_argument("run_b", metavar="RUN_B", help="the later run folder (or its summary.json)")
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")

    coverage = sub.add_parser("coverage", help="each spec section with the cases that check it")
    coverage.add_argument("--spec", metavar="DIR", help="spec documents (default ../shared/spec)")
    coverage.add_argument("--uncovered", action="store_true", help="list only the sections no case checks")

    sub.add_parser("html-setup", help="install the Allure 3 HTML generator (npm package `allure`) "
                                      "into a project-local folder")
    return parser


def cmd_models(_: argparse.Namespace) -> int:
    from conformance.catalog import catalog_table, load_catalog

    print(catalog_table(load_catalog()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from conformance.gateway import behaviours

    if args.list_deviations:
        print(behaviours.listing())
        return 0
    switches = behaviours.check_names(args.deviation)
    if not 0 <= args.port <= 65535:
        raise BadInput(f"--port must be 0..65535, not {args.port}")
    if args.latency < 0 or not 0 <= args.faults <= 1 or (args.rate_limit is not None and args.rate_limit <= 0):
        raise BadInput("--latency must be >= 0, --faults within 0..1, --rate-limit > 0")
    if not 0 <= args.stream_delay <= 10:
        raise BadInput("--stream-delay must be within 0..10 seconds per token")
    from conformance.gateway.faults import FaultConfig

    faults = FaultConfig(args.latency, args.rate_limit, args.faults, args.seed)
    token = os.environ.get(args.token_env)
    if not token:
        print(f"conformance serve: ${args.token_env} is unset; accepting the development token", file=sys.stderr)
        token = DEV_TOKEN
    from conformance.gateway.common import GatewayState
    from conformance.gateway.server import serve

    def announce(line: str) -> None:
        print(line, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        state = GatewayState(token=token, switches=switches, self_test=args.self_test,
                             stream_delay_s=args.stream_delay)
        serve(state, args.host, args.port, announce, faults)
    return 0


# pytest plugins a conformance run has no use for (no log capture, Python warnings or thread exceptions to
# report about the suite's own code); their per-test wrappers were a quarter of the pytest process's CPU
LEAN_PLUGINS = ("-p", "no:logging", "-p", "no:warnings", "-p", "no:unraisableexception", "-p", "no:threadexception")


def pytest_arguments(args: argparse.Namespace, run_dir: Path) -> list[str]:
    out = [str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR),
           "-p", "no:cacheprovider", *LEAN_PLUGINS, "-q", "-rfE", "--conformance-run-dir", str(run_dir),
           "--gateway-timeout", str(args.timeout), "--gateway-retries", str(args.retries)]
    for flag, value in (("--gateway-url", args.url), ("--gateway-token-env", args.token_env),
                        ("--gateway-profile", args.profile), ("--gateway-auth", args.auth),
                        ("--gateway-target", args.target), ("--gateway-name-form", args.name_form),
                        ("-k", args.keyword), ("-m", args.markexpr)):
        if value:
            out += [flag, value]
    if args.insecure:
        out.append("--gateway-insecure")
    if args.strict:
        out.append("--conformance-strict")
    out += ["--gateway-concurrency", str(args.concurrency)]
    if args.max_rps:
        out += ["--gateway-max-rps", str(args.max_rps)]
    if args.token_budget is not None:
        out += ["--gateway-token-budget", str(args.token_budget)]
    if args.max_body_bytes is not None:
        out += ["--gateway-max-body-bytes", str(args.max_body_bytes)]
    out += ["--gateway-max-consecutive-errors", str(args.max_consecutive_errors)]
    for name in args.deviation:
        out += ["--gateway-deviation", name]
    if args.stream_delay:
        out += ["--gateway-stream-delay", str(args.stream_delay)]
    if args.snapshot_update:
        out.append("--snapshot-update")
    if args.snapshots:
        out += ["--conformance-snapshots", args.snapshots]
    if args.workers != "0":
        out += ["-n", args.workers]
    else:
        out += ["-p", "no:xdist"]
    return out + list(args.pytest_args)


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from conformance.gateway import behaviours
    from conformance.summary import exit_status, new_run_dir

    if args.retries < 1:
        raise BadInput("--retries must be at least 1")
    if args.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if args.spec and not Path(args.spec).is_dir():
        raise BadInput(f"--spec {args.spec}: not a folder")
    if args.token_budget is not None and args.token_budget < 0:
        raise BadInput("--token-budget must be >= 0")
    if args.max_consecutive_errors < 0:
        raise BadInput("--max-consecutive-errors must be >= 0 (0: never stop)")
    options = TargetOptions(url=args.url, token_env=args.token_env, databricks_profile=args.profile,
                            auth=args.auth, target_file=args.target, insecure=args.insecure,
                            timeout=args.timeout, name_form=args.name_form, max_body_bytes=args.max_body_bytes)
    target = resolve_target(options)  # bad input fails here, before any work
    behaviours.check_names(args.deviation)
    if args.deviation and not target.reference:
        raise BadInput("--deviation applies to the reference gateway only (no --url)")
    if args.stream_delay and (not target.reference or not 0 < args.stream_delay <= 10):
        raise BadInput("--stream-delay applies to the reference gateway only (no --url), within 0..10 s per token")
    run_dir = new_run_dir(Path(args.reports))
    code = pytest.main(pytest_arguments(args, run_dir))
    summary_path = run_dir / "summary.json"
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_BAD_INPUT
    if not summary_path.exists():
        print(f"conformance: error: the run wrote no summary (pytest exit {int(code)})", file=sys.stderr)
        return EXIT_SUITE_ERROR
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if summary.get("unreachable"):
        return 3
    stopped = _stopped_early(summary, run_dir, args)
    if stopped is not None:
        return stopped
    if code == pytest.ExitCode.INTERNAL_ERROR:
        print("conformance: error: the suite itself failed (pytest internal error)", file=sys.stderr)
        return EXIT_SUITE_ERROR
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or not summary["cases"]:
        print("conformance: error: no case selected (check -k / -m / the target's models)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from conformance.reporting import render_reports

    for line in render_reports(run_dir, html=args.html, spec_dir=args.spec):
        print(line)
    status = exit_status(summary)
    if status == 0 and args.fail_on_drift and summary["totals"].get("drift"):
        print(f"conformance: {summary['totals']['drift']} case(s) drifted from the snapshot baseline",
              file=sys.stderr)
        return 1
    return status


def _stopped_early(summary: dict[str, object], run_dir: Path, args: argparse.Namespace) -> int | None:
    """A run ended by a signal (exit 128 + its number) or by the circuit breaker (exit 3): the partial summary
    is rendered (no HTML after a signal: a terminating process should end quickly) and the reason said once."""
    from conformance.reporting import render_reports

    signal_name, aborted = summary.get("interrupted"), summary.get("aborted")
    if not signal_name and not aborted:
        return None
    import signal

    html = "none" if signal_name else args.html
    for line in render_reports(run_dir, html=html, spec_dir=args.spec):
        print(line)
    if signal_name:
        print(f"conformance: interrupted by {signal_name}: partial summary in {run_dir}", file=sys.stderr)
        return 128 + int(getattr(signal, str(signal_name), signal.SIGTERM))
    print(f"conformance: {aborted}", file=sys.stderr)
    return 3


def cmd_report(args: argparse.Namespace) -> int:
    from conformance.reporting import load_run, render_reports

    run_dir = Path(args.run_dir)
    load_run(run_dir)  # bad input before any work
    if args.spec and not Path(args.spec).is_dir():
        raise BadInput(f"--spec {args.spec}: not a folder")
    for line in render_reports(run_dir, html=args.html, spec_dir=args.spec):
        print(line)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from conformance.diff import compare, render
    from conformance.reporting import load_run

    result = compare(load_run(Path(args.run_a)), load_run(Path(args.run_b)))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if result["regressed"] else 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from conformance.coverage import coverage, render, spec_dir

    folder = spec_dir(args.spec)
    print(render(coverage(folder), uncovered_only=args.uncovered))
    return 0


def cmd_html_setup(_: argparse.Namespace) -> int:
    from conformance.html import install_allure

    print(install_allure())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return {"run": cmd_run, "serve": cmd_serve, "models": cmd_models, "report": cmd_report,
                "diff": cmd_diff, "coverage": cmd_coverage, "html-setup": cmd_html_setup}[args.command](args)
    except BadInput as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
