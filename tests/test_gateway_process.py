"""The embedded gateway's process: a fork of the helpers' forkserver that answers, ends with its parent, and the
`python -m conformance.gateway` child where the platform has no forkserver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from conformance.gateway import server
from conformance.gateway.server import GatewayProcess

TOKEN = "gateway-process-token-0123456789"
CHAT = {"model": "system.ai.claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def _answers(url: str) -> int:
    return httpx.post(f"{url}/ai-gateway/mlflow/v1/chat/completions", json=CHAT, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_forked_gateway_answers_and_ends_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from conformance.gateway.server import GatewayProcess
        if __name__ == "__main__":
            gateway = GatewayProcess({TOKEN!r}).__enter__()
            print(gateway.pid, gateway.url, flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid, url = parent.stdout.readline().split()
        assert _answers(url) == 200
        assert int(pid) != parent.pid and _alive(int(pid))
    finally:
        parent.send_signal(signal.SIGKILL)  # no unwinding, no atexit: only the link's end tells the gateway
        parent.wait()
    deadline = time.monotonic() + 15
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid)), "the gateway outlived the process that started it"
    with pytest.raises(httpx.TransportError):
        _answers(url)


def test_a_gateway_is_a_forkserver_child_and_is_gone_after_exit():
    with GatewayProcess(TOKEN) as gateway:
        assert gateway.pid is not None and gateway.pid != os.getpid()
        assert _answers(str(gateway.url)) == 200
        pid = gateway.pid
    assert gateway.pid is None
    assert not _alive(pid)


def test_without_a_forkserver_the_gateway_is_its_own_interpreter(monkeypatch):
    monkeypatch.setattr(server.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with GatewayProcess(TOKEN, switches=["extra-fields"]) as gateway:
        assert gateway.pid is not None
        with open(f"/proc/{gateway.pid}/cmdline", "rb") as cmdline:
            assert b"conformance.gateway" in cmdline.read()
        assert _answers(str(gateway.url)) == 200
        refused = httpx.post(f"{gateway.url}/ai-gateway/mlflow/v1/chat/completions", timeout=30,
                             json={**CHAT, "model": "system.ai.no-such-model"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert 400 <= refused.status_code < 500 and "x_gateway" in refused.json()  # its switch is on
