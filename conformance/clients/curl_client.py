"""The documented curl commands, run as subprocesses: `curl -u token:$DATABRICKS_TOKEN` or
`-H "Authorization: Bearer $DATABRICKS_TOKEN"`. Credentials go through a private config file, never the
command line (which other users of the machine could read)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from conformance.clients.base import ClientContext, ClientFailure, ClientInfrastructure

# resolve, connect, HTTP/2, partial transfer, timeout, TLS, empty reply, send/recv, HTTP/2 stream
INFRA_EXIT_CODES = {5, 6, 7, 16, 18, 28, 35, 52, 55, 56, 92}


def unavailable() -> str | None:
    return None if shutil.which("curl") else "curl is not on PATH"


def version() -> str | None:
    if not shutil.which("curl"):
        return None
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else None


def invoke(ctx: ClientContext, spec: dict[str, Any]) -> Any:
    ctx.pacer.wait_turn()
    route = ctx.target.route(spec["route"])
    if route is None:
        raise ClientFailure(f"the target has no {spec['route']} route")
    url = ctx.url + route.replace("{model}", ctx.model or "")
    body = json.dumps(spec.get("data", {})).replace("{model}", ctx.model or "")
    credential = (f'user = "token:{ctx.target.token}"' if spec.get("auth", "basic") == "basic"
                  else f'header = "Authorization: Bearer {ctx.target.token}"')
    with tempfile.NamedTemporaryFile("w", suffix=".curlrc", delete=False) as cfg:
        os.chmod(cfg.name, 0o600)
        cfg.write(credential + "\n")
    try:
        cmd = ["curl", "-sS", "--max-time", str(ctx.target.timeout), "--config", cfg.name, "-X", "POST",
               "-H", "Content-Type: application/json", "--data-binary", "@-", "-w", "\n%{http_code}", url]
        if not ctx.target.verify_tls:
            cmd.insert(1, "--insecure")
        proc = subprocess.run(cmd, input=body, capture_output=True, text=True, timeout=ctx.target.timeout + 10)
    finally:
        os.unlink(cfg.name)
    if proc.returncode in INFRA_EXIT_CODES:
        raise ClientInfrastructure(f"curl exit {proc.returncode}: {proc.stderr.strip()[:200]}")
    if proc.returncode != 0:
        raise ClientFailure(f"curl exit {proc.returncode}: {proc.stderr.strip()[:200]}")
    text, _, status = proc.stdout.rpartition("\n")
    code = int(status or 0)
    if code == 429 or code >= 500:
        ctx.pacer.throttled() if code == 429 else None
        raise ClientInfrastructure(f"HTTP {code}: {text[:200]}")
    ctx.pacer.succeeded()
    if code != 200:
        raise ClientFailure(f"HTTP {code}: {text[:300]}")
    try:
        return json.loads(text)
    except ValueError:
        raise ClientFailure(f"the output is not JSON: {text[:300]!r}") from None
