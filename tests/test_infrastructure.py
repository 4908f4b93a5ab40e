"""Infrastructure problems are `error`, never `failed`; an unreachable target exits 3."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Unavailable(BaseHTTPRequestHandler):
    """A gateway whose routes exist (the preflight's negative probes get a 400) but that cannot answer a request."""

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("content-length", 0)))
        if b'"messages": []' in data or b'"input": []' in data or b'"contents": []' in data:
            self._send(400, b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "empty"}')
            return
        self._send(503, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"}')

    def do_GET(self) -> None:
        self._send(404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "no listing"}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_persistent_503_is_an_error_not_a_failure(run_cli, unavailable_gateway):
    result = run_cli("run", "--url", unavailable_gateway, "--retries", "2", "-k", "chat-system-and-user or unknown")
    totals = result.summary["totals"]
    assert totals["failed"] == 0 and totals["passed"] == 0
    assert totals["errors"] == len(result.summary["cases"]) > 0
    assert all("no answer after 2 attempt(s)" in c["message"] and "HTTP 503" in c["message"]
               for c in result.summary["cases"])
    assert result.code == 3, "only infrastructure errors: exit 3"


def test_unreachable_target_exits_3(run_cli):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("run", "--url", f"http://127.0.0.1:{port}")
    assert result.code == 3
    assert "could not be reached" in result.summary["unreachable"]
    assert result.err.count("\n") == 1 and "could not be reached" in result.err and result.out == ""
    assert not (result.reports / "latest").exists(), "a run that judged nothing must not become the baseline"


def test_a_reset_at_start_up_is_retried_not_unreachable(run_cli):
    """The start-up reachability probe is a request like the others: two resets (seed 45 at a 50% fault rate
    resets the first two requests) must not end the run as 'unreachable'."""
    from conformance.gateway.faults import FaultConfig
    from conformance.gateway.server import ThreadedGateway

    with ThreadedGateway("probe-token-0123456789", faults=FaultConfig(fault_rate=0.5, seed=45)) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "-k", "chat-system-and-user and not client",
                         env={"T": "probe-token-0123456789"})
    assert "unreachable" not in result.summary
    assert result.summary["totals"]["failed"] == 0
    assert result.summary["totals"]["passed"] > 0
