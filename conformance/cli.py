"""The `conformance` command: run the suite, serve the reference gateway, show the catalog.

Bad input gets one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from conformance import __version__
from conformance.config import TargetOptions, resolve_target
from conformance.errors import BadInput
from conformance.gateway.command import OneLineParser, serve_command
from conformance.gateway.command import add_arguments as add_serve_arguments
from conformance.settings import DEFAULT_USAGE_WAIT_S, HTML_MODES, RunSettings
from conformance.stopping import DEFAULT_MAX_CONSECUTIVE_ERRORS

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool its reader closed
EXIT_BAD_INPUT = 2
EXIT_SUITE_ERROR = 4  # the suite itself crashed: no verdict about the target


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
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
    parser = OneLineParser(prog="conformance", description="Contract conformance suite for AI gateway APIs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="run the suite against a gateway (default: the reference gateway)")
    run.add_argument("--url", help="gateway URL (else GATEWAY_URL, DATABRICKS_HOST, else the reference gateway)")
    run.add_argument("--token-env", metavar="NAME", help="env variable with the token (default DATABRICKS_TOKEN)")
    run.add_argument("--profile", metavar="NAME", help="host and token from this ~/.databrickscfg profile")
    run.add_argument("--auth", choices=("bearer", "basic"), help="auth scheme (default bearer)")
    run.add_argument("--target", metavar="FILE", help="YAML target profile (routes, models, features)")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request (default 60)")
    run.add_argument("--name-form", choices=("system.ai", "databricks"), help="one model name form on every route "
                     "(default: the form the spec shows for each route)")
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
    run.add_argument("--snapshots", metavar="DIR", help="root of the shape snapshots (default: a checkout's "
                                                        "snapshots/; installed: the shipped reference baseline, "
                                                        "else ./snapshots)")
    run.add_argument("--strict", action="store_true",
                     help="count warnings (broken should/advisory rules) as failures: such cases are recorded "
                          "failed and the exit status is 1")
    run.add_argument("--fail-on-drift", action="store_true",
                     help="exit 1 when a response shape drifted from the baseline (for nightly jobs)")
    run.add_argument("--html", choices=HTML_MODES, default="auto",
                     help="HTML report: auto (Allure when installed, else the built-in page), allure, builtin, none")
    run.add_argument("--spec", metavar="DIR", help="spec documents to compare with the pinned spec in the certificate "
                                                   "(default $CONFORMANCE_SPEC_DIR, or ../shared/spec by a checkout)")
    run.add_argument("--max-rps", type=_positive_float, default=None, metavar="R",
                     help="ceiling on requests per second, all workers together (default: learnt from 429s)")
    run.add_argument("--token-budget", type=int, default=None, metavar="N",
                     help="once N tokens are spent, skip the remaining cases that would call a model")
    run.add_argument("--usage-wait", type=_seconds, default=DEFAULT_USAGE_WAIT_S, metavar="S",
                     help="seconds the usage cases poll system.ai_gateway.usage for the run's rows (default "
                          f"{DEFAULT_USAGE_WAIT_S:g}; rows still missing are pending: see verify-usage)")
    run.add_argument("--max-body-bytes", type=_byte_size, default=None, metavar="SIZE",
                     help="cap on the decoded bytes of one answer (default 32MiB); over it: a failure "
                          "(an error when set below the default)")
    run.add_argument("--max-consecutive-errors", type=int, default=DEFAULT_MAX_CONSECUTIVE_ERRORS, metavar="N",
                     help="stop the run (exit 3, partial summary) after N consecutive infrastructure errors "
                          f"(default {DEFAULT_MAX_CONSECUTIVE_ERRORS}; 0: never)")
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")

    serve = sub.add_parser("serve", help="serve the reference gateway on 127.0.0.1")
    add_serve_arguments(serve)

    sub.add_parser("models", help="print the model catalog")

    verify = sub.add_parser("verify-usage", help="look again for the usage rows a finished run's pending usage cases "
                                                 "wait for; update its summary and certificate")
    verify.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (reports/<run>, or reports/latest)")
    verify.add_argument("--url", help="gateway URL (default: the run's own)")
    verify.add_argument("--token-env", metavar="NAME", help="env variable with the token (default DATABRICKS_TOKEN)")
    verify.add_argument("--profile", metavar="NAME", help="host and token from this ~/.databrickscfg profile")
    verify.add_argument("--auth", choices=("bearer", "basic"), help="auth scheme (default bearer)")
    verify.add_argument("--target", metavar="FILE", help="YAML target profile (its url and token_env)")
    verify.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    verify.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request (default 60)")
    verify.add_argument("--usage-wait", type=_seconds, default=DEFAULT_USAGE_WAIT_S, metavar="S",
                        help=f"seconds to poll for rows still missing (default {DEFAULT_USAGE_WAIT_S:g})")
    verify.add_argument("--html", choices=HTML_MODES, default="auto", help="as for `run` (default auto)")
    verify.add_argument("--spec", metavar="DIR", help="spec documents to digest (default ../shared/spec)")

    report = sub.add_parser("report", help="re-render summary.md, conformance-report.yaml and the HTML of a run")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (reports/<run>, or reports/latest)")
    report.add_argument("--html", choices=HTML_MODES, default="auto", help="as for `run` (default auto)")
    report.add_argument("--spec", metavar="DIR", help="spec documents to compare with the pinned spec")

    diff = sub.add_parser("diff", help="cases that regressed, recovered, appeared or vanished between two runs")
    diff.add_argument("run_a", metavar="RUN_A", help="the earlier run folder (or its summary.json)")
    diff.add_argument("run_b", metavar="RUN_B", help="the later run folder (or its summary.json)")
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")

    coverage = sub.add_parser("coverage", help="each spec section with the cases that check it")
    coverage.add_argument("--spec", metavar="DIR", help="spec documents (default: ../shared/spec by a checkout, "
                                                        "else the pinned section headings)")
    coverage.add_argument("--uncovered", action="store_true", help="list only the sections no case checks")

    certificates = sub.add_parser("certificates", help="write DIR/README.md: the certificates in DIR side by side")
    certificates.add_argument("folder", metavar="DIR", help="the certificates folder (docs/certifications)")

    sub.add_parser("html-setup", help="install the pinned Allure 3 HTML generator (npm package `allure`) "
                                      "into a per-user folder")
    return parser


def cmd_models(_: argparse.Namespace) -> int:
    from conformance.catalog import catalog_table, load_catalog

    print(catalog_table(load_catalog()))
    return 0


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The flags of `conformance run`, resolved once into the object the plugin runs from."""
    options = TargetOptions(url=args.url, token_env=args.token_env, databricks_profile=args.profile,
                            auth=args.auth, target_file=args.target, insecure=args.insecure,
                            timeout=args.timeout, name_form=args.name_form, max_body_bytes=args.max_body_bytes,
                            concurrency=args.concurrency)
    return RunSettings(
        target=resolve_target(options), switches=tuple(args.deviation), retries=args.retries,
        concurrency=args.concurrency, max_rps=args.max_rps, token_budget=args.token_budget,
        reports=Path(args.reports), snapshots=Path(args.snapshots) if args.snapshots else None, html=args.html,
        spec_dir=Path(args.spec) if args.spec else None, fail_on_drift=args.fail_on_drift, strict=args.strict,
        max_consecutive_errors=args.max_consecutive_errors, usage_wait=args.usage_wait,
        stream_delay_s=args.stream_delay,
    ).check()


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """What is left for pytest itself: selection, workers, output, snapshot recording, and `-- ARGS`."""
    from conformance.plugin import terminal_arguments

    out = terminal_arguments()
    for flag, value in (("-k", args.keyword), ("-m", args.markexpr)):
        if value:
            out += [flag, value]
    if args.snapshot_update:
        out.append("--snapshot-update")
    out += ["-n", args.workers] if args.workers != "0" else ["-p", "no:xdist"]
    return out + list(args.pytest_args)


def cmd_run(args: argparse.Namespace) -> int:
    from conformance import plugin

    settings = run_settings(args)  # bad input fails here, before any work
    status, code = plugin.run(settings, pytest_arguments(args))
    if status is not None:
        return status
    if code == 4:  # pytest's usage error (a -m expression, an unknown pytest flag): it said so in one line
        return EXIT_BAD_INPUT
    if code == 2:
        print("conformance: interrupted", file=sys.stderr)
        return 130
    print(f"conformance: error: the suite itself failed (pytest exit {code})", file=sys.stderr)
    return EXIT_SUITE_ERROR


def cmd_report(args: argparse.Namespace) -> int:
    from conformance.reporting import load_run, render_reports

    run_dir = Path(args.run_dir)
    load_run(run_dir)  # bad input before any work
    if args.spec and not Path(args.spec).is_dir():
        raise BadInput(f"--spec {args.spec}: not a folder")
    for line in render_reports(run_dir, html=args.html, spec_dir=args.spec):
        print(line)
    return 0


def cmd_verify_usage(args: argparse.Namespace) -> int:
    from conformance.reporting import load_run, render_reports
    from conformance.summary import exit_status
    from conformance.usage_tracking import verify_usage

    run_dir = Path(args.run_dir)
    summary = load_run(run_dir)  # bad input before any work
    if args.spec and not Path(args.spec).is_dir():
        raise BadInput(f"--spec {args.spec}: not a folder")
    ran_against = summary.get("target") or {}
    if ran_against.get("reference") and not args.url:
        raise BadInput(f"{run_dir} ran against the embedded reference gateway, whose usage table ended with the run "
                       "(give --url of a gateway that still holds it)")
    options = TargetOptions(url=args.url or (None if args.profile else ran_against.get("url")),
                            token_env=args.token_env, databricks_profile=args.profile, auth=args.auth,
                            target_file=args.target, insecure=args.insecure, timeout=args.timeout)
    target = resolve_target(options)
    if target.url is None:
        raise BadInput(f"{run_dir}: no gateway URL (the run recorded none; give --url)")
    summary = verify_usage(run_dir, target, args.usage_wait)
    for line in render_reports(run_dir, html=args.html, spec_dir=args.spec):
        print(line)
    return exit_status(summary)


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


def cmd_certificates(args: argparse.Namespace) -> int:
    from conformance.certificates import write_page

    page, certificates = write_page(Path(args.folder))
    missing = [c.folder for c in certificates if not c.has_analysis]
    print(f"{page}: {len(certificates)} certificate(s): " + ", ".join(c.label for c in certificates))
    if missing:
        print(f"warning: no ANALYSIS.md in {', '.join(missing)}", file=sys.stderr)
    return 0


def cmd_html_setup(_: argparse.Namespace) -> int:
    from conformance.html import install_allure

    print(install_allure())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return {"run": cmd_run, "serve": serve_command, "models": cmd_models, "report": cmd_report,
                "diff": cmd_diff, "verify-usage": cmd_verify_usage, "coverage": cmd_coverage,
                "certificates": cmd_certificates,
                "html-setup": cmd_html_setup}[args.command](args)
    except BadInput as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (`conformance diff | head`): stop quietly, as a Unix tool killed by SIGPIPE does;
        # stdout goes to /dev/null so the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
