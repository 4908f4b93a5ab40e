"""`conformance serve`'s arguments and body, importable without the rest of the command line: where the platform
has no forkserver, the embedded gateway of a run is started as `python -m conformance.gateway`
(gateway/__main__.py), a process that needs neither the suite's configuration, its schemas nor pytest (a third of
a second of CPU to import, at each run); elsewhere it is a fork of the helpers' forkserver (server.GatewayProcess)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import NoReturn

from conformance.errors import BadInput
from conformance.reference import DEV_TOKEN, REFERENCE_TOKEN_ENV

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """Bad flags are BadInput (one line, exit 2), not argparse's usage text (the `conformance` command's too)."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(message)


def add_arguments(serve: argparse.ArgumentParser) -> None:
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
    serve.add_argument("--not-serving", action="append", default=[], metavar="MODEL",
                       help="answer as if this catalog model were not served (404, absent from the listing)")
    serve.add_argument("--no-listing", action="store_true",
                       help="no serving-endpoints listing (GET /api/2.0/serving-endpoints answers 404)")
    serve.add_argument("--token-env", metavar="NAME", default=REFERENCE_TOKEN_ENV,
                       help=f"environment variable with the token to accept (default {REFERENCE_TOKEN_ENV}; "
                            f"unset: the development token {DEV_TOKEN!r})")


def serve_command(args: argparse.Namespace) -> int:
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

    from conformance.catalog import load_catalog

    catalog = load_catalog()
    unknown = [name for name in args.not_serving if catalog.get(name) is None]
    if unknown:
        raise BadInput(f"--not-serving {unknown[0]!r} is not a catalog model (see `conformance models`)")
    not_serving = frozenset(m.name for m in map(catalog.get, args.not_serving) if m is not None)
    state = GatewayState(token=token, switches=switches, not_serving=not_serving, listing=not args.no_listing,
                         self_test=args.self_test, stream_delay_s=args.stream_delay)
    with contextlib.suppress(KeyboardInterrupt):
        serve(state, args.host, args.port, announce, faults)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m conformance.gateway ARGS`: `conformance serve ARGS`, with the same one-line errors."""
    parser = OneLineParser(prog="conformance serve", description="serve the reference gateway on 127.0.0.1")
    add_arguments(parser)
    try:
        return serve_command(parser.parse_args(argv))
    except BadInput as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
