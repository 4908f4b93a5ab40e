"""The token never appears in any report, snapshot, log, attachment or exception text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from conformance.gateway.faults import FaultConfig
from conformance.gateway.server import ThreadedGateway

TOKEN = "conformance-distinctive-secret-0123456789abcdef"
FORMS = [TOKEN, base64.b64encode(f"token:{TOKEN}".encode()).decode(),
         base64.b64encode(f"notoken:{TOKEN}".encode()).decode()]


def leaks_in(path: Path) -> list[str]:
    found = []
    for file in path.rglob("*"):
        if file.is_file():
            data = file.read_bytes().decode("utf-8", errors="replace")
            found += [f"{file}: {form[:12]}..." for form in FORMS if form in data]
    return found


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_token_is_nowhere_in_run_outputs(run_cli, auth):
    # The gateway reflects the credentials into every body and error message, and some checks fail so
    # that failure messages quote bodies: every path by which a token could be written is exercised.
    switches = ["echo-credentials", "error-body-unstructured", "usage-sum-wrong", "thinking-budget-not-validated"]
    faults = FaultConfig(fault_rate=0.2, seed=3)  # retries and infrastructure messages must not leak either
    with ThreadedGateway(TOKEN, switches, faults) as gateway:
        # the default read-ahead: requests go from helper processes (conformance/helper.py)
        result = run_cli("run", "--url", gateway.url, "--token-env", "SECRET_TOKEN", "--auth", auth,
                         "--concurrency", "8", env={"SECRET_TOKEN": TOKEN})
    assert result.code == 1  # the deviations fail and warn cases, so bodies are quoted in their messages
    assert result.summary["totals"]["failed"] > 0
    assert any("x_echo" in c["message"] or "***" in c["message"] for c in result.summary["cases"])
    assert leaks_in(result.reports) == []
    assert not any(form in result.out + result.err for form in FORMS)


def test_reference_run_token_is_nowhere(run_cli, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_REFERENCE_TOKEN", TOKEN)
    result = run_cli("run", "--deviation", "echo-credentials")
    assert result.code == 0
    assert leaks_in(result.reports) == []
    assert not any(form in result.out + result.err for form in FORMS)
