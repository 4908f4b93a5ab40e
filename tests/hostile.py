"""A gateway that misbehaves on purpose, one way per server, and a harness that runs the suite against it
(tests/test_hostile.py, bench/hostile.py).

It binds 127.0.0.1 on a free port; the test that starts it stops it (`with HostileServer(mode) as server:`).
Every request gets the mode's answer, whatever its route, except the preflight's (conformance/preflight.py): its
probes, whose bodies carry an empty message, input or contents list, get the 400 a gateway answers them, and the
serving-endpoints listing a 404, so that the cases themselves meet the mode (`preflight=False`: the preflight
meets it too). Big answers are streamed from one reusable block, never built in memory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from leaks import leaks_under

MODES = ("endless-sse", "byte-per-second", "deep-600", "deep-100000", "huge", "gzip-bomb", "retry-after-huge",
         "retry-after-unparseable", "error-500", "error-501", "unavailable-503", "redirect", "echo",
         "invalid-utf8", "reset", "canned")
# the preflight's probe bodies (conformance/data/preflight.yaml): an empty list no documented request sends
PREFLIGHT_PROBE = re.compile(rb'"(messages|input|contents)"\s*:\s*\[\s*\]')
HUGE_BYTES = 300 << 20
BOMB_BYTES = 4 << 30  # inflated; about 4 MB on the wire
BLOCK = 1 << 20


def chat_completion(content: str, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-hostile", "object": "chat.completion", "created": 1, "model": "hostile",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, **extra}


def chunk(content: str) -> bytes:
    event = {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": 1, "model": "hostile",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class _GzipBomb:
    """A single gzip member inflating to BOMB_BYTES of spaces: one compressed block of BLOCK spaces after a
    full flush is the same bytes each time, so the whole is that block repeated (the trailer's CRC is computed
    only if a client reads that far)."""

    def __init__(self) -> None:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.block = deflate.compress(b" " * BLOCK) + deflate.flush(zlib.Z_FULL_FLUSH)
        again = deflate.compress(b" " * BLOCK) + deflate.flush(zlib.Z_FULL_FLUSH)
        assert again == self.block
        self.end = deflate.compress(b"{}") + deflate.flush()
        self.count = BOMB_BYTES // BLOCK
        self.header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        self.length = len(self.header) + self.count * len(self.block) + len(self.end) + 8

    def parts(self) -> Iterator[bytes]:
        yield self.header
        for _ in range(self.count):
            yield self.block
        yield self.end
        crc, spaces = 0, b" " * BLOCK  # only for a client that read all of it (4 GB of CRC: about a second)
        for _ in range(self.count):
            crc = zlib.crc32(spaces, crc)
        crc = zlib.crc32(b"{}", crc)
        yield struct.pack("<II", crc, (BOMB_BYTES + 2) & 0xFFFFFFFF)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gives up mid-answer is what the modes are for


# the modes whose lanes only wait for their deadline (an endless stream, a byte a second): test_hostile performs
# them side by side, once, in the first of their tests (one unit of work under xdist: conftest.JUDGED_TOGETHER),
# each still timed on its own. Only these: their outcome is the deadline itself, which a loaded process cannot
# change. The other modes answer (a 503, a reset, a 429) and must be answered within the 3 s deadline; six modes
# at once, official clients' builds included, once made an openai case miss it on a loaded CI machine
WAITING_MODES = ("endless-sse", "byte-per-second")


class HostileServer:
    def __init__(self, mode: str, other: str | None = None, variant: int = 1, preflight: bool = True) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.preflight = preflight  # answer the preflight as a gateway would
        self.other = other  # the redirect's other origin
        self.variant = variant  # echo: 2 adds a key and changes an enumerated value (drift with the token in it)
        self.requests: Counter[str] = Counter()  # "METHOD /path"
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._bomb = _GzipBomb() if mode == "gzip-bomb" else None
        handler = type("Handler", (_Handler,), {"hostile": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def count(self, method: str = "POST") -> int:
        with self._lock:
            return sum(n for key, n in self.requests.items() if key.startswith(method + " "))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hostile: HostileServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?")[0]
        preflight = self.hostile.preflight and (PREFLIGHT_PROBE.search(body) is not None or (
            self.command == "GET" and path == "/api/2.0/serving-endpoints"))
        with self.hostile._lock:  # the preflight's requests apart: count() is the cases'
            self.hostile.requests[f"{'PREFLIGHT ' if preflight else ''}{self.command} {path}"] += 1
        stream = "event-stream" in self.headers.get("accept", "") or "stream" in self.path.lower() \
            or re.search(rb'"stream"\s*:\s*true', body) is not None
        mode = self.hostile.mode
        try:
            if preflight and self.command == "GET":
                self._send(404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "no listing"}')
            elif preflight:
                self._send(400, b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "empty request"}')
            else:
                getattr(self, "mode_" + mode.replace("-", "_"))(stream)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up, as it should

    # --- helpers ------------------------------------------------------------------------------------------

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, payload: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self._head(status, {"Content-Type": content_type, "Content-Length": str(len(payload)), **(headers or {})})
        self.wfile.write(payload)

    def _chunked(self, status: int, content_type: str, parts: Iterator[bytes]) -> None:
        self._head(status, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})
        for part in parts:
            if self.hostile.stopping.is_set():
                break
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.flush()
        self.close_connection = True

    def _body(self, stream: bool, payload: bytes, document: bytes | None = None) -> None:
        """`payload` as an SSE event for a stream request, else `document` (or the payload) as the JSON body."""
        if stream:
            self._send(200, b"data: " + payload + b"\n\n" + b"data: [DONE]\n\n", "text/event-stream")
        else:
            self._send(200, document if document is not None else payload)

    def _error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error_code": code, "message": f"hostile {status}"}).encode(),
                   headers=headers)

    # --- the modes ----------------------------------------------------------------------------------------

    def mode_endless_sse(self, stream: bool) -> None:
        def events() -> Iterator[bytes]:
            while True:
                yield chunk("more ")
                time.sleep(0.02)

        self._chunked(200, "text/event-stream", events())

    def mode_byte_per_second(self, stream: bool) -> None:
        payload = json.dumps(chat_completion("slow")).encode()
        self._head(200, {"Content-Type": "application/json", "Content-Length": str(len(payload))})
        for byte in payload:
            if self.hostile.stopping.wait(1.0):
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
        self.close_connection = True

    def _deep(self, stream: bool, depth: int) -> None:
        nested = b"[" * depth + b"]" * depth
        self._body(stream, nested, b'{"id": "x", "choices": ' + nested + b"}")

    def mode_deep_600(self, stream: bool) -> None:
        self._deep(stream, 600)

    def mode_deep_100000(self, stream: bool) -> None:
        self._deep(stream, 100000)

    def mode_huge(self, stream: bool) -> None:
        head = b'{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": ' \
               b'"assistant", "content": "'
        tail = b'"}, "finish_reason": "stop"}]}'
        block = b"a" * BLOCK
        count = (HUGE_BYTES - len(head) - len(tail)) // BLOCK
        self._head(200, {"Content-Type": "application/json",
                         "Content-Length": str(len(head) + count * BLOCK + len(tail))})
        self.wfile.write(head)
        for _ in range(count):
            if self.hostile.stopping.is_set():
                break
            self.wfile.write(block)
        self.wfile.write(tail)

    def mode_gzip_bomb(self, stream: bool) -> None:
        bomb = self.hostile._bomb
        assert bomb is not None
        self._head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                         "Content-Length": str(bomb.length)})
        for part in bomb.parts():
            if self.hostile.stopping.is_set():
                break
            self.wfile.write(part)

    def mode_retry_after_huge(self, stream: bool) -> None:
        self._error(429, "REQUEST_LIMIT_EXCEEDED", {"Retry-After": "86400"})

    def mode_retry_after_unparseable(self, stream: bool) -> None:
        self._error(429, "REQUEST_LIMIT_EXCEEDED", {"Retry-After": "soon"})

    def mode_error_500(self, stream: bool) -> None:
        self._error(500, "INTERNAL_ERROR")

    def mode_error_501(self, stream: bool) -> None:
        self._error(501, "NOT_IMPLEMENTED")

    def mode_unavailable_503(self, stream: bool) -> None:
        self._error(503, "TEMPORARILY_UNAVAILABLE", {"Retry-After": "0"})

    def mode_redirect(self, stream: bool) -> None:
        assert self.hostile.other is not None
        self._send(307, b"", headers={"Location": self.hostile.other + self.path})

    def mode_canned(self, stream: bool) -> None:
        if stream:
            self._send(200, chunk("Hello") + b"data: [DONE]\n\n", "text/event-stream")
        else:
            self._send(200, json.dumps(chat_completion("Hello from another origin")).encode())

    def _secret(self) -> str:
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "basic":
            value = base64.b64decode(value).decode(errors="replace").partition(":")[2]
        return value or self.headers.get("x-api-key", "") or "no-credential"

    def mode_echo(self, stream: bool) -> None:
        """The credentials in body strings, a shape key, an enumerated value and the response headers."""
        secret, auth = self._secret(), self.headers.get("authorization", "")
        extra: dict[str, Any] = {secret: {"nested": secret}, "x_echo": f"Authorization: {auth}"}
        document = chat_completion(f"echo {auth} {secret}", **extra)
        document["object"] = secret if self.hostile.variant == 1 else f"{secret}-changed"
        if self.hostile.variant == 2:
            document[f"{secret}-added"] = 1
        payload = json.dumps(document).encode()
        headers = {"X-Echo": auth, f"X-Echo-{secret}": secret}
        if stream:
            event = json.dumps({"id": "c", "object": secret, "choices": [
                {"index": 0, "delta": {"content": auth}, "finish_reason": None}], secret: 1}).encode()
            self._send(200, b"data: " + event + b"\n\ndata: [DONE]\n\n", "text/event-stream", headers)
        else:
            self._send(200, payload, headers=headers)

    def mode_invalid_utf8(self, stream: bool) -> None:
        document = json.dumps(chat_completion("caf-latin1")).encode().replace(b"caf-latin1", b"caf\xe9")
        event = chunk("caf-latin1").replace(b"caf-latin1", b"caf\xe9")
        if stream:
            self._send(200, event + b"data: [DONE]\n\n", "text/event-stream")
        else:
            self._send(200, document)

    def mode_reset(self, stream: bool) -> None:
        with self.hostile._lock:
            nth = sum(self.hostile.requests.values())
        if nth % 2:  # half the time the headers and a part of the body first
            payload = json.dumps(chat_completion("cut")).encode()
            self._head(200, {"Content-Type": "application/json", "Content-Length": str(len(payload))})
            self.wfile.write(payload[:10])
            self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


# --- running the suite against it: `conformance run` in a subprocess, its process tree's memory sampled -------

TOKEN = "hostile-distinctive-secret-0123456789abcdef"
# a small selection that covers every lane: HTTP cases with and without a stream, a negative case, one case of
# each official client (the profile serves two models, so each case runs once or twice)
SELECT = ("chat-system-and-user or chat-stream-system-and-user or chat-unknown-model or client-openai-chat-stream"
          " or client-anthropic-stream or client-genai-stream or client-databricks-sdk-query"
          " or client-curl-chat-bearer")
HTTP_ONLY = "(chat-system-and-user or chat-stream-system-and-user) and not client"
PROFILE = """name: hostile
url: {url}
token_env: HOSTILE_TOKEN
models: {{claude-sonnet-4-5: claude-sonnet-4-5, gemini-3-1-pro: gemini-3-1-pro}}
"""


@dataclass
class Run:
    code: int
    wall_s: float
    peak_rss: int
    out: str
    err: str
    reports: Path
    pids: set[int] = field(default_factory=set)

    @property
    def run_dir(self) -> Path:
        """The run's folder (a partial run, or one that judged nothing, is not `latest`)."""
        folders = [p for p in self.reports.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."]
        assert len(folders) == 1, folders
        return folders[0]

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())

    def cases(self) -> list[dict[str, Any]]:
        return self.summary["cases"]

    def counts(self) -> Counter[str]:
        return Counter(c["outcome"] for c in self.cases())

    def row(self, mode: str) -> dict[str, Any]:
        try:
            outcomes = dict(self.counts())
        except (OSError, ValueError, KeyError, AssertionError):  # no run folder: nothing ran
            outcomes = {}
        return {"mode": mode, "wall_s": round(self.wall_s, 1), "peak_rss_mb": self.peak_rss >> 20,
                "exit": self.code, "outcomes": outcomes}


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        current = todo.pop()
        seen.append(current)
        todo += children(current)
    return seen


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def start_run(tmp: Path, url: str, *args: str, select: str = SELECT) -> tuple[subprocess.Popen[str], Path]:
    reports = tmp / f"reports-{len(list(tmp.glob('reports-*')))}"
    profile = tmp / "hostile.yaml"
    profile.write_text(PROFILE.format(url=url))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "GATEWAY_", "CONFORMANCE_"))
           or k == "CONFORMANCE_CACHE_DIR"}  # the session's record of valid case data (conftest), not the user's
    env.update(HOSTILE_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "conformance", "run", "--url", url, "--target", str(profile),
           "--token-env", "HOSTILE_TOKEN", "--reports", str(reports), "--snapshots", str(tmp / "snapshots"),
           "--timeout", "3", "--retries", "2", "--max-consecutive-errors", "0", "-k", select, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    return proc, reports


def watch(proc: subprocess.Popen[str], reports: Path, kill_after_s: float) -> Run:
    """Wait for the run, sampling the summed RSS of its process tree every 50 ms; killed past kill_after_s."""
    started = time.monotonic()
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s, b: b.append(s.read()), args=(stream, buf), daemon=True)
               for stream, buf in ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    peak, pids = 0, set()
    while proc.poll() is None:
        processes = tree(proc.pid)
        if time.monotonic() - started > kill_after_s:
            for pid in processes:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            break
        pids.update(processes)
        peak = max(peak, sum(rss(pid) for pid in processes))
        time.sleep(0.05)
    proc.wait()
    wall = time.monotonic() - started
    for reader in readers:
        reader.join(timeout=10)
    return Run(proc.returncode, wall, peak, "".join(out), "".join(err), reports, pids)


def leaks(run: Run, *extra: Path) -> list[str]:
    """Every form of the token in the console and in every file written (reports, snapshots), as written or
    base64-encoded (tests/leaks.py)."""
    forms = [TOKEN, base64.b64encode(f"token:{TOKEN}".encode()).decode()]
    found = [f"console: {form[:10]}..." for form in forms if form in run.out + run.err]
    return found + leaks_under(forms, run.reports, *extra)
