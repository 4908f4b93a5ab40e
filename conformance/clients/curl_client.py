"""The documented curl commands, run as subprocesses: `curl -u token:$DATABRICKS_TOKEN` or
`-H "Authorization: Bearer $DATABRICKS_TOKEN"`.

Credentials go to curl through a pipe (`--config /dev/fd/N`), never the command line (which other users of the
machine could read) and never a file (which a kill would leave behind). curl is bounded like every lane
(conformance/bounds.py): `--max-time` is what is left of the deadline, its output is read up to the cap (curl is
killed past it), it follows no redirect (no -L) and decompresses nothing (no --compressed); the body is decoded
and judged by the same transport rules as every other lane, with the status and headers curl reports
(`-w %{json}` and `%{header_json}` on stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
from typing import Any

from conformance.bounds import EVIDENCE_BYTES, Bound, Limits, OverOwnCap, current, loads, over_cap
from conformance.clients.base import ClientContext, ClientFailure, ClientInfrastructure, wait_turn

# resolve, connect, HTTP/2, partial transfer, timeout, TLS, empty reply, send/recv, HTTP/2 stream
INFRA_EXIT_CODES = {5, 6, 7, 16, 18, 28, 35, 52, 55, 56, 92}
TIMEOUT_EXIT = 28
MAX_FILESIZE_EXIT = 63
GRACE_S = 2.0  # curl gets this long past its --max-time before it is killed
WRITE_OUT = "%{stderr}%{json}\n%{header_json}"

_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()


def _quoted(text: str) -> str:
    """A curl config string: backslash and double quote escaped (curl's --config syntax)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def unavailable() -> str | None:
    return None if shutil.which("curl") else "curl is not on PATH"


def version() -> str | None:
    if not shutil.which("curl"):
        return None
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else None


def kill_running() -> None:
    """Kill the curl processes of this process (a helper that exits with its parent leaves none behind)."""
    with _RUNNING_LOCK:
        for proc in list(_RUNNING):
            with contextlib.suppress(OSError):
                proc.kill()


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    from conformance.client import Unanswered, read_answer

    bound = current() or Bound(Limits.of(ctx.target))
    wait_turn(ctx)
    route = ctx.target.route(spec["route"])
    if route is None:
        raise ClientFailure(f"the target has no {spec['route']} route")
    url = ctx.url + route.replace("{model}", ctx.model or "")
    body = json.dumps(spec.get("data", {})).replace("{model}", ctx.model or "")
    credential = (f'user = "token:{ctx.target.token}"' if spec.get("auth", "basic") == "basic"
                  else f'header = "Authorization: Bearer {ctx.target.token}"')
    # the target profile's headers go in the same private config as the credential: a value may be a secret
    extra = [f'header = "{_quoted(f"{name}: {value}")}"'
             for name, value in ctx.target.headers_for(spec["route"]).items()]
    credential = "\n".join([credential, *extra])
    out, info, headers = _run(ctx, url, body, credential, bound)
    cap = bound.limits.max_body_bytes
    exit_code = int((info or {}).get("exitcode") or 0)
    if len(out) > cap or exit_code == MAX_FILESIZE_EXIT:  # killed past the cap, or refused by its Content-Length
        try:
            over = over_cap(out[:EVIDENCE_BYTES], max(len(out), cap + 1), len(out), [], headers, bound)
        except OverOwnCap as exc:
            raise ClientInfrastructure(str(exc)) from None
        bound.failure = over.failure
        raise ClientFailure(over.failure.finding() if over.failure else "over the cap")
    if info is None:
        raise ClientInfrastructure(bound.problem or "curl gave no account of the transfer")
    code = int(info.get("http_code") or 0)
    if exit_code == TIMEOUT_EXIT:
        bound.timed_out = True
        bound.problem = bound.timeout_text()
        raise ClientInfrastructure(f"curl exit 28: {bound.problem}")
    if exit_code in INFRA_EXIT_CODES:
        bound.problem = f"curl exit {exit_code}: {info.get('errormsg', '')}"[:300]
        raise ClientInfrastructure(bound.problem)
    if code == 0 or exit_code != 0:
        raise ClientFailure(f"curl exit {exit_code}: {str(info.get('errormsg', ''))[:200]}")
    try:
        answer = read_answer(code, headers, [out], bound, url)
    except Unanswered as exc:
        raise ClientInfrastructure(str(exc)) from None
    if answer.failure is not None:
        bound.failure = answer.failure
        raise ClientFailure(answer.failure.finding())
    if code == 429 or code >= 500:
        if code == 429:
            ctx.pacer.throttled()
        raise ClientInfrastructure(f"HTTP {code}: {answer.text[:200]}")
    ctx.pacer.succeeded()
    if code != 200:
        raise ClientFailure(f"HTTP {code}: {answer.text[:300]}")
    try:
        return loads(answer.text)
    except ValueError:
        raise ClientFailure(f"the output is not JSON: {answer.text[:300]!r}") from None


def _run(ctx: ClientContext, url: str, body: str, credential: str,
         bound: Bound) -> tuple[bytes, dict[str, Any] | None, dict[str, str]]:
    """curl's output (up to the cap + 1 byte), its -w account and the response headers; curl is killed at the
    deadline (plus a grace) or past the cap."""
    left = max(0.1, bound.remaining())
    cap = bound.limits.max_body_bytes
    reader, writer = os.pipe()
    try:
        os.write(writer, (credential + "\n").encode())  # a few bytes: the pipe holds them until curl reads
    finally:
        os.close(writer)
    cmd = ["curl", "-s", "--max-time", f"{left:.3f}", "--max-filesize", str(cap), "--config", f"/dev/fd/{reader}",
           "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-", "-w", WRITE_OUT, url]
    if not ctx.target.verify_tls:
        cmd.insert(1, "--insecure")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(reader,))
    finally:
        os.close(reader)
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        out, err = _collect(proc, body.encode(), cap, time.monotonic() + left + GRACE_S, bound)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return out, *_write_out(err)


def _collect(proc: subprocess.Popen[bytes], body: bytes, cap: int, kill_at: float,
             bound: Bound) -> tuple[bytes, bytes]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(body)
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while selector.get_map():
            left = kill_at - time.monotonic()
            if left <= 0:
                bound.timed_out = True
                bound.problem = f"curl did not end within its --max-time; {bound.timeout_text()}"
                break
            for key, _ in selector.select(timeout=left):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += data
                    if len(out) > cap:
                        return bytes(out[: cap + 1]), b""  # past the cap: curl is killed, the rest unread
                elif len(err) < 1 << 20:
                    err += data
    return bytes(out), bytes(err)


def _write_out(err: bytes) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """curl's `-w %{json}` account of the transfer and `%{header_json}` (a list of values per header)."""
    text = err.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    try:
        info, end = decoder.raw_decode(text.lstrip())
        rest = text.lstrip()[end:].lstrip()
        raw_headers = decoder.raw_decode(rest)[0] if rest else {}
    except ValueError:
        return None, {}
    headers = {str(k).lower(): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
               for k, v in (raw_headers.items() if isinstance(raw_headers, dict) else [])}
    return (info if isinstance(info, dict) else None), headers
