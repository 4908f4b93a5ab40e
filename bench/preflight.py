"""How fast a wrong setup ends a run: the whole `conformance run` command, timed, against
1. the reference gateway with a wrong token (expected: exit 2),
2. a plain HTTP server, Python's static file server (expected: exit 3),
3. a port nobody listens on (expected: exit 3).

    python bench/preflight.py [--repeat 3]

Prints the exit status and the wall time of each (median of the repeats), interpreter start-up included.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conformance.gateway.server import ThreadedGateway

TOKEN = "bench-preflight-token-0123456789"


@contextmanager
def reference() -> Iterator[str]:
    with ThreadedGateway(TOKEN) as gateway:
        yield gateway.url


@contextmanager
def plain_http(folder: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def nobody() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


def timed(url: str, token: str, folder: Path) -> tuple[int, float, str]:
    command = shutil.which("conformance") or str(Path(sys.executable).with_name("conformance"))
    env = {**os.environ, "BENCH_TOKEN": token}
    started = time.monotonic()
    done = subprocess.run([command, "run", "--url", url, "--token-env", "BENCH_TOKEN", "--reports",
                           str(folder / "reports")], capture_output=True, text=True, env=env, timeout=600)
    return done.returncode, time.monotonic() - started, done.stderr.strip().splitlines()[-1:][0] if done.stderr else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenarios: list[tuple[str, Callable[[], object], str]] = [
            ("wrong token (reference gateway)", reference, "wrong-token"),
            ("plain HTTP server", lambda: plain_http(folder), TOKEN),
            ("nothing listening", nobody, TOKEN),
        ]
        for label, make, token in scenarios:
            results = []
            for _ in range(max(1, args.repeat)):
                with make() as url:  # type: ignore[attr-defined]
                    results.append(timed(url, token, folder))
            codes = {code for code, _, _ in results}
            median = statistics.median(seconds for _, seconds, _ in results)
            print(f"{label:34} exit {','.join(map(str, sorted(codes)))}  {median:5.2f} s  ({results[-1][2]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
