"""Target-profile headers: `headers:` on every request, `surface_headers:` per surface, `${NAME}` from the
environment, credential-carrying values redacted.

Found certifying Portkey's gateway (scripts/certify_portkey.py): it picks its upstream from request headers
(x-portkey-provider, x-portkey-custom-host), different for each API, and a profile could not send any. The
gate below works the same way: it forwards a request to the base URL its routing header names, so a case
(or an official client) that sends no header, or another surface's, fails; and it echoes a secret header
back in every answer, so redaction is exercised on every path that writes evidence.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_target_profiles import write

from conformance.config import TargetOptions, merge_headers, resolve_target
from conformance.errors import BadInput
from conformance.gateway.server import ThreadedGateway

UPSTREAM_TOKEN = "gate-upstream-token-0123456789"
SECRET = "gate-config-secret-9876543210fedcba"
ROUTE_HEADER = "x-gate-upstream"
SECRET_HEADER = "x-gate-config"
PREFIX = "/gw"


class Gate(http.server.ThreadingHTTPServer):
    """POST /gw/<rest> -> <value of x-gate-upstream>/<rest>; no such header: 400 with a JSON error."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.seen: Counter[tuple[str, str]] = Counter()  # (path, routing header or "") -> requests
        self.secrets_seen: Counter[str] = Counter()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.upstream = httpx.Client(timeout=30)  # one client (and TLS context) for every forwarded request


class _GateHandler(http.server.BaseHTTPRequestHandler):
    server: Gate
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # the suite's reachability probe; no serving-endpoints listing (as Portkey)
        if self.path.split("?")[0] in ("", "/"):
            self._answer(200, b"{}", "application/json")
        else:
            self._answer(404, json.dumps({"error": {"message": "not found"}}).encode(), "application/json")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        upstream = self.headers.get(ROUTE_HEADER, "")
        self.server.seen[(self.path.split("?")[0], upstream)] += 1
        self.server.secrets_seen[self.headers.get(SECRET_HEADER, "")] += 1
        if not upstream or not self.path.startswith(PREFIX):
            self._answer(400, json.dumps({"error": {"message": f"no {ROUTE_HEADER} header"}}).encode(),
                         "application/json")
            return
        forwarded = {k: v for k, v in self.headers.items()
                     if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
        answer = self.server.upstream.post(upstream + self.path[len(PREFIX):], content=body, headers=forwarded)
        self._answer(answer.status_code, answer.content, answer.headers.get("content-type", "application/json"))

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-gate-echo", self.headers.get(SECRET_HEADER, ""))  # a header that reflects a secret
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def gate() -> Iterator[tuple[Gate, str]]:
    with ThreadedGateway(UPSTREAM_TOKEN) as upstream:
        server = Gate()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server, upstream.url
        finally:
            server.shutdown()
            server.server_close()
            server.upstream.close()


GATE_PROFILE = f"""
name: header-routed
token_env: GATE_TOKEN
headers:
  {SECRET_HEADER}: "${{GATE_SECRET}}"
routes:
  chat_completions: {PREFIX}/chat/completions
  anthropic_messages: {PREFIX}/v1/messages
  gemini_generate_content: {PREFIX}/v1beta/models/{{model}}:generateContent
  gemini_stream_generate_content: {PREFIX}/v1beta/models/{{model}}:streamGenerateContent?alt=sse
  gemini_generate_content_v1: {PREFIX}/v1/models/{{model}}:generateContent
  invocations: null
surface_headers:
  chat_completions: {{{ROUTE_HEADER}: "${{GATE_UP}}/ai-gateway/mlflow/v1"}}
  anthropic_messages: {{{ROUTE_HEADER}: "${{GATE_UP}}/ai-gateway/anthropic"}}
  gemini_generate_content: &gemini {{{ROUTE_HEADER}: "${{GATE_UP}}/ai-gateway/gemini"}}
  gemini_stream_generate_content: *gemini
  gemini_generate_content_v1: *gemini
"""

SELECTION = ("chat-multi-turn or chat-stream-multi-turn or anthropic-multi-turn or anthropic-stream-multi-turn "
             "or gemini-multi-turn or gemini-stream-multi-turn or client-openai-chat-multi-turn "
             "or client-anthropic-stream or client-genai-multi-turn or client-curl-chat-bearer "
             "or auth-bearer-chat or auth-missing-token-chat")


@pytest.fixture(scope="module")
def gated(gate, shared_run, tmp_path_factory) -> tuple[Gate, str, Any]:
    """One run through the gate, with read-ahead helpers (--concurrency 4): the HTTP cases and every official
    client on every routed surface. Both tests below read it: what the gate saw, and everything the run wrote."""
    server, upstream = gate
    profile = tmp_path_factory.mktemp("gate") / "gate.yaml"
    profile.write_text(GATE_PROFILE)
    result = shared_run("run", "--target", str(profile), "--url", server.url, "-k", SELECTION, "--concurrency", "4",
                        env={"GATE_TOKEN": UPSTREAM_TOKEN, "GATE_UP": upstream, "GATE_SECRET": SECRET})
    return server, upstream, result


def test_every_request_carries_its_surface_headers(gated):
    server, upstream, result = gated
    cases = result.summary["cases"]
    kinds = {c["id"] for c in cases}
    assert {"client-openai-chat-multi-turn", "client-anthropic-stream", "client-genai-multi-turn",
            "client-curl-chat-bearer", "anthropic-multi-turn", "gemini-stream-multi-turn"} <= kinds
    not_passed = [(c["id"], c["model"], c["outcome"], c["message"]) for c in cases if c["outcome"] != "passed"]
    assert result.code == 0 and not not_passed, not_passed
    # every request carried the routing header of its own surface, and the every-request header
    expected = {f"{PREFIX}/chat/completions": f"{upstream}/ai-gateway/mlflow/v1",
                f"{PREFIX}/v1/messages": f"{upstream}/ai-gateway/anthropic"}
    for (path, header), _ in server.seen.items():
        if not path.startswith(PREFIX):  # the preflight's probe of a default route this profile does not route
            continue
        assert header, f"{path} was requested without {ROUTE_HEADER}"
        assert header == expected.get(path, f"{upstream}/ai-gateway/gemini"), (path, header)
    assert set(server.secrets_seen) == {SECRET}
    assert sum(server.seen.values()) >= len(cases)


def test_credential_carrying_header_values_are_redacted(gated):
    server, _, result = gated
    assert result.summary["cases"] and server.secrets_seen[SECRET] > 0  # sent, echoed in every answer
    leaks = [str(p) for p in Path(result.reports).rglob("*") if p.is_file()
             and SECRET in p.read_bytes().decode("utf-8", errors="replace")]
    assert leaks == []
    assert SECRET not in result.out + result.err


def test_surface_headers_override_every_request_headers_by_name(tmp_path):
    profile = write(tmp_path / "t.yaml", "name: v\nheaders: {X-Provider: openai, x-keep: '1'}\n"
                                         "surface_headers: {anthropic_messages: {x-provider: anthropic}}\n")
    target = resolve_target(TargetOptions(target_file=profile, url="http://127.0.0.1:9"), {})
    assert target.headers_for("chat_completions") == {"X-Provider": "openai", "x-keep": "1"}
    assert target.headers_for("anthropic_messages") == {"x-provider": "anthropic", "x-keep": "1"}
    assert merge_headers({"Accept": "a"}, {"accept": "b"}) == {"accept": "b"}


@pytest.mark.parametrize(("name", "secret"), [
    ("x-portkey-api-key", True), ("x-portkey-virtual-key", True), ("x-portkey-config", True), ("x-api-key", True),
    ("X-Goog-Api-Key", True), ("x-auth-token", True), ("apikey", True), ("x-client-secret", True),
    # found certifying Portkey: every x-portkey-* name holds "key", and its routing values ("anthropic",
    # "openai", the upstream URL) were masked in every message, blotting out the evidence
    ("x-portkey-provider", False), ("x-portkey-custom-host", False), ("x-portkey-forward-headers", False),
    ("x-keyboard", False), ("monkey", False),
])
def test_credential_headers_are_told_by_whole_words_of_their_name(name, secret):
    from conformance.config import CREDENTIAL_HEADER

    assert bool(CREDENTIAL_HEADER.search(name)) is secret


def test_environment_references_are_expanded_and_credentials_become_secrets(tmp_path):
    profile = write(tmp_path / "t.yaml", "name: v\nheaders: {x-portkey-config: '{\"api_key\": \"${KEY}\"}'}\n"
                                         "surface_headers: {chat_completions: {x-custom-host: '${UP}/v1'}}\n")
    target = resolve_target(TargetOptions(target_file=profile, url="http://127.0.0.1:9"),
                            {"KEY": "sk-from-env", "UP": "http://up:1"})
    assert target.headers == {"x-portkey-config": '{"api_key": "sk-from-env"}'}
    assert target.headers_for("chat_completions")["x-custom-host"] == "http://up:1/v1"
    # the config header's value is a credential (by its name); the host is not, and stays readable as evidence
    assert target.secrets() == ['{"api_key": "sk-from-env"}']


@pytest.mark.parametrize(("text", "env", "message"), [
    ("headers: {x-a: '${UNSET_VAR}'}", {}, "needs the environment variable UNSET_VAR, which is unset"),
    ("headers: {Authorization: 'Bearer x'}", {}, "sets 'Authorization', which the suite sets itself"),
    ("auth_header: X-Key\nsurface_headers: {embeddings: {x-key: k}}", {}, "sets 'x-key', which the suite sets"),
    ("headers: {x-a: '${V}'}", {"V": "one\r\nx-injected: 1"}, "holds a control character"),
    ("headers: {'bad name': v}", {}, "is invalid"),
    ("surface_headers: {no_such_surface: {x-a: v}}", {}, "is invalid"),
    ("headers: {x-a: 1}", {}, "is invalid"),
])
def test_bad_headers_are_one_line_of_bad_input(tmp_path, text, env, message):
    profile = write(tmp_path / "t.yaml", f"name: v\n{text}\n")
    with pytest.raises(BadInput, match=message):
        resolve_target(TargetOptions(target_file=profile, url="http://127.0.0.1:9"), env)


def test_bad_headers_exit_2_from_the_cli(run_cli, tmp_path):
    profile = write(tmp_path / "t.yaml", "name: v\nheaders: {x-a: '${UNSET_VAR_FOR_CLI}'}\n")
    result = run_cli("run", "--target", profile, "--url", "http://127.0.0.1:9")
    assert result.code == 2
    assert "UNSET_VAR_FOR_CLI" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_profile_headers_on_the_wire(tmp_path):
    """The HTTP client sends them under the credential and the case's own headers."""
    from conformance.client import GatewayClient

    profile = write(tmp_path / "t.yaml", "name: v\nheaders: {x-every: e, x-case: profile}\n"
                                         "surface_headers: {embeddings: {x-surface: s}}\n")
    target = resolve_target(TargetOptions(target_file=profile, url="http://127.0.0.1:9", token_env="T"),
                            {"T": "tok"})
    sent: list[httpx.Request] = []
    client = GatewayClient(target)
    client._http = httpx.Client(transport=httpx.MockTransport(
        lambda request: sent.append(request) or httpx.Response(  # a body still to be read, as on a socket
            200, headers={"content-type": "application/json"}, stream=httpx.ByteStream(b"{}"))))
    client.send("/e", model="m", body={}, headers={"X-Case": "case"}, surface="embeddings")
    client.send("/c", model="m", body={}, surface="chat_completions", auth="none")
    first, second = sent
    assert (first.headers["x-every"], first.headers["x-surface"], first.headers["x-case"]) == ("e", "s", "case")
    assert first.headers["authorization"] == "Bearer tok"
    assert "x-surface" not in second.headers and second.headers["x-every"] == "e"
    assert "authorization" not in second.headers


def test_a_profile_without_headers_is_unchanged():
    target = resolve_target(TargetOptions(), {})
    assert target.headers == {} and target.headers_for("chat_completions") == {}
    assert target.secrets() == []
