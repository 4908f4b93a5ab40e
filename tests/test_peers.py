"""conformance/peers.py, what every certify script shares, end to end with a stand-in gateway.

The stand-in is the reference gateway itself, started by `start` as the gateway under certification would be
(its own process group, a free loopback port, a generated credential): no npm, no pip, a few cases.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from conformance import peers
from conformance.resources import PACKAGE_DIR

REPO = PACKAGE_DIR.parent
TOKEN_ENV = "SELFPEER_CONFORMANCE_TOKEN"


def profile(tmp_path: Path, version: str = "0.0.1") -> Path:
    path = tmp_path / "selfpeer.yaml"
    path.write_text(f"name: selfpeer\nversion: '{version}'\ntoken_env: {TOKEN_ENV}\n"
                    "features: [chat_completions, auth.bearer, errors.json]\n")
    return path


def stand_in(tmp_path: Path, seen: dict) -> peers.PeerGateway:
    @contextlib.contextmanager
    def start(launch: peers.Launch) -> Iterator[peers.Started]:
        own_key = "peer-key-" + launch.upstream_token[-12:]  # a secret this gateway generates
        launch.secrets.append(own_key)
        port = peers.free_port()
        url = f"http://127.0.0.1:{port}"
        env = peers.clean_environment({TOKEN_ENV: own_key})
        cmd = [sys.executable, "-m", "conformance", "serve", "--port", str(port), "--token-env", TOKEN_ENV]
        log = launch.workdir / "peer.log"
        with peers.gateway_process("selfpeer", cmd, env, log, url + "/_reference/stats", launch.secrets,
                                   launch.say):
            seen.update(port=port, upstream=launch.upstream, version=launch.version)
            yield peers.Started(url=url, token_env=TOKEN_ENV, env=env, log=log,
                                files={"selfpeer-config.yaml": f"upstream: {launch.upstream}\nkey: {own_key}\n"})

    return peers.PeerGateway(name="selfpeer", profile=profile(tmp_path), default_env=tmp_path / "env",
                             install=lambda folder, version, say: folder, start=start)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_certification_end_to_end(tmp_path, capsys):
    seen: dict = {}
    out, reports = tmp_path / "certs", tmp_path / "reports"
    code = peers.certify_main(stand_in(tmp_path, seen), ["--out", str(out), "--reports", str(reports), "--",
                                                         "-k", "chat-multi-turn", "--html", "none"], repo=REPO)
    printed = capsys.readouterr().out
    assert code == 0, printed[-2000:]
    assert seen["version"] == "0.0.1" and seen["upstream"].startswith("http://127.0.0.1:")
    assert not listening(seen["port"])  # the gateway was stopped (and the reference gateway with it)
    cert = out / "selfpeer-0.0.1"
    names = sorted(p.name for p in cert.iterdir())
    assert names == ["certification.yaml", "conformance-report.yaml", "selfpeer-config.yaml", "summary.json",
                     "summary.md"]
    record = yaml.safe_load((cert / "certification.yaml").read_text())
    assert record["gateway"] == "selfpeer" and record["version"] == "0.0.1"
    assert record["suite"].get("commit") or record["suite"].get("note")
    assert record["command"] == "python scripts/certify_selfpeer.py -- -k chat-multi-turn --html none"
    assert record["upstream"] == {"stream_delay_s": peers.UPSTREAM_STREAM_DELAY_S}
    config = (cert / "selfpeer-config.yaml").read_text()
    assert "peer-key-" not in config and "[REDACTED]" in config  # a generated secret never reaches a certificate
    assert "verdict of selfpeer 0.0.1:" in printed and "listening on 127.0.0.1 only" in printed
    assert "peer-key-" not in printed
    for name in ("summary.json", "conformance-report.yaml"):  # no path of the machine that made it
        text = (cert / name).read_text()
        assert str(REPO.resolve()) not in text and str(REPO.resolve().parent) + "/" not in text, name


def test_the_upstream_streams_at_a_models_pace():
    """The upstream `certify_main` starts writes a stream token by token at UPSTREAM_STREAM_DELAY_S, not at once
    (unpaced, 40 words arrive within a few milliseconds)."""
    said: list[str] = []
    words, arrivals = 40, []
    body = {"model": "system.ai.claude-sonnet-4-5", "stream": True, "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Say something, in {words} words."}]}
    with peers.reference_upstream("ref-test-token", said.append) as url, \
            httpx.stream("POST", f"{url}/ai-gateway/mlflow/v1/chat/completions", json=body, timeout=30,
                         headers={"Authorization": "Bearer ref-test-token"}) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    arrivals.append((time.monotonic(), len(delta.split())))
    assert any(f"streaming at {peers.UPSTREAM_STREAM_DELAY_S:g} s a token" in line for line in said)
    assert sum(n for _, n in arrivals) == words and len(arrivals) >= 8
    made = (words - arrivals[0][1]) * peers.UPSTREAM_STREAM_DELAY_S  # the tokens after the first event's
    assert arrivals[-1][0] - arrivals[0][0] >= made / 2  # half: the client may read the first event late


def test_the_upstream_pace_lets_every_incremental_stream_case_be_judged():
    """Each case streaming_incremental judges asks for N words; at the upstream's pace they take longer than the
    case's min_duration_s on their own, so the case is judged through a gateway that adds no time."""
    cases = yaml.safe_load((PACKAGE_DIR / "cases" / "behaviour.yaml").read_text())["cases"]
    judged = [c for c in cases if "streaming_incremental" in c.get("expect", {}).get("checks", [])]
    assert len(judged) == 4
    for case in judged:
        args = case["expect"]["check_args"]["streaming_incremental"]
        asked = [int(n) for n in re.findall(r"in (\d+) words", json.dumps(case["request"]["body"]))]
        assert asked, case["id"]
        assert asked[-1] * peers.UPSTREAM_STREAM_DELAY_S > 1.2 * args["min_duration_s"], case["id"]


def test_portable_paths():
    repo = Path("/w/wt")
    text = '"dir": "/w/wt/snapshots/x", path: /w/shared/spec, url: http://h/w/wt/x, /w/wt2/y'
    assert peers.portable(text, repo) == '"dir": "snapshots/x", path: ../shared/spec, url: http://h/w/wt/x, ../wt2/y'


def test_a_gateway_that_does_not_start_is_exit_3_and_stops_the_upstream(tmp_path, capsys):
    seen: dict = {}

    @contextlib.contextmanager
    def start(launch: peers.Launch) -> Iterator[peers.Started]:
        seen["upstream"] = launch.upstream
        cmd = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(7)"]
        with peers.gateway_process("broken", cmd, peers.clean_environment(), launch.workdir / "log",
                                   "http://127.0.0.1:9/", launch.secrets, launch.say):
            yield peers.Started(url="", token_env="X", env={}, log=launch.workdir / "log")  # never reached

    peer = peers.PeerGateway(name="broken", profile=profile(tmp_path), default_env=tmp_path,
                             install=lambda folder, version, say: folder, start=start)
    assert peers.certify_main(peer, ["--out", str(tmp_path / "certs")], repo=REPO) == 3
    err = capsys.readouterr().err
    assert "broken exited with status 7 before it was ready" in err and "boom: bad config" in err
    port = int(seen["upstream"].rsplit(":", 1)[1])
    assert not listening(port)
    assert not (tmp_path / "certs").exists()


@pytest.mark.parametrize("text, message", [("name: selfpeer\n", "has no version to pin"),
                                           ("name: [x]\n", "is invalid")])
def test_a_bad_profile_is_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    peer = peers.PeerGateway(name="selfpeer", profile=path, default_env=tmp_path,
                             install=lambda folder, version, say: pytest.fail("installed on bad input"),
                             start=lambda launch: pytest.fail("started on bad input"))
    assert peers.certify_main(peer, [], repo=REPO) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
