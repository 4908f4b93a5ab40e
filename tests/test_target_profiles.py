"""Target profiles of other gateways: surfaces declared absent, the shipped LiteLLM profile and its runner.

Found certifying LiteLLM proxy (scripts/certify_litellm.py): a profile could only re-route a surface, never
say the gateway lacks it, so Databricks-only routes (/serving-endpoints/...) would have been called and
failed instead of skipped; and failure messages recorded from xdist workers began with the worker's
interpreter line ("[gw1] linux -- Python 3.11 /path/to/python").
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.config import TargetOptions, load_target_profile, resolve_target
from conformance.errors import BadInput
from conformance.resources import PACKAGE_DIR

REPO = PACKAGE_DIR.parent
LITELLM_PROFILE = PACKAGE_DIR / "targets" / "litellm.yaml"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_null_route_declares_the_surface_absent(tmp_path):
    profile = write(tmp_path / "t.yaml", "name: vendor\nroutes: {chat_completions: /v1/chat/completions, "
                                         "invocations: null}\n")
    target = resolve_target(TargetOptions(target_file=profile, url="http://127.0.0.1:9"), {})
    assert target.route("chat_completions") == "/v1/chat/completions"
    assert target.route("invocations") is None
    assert target.route("embeddings") == "/ai-gateway/mlflow/v1/embeddings"  # not named: the default route


@pytest.mark.parametrize("routes", ["{chat_completions: false}", "{chat_completions: ''}", "{no_such_surface: null}"])
def test_a_route_is_a_path_or_null(tmp_path, routes):
    profile = write(tmp_path / "t.yaml", f"name: vendor\nroutes: {routes}\n")
    with pytest.raises(BadInput, match="is invalid"):
        resolve_target(TargetOptions(target_file=profile), {})


def test_cases_of_an_absent_surface_skip_with_the_reason(run_cli, tmp_path):
    profile = write(tmp_path / "t.yaml", "name: no-chat\nroutes: {chat_completions: null}\n")
    result = run_cli("run", "--target", profile, "-k", "chat-multi-turn or auth-bearer-chat")
    assert result.code == 0, result.out[-2000:]
    cases = result.summary["cases"]
    assert cases and all(c["outcome"] == "skipped" for c in cases)
    assert all(c["message"] == "target has no route for chat_completions" for c in cases)


def test_failure_messages_from_xdist_workers_carry_no_worker_header(run_cli):
    result = run_cli("run", "-n", "2", "--deviation", "role-not-assistant", "-k", "chat-truncated-max-tokens")
    failed = [c for c in result.summary["cases"] if c["outcome"] == "failed"]
    assert result.code == 1 and failed
    for case in failed:
        assert case["message"].startswith("[assistant_role]"), case["message"]
        assert "-- Python" not in case["message"]


def test_shipped_litellm_profile():
    profile = load_target_profile(str(LITELLM_PROFILE))
    target = resolve_target(TargetOptions(target_file=str(LITELLM_PROFILE), url="http://127.0.0.1:4000"), {})
    assert profile["version"]  # the release scripts/certify_litellm.py pins
    for surface in ("responses_serving_endpoints", "invocations", "gemini_generate_content_v1"):
        assert target.route(surface) is None, f"LiteLLM has no {surface} route"
    assert target.route("chat_completions") == "/v1/chat/completions"
    assert not target.claims("auth.basic")


def _certify_module():
    spec = importlib.util.spec_from_file_location("certify_litellm", REPO / "scripts" / "certify_litellm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_litellm_config_routes_every_profile_model_to_the_reference_gateway():
    certify = _certify_module()
    profile = load_target_profile(str(LITELLM_PROFILE))
    up = "http://127.0.0.1:1"

    openai_only = certify.litellm_config(profile, up, served=set())
    entries = {e["model_name"]: e for e in openai_only["model_list"]}
    assert set(entries) == set(profile["models"].values())
    for entry in entries.values():
        params = entry["litellm_params"]
        assert params["model"].startswith("openai/system.ai.")
        assert params["api_base"] == up + "/ai-gateway/mlflow/v1"
        assert params["api_key"] == f"os.environ/{certify.UPSTREAM_TOKEN_ENV}"
    assert entries[profile["models"]["gte-large-en"]]["model_info"] == {"mode": "embedding"}
    assert openai_only["general_settings"]["master_key"] == f"os.environ/{certify.MASTER_KEY_ENV}"

    native = certify.litellm_config(profile, up, served=certify.reference_routes() | {
        probe for _, _, probe in certify.NATIVE.values()})
    entries = {e["model_name"]: e["litellm_params"] for e in native["model_list"]}
    claude = entries[profile["models"]["claude-sonnet-4-5"]]
    assert claude["model"] == "anthropic/system.ai.claude-sonnet-4-5"
    assert claude["api_base"] == up + "/ai-gateway/anthropic"
    assert claude["extra_headers"] == {"Authorization": f"os.environ/{certify.UPSTREAM_AUTH_ENV}"}
    gemini = entries[profile["models"]["gemini-3-1-pro"]]
    assert gemini["model"] == "gemini/system.ai.gemini-3-1-pro"
    assert gemini["api_base"] == up + "/ai-gateway/gemini/v1beta"
    assert entries[profile["models"]["gpt-5"]]["model"] == "openai/system.ai.gpt-5"
    # Gemma is Google's, but not a Gemini model: the Gemini API would refuse it
    assert entries[profile["models"]["gemma-3-12b"]]["model"] == "openai/system.ai.gemma-3-12b"
    assert "ref-" not in json.dumps(native) and "sk-" not in json.dumps(native)  # secrets stay in the environment


def test_certificate_copy_redacts_generated_secrets(tmp_path):
    from conformance.peers import write_certificate

    run_dir, out = tmp_path / "run", tmp_path / "cert"
    run_dir.mkdir()
    out.mkdir()
    (out / "summary.md").write_text("stale: from an earlier run")
    (run_dir / "summary.json").write_text('{"message": "upstream said: bad key sk-generated-123"}')
    copied = write_certificate(run_dir, out, {"litellm-config.yaml": "key: sk-generated-123\n"},
                               ["sk-generated-123"], say=lambda _: None)
    assert copied == ["summary.json", "litellm-config.yaml"]
    assert not (out / "summary.md").exists()  # a file the run did not write is not left over from another
    for name in copied:
        assert "sk-generated-123" not in (out / name).read_text()


PORTKEY_PROFILE = PACKAGE_DIR / "targets" / "portkey.yaml"


def test_shipped_portkey_profile_routes_each_api_by_its_headers():
    up = "http://127.0.0.1:1"
    target = resolve_target(TargetOptions(target_file=str(PORTKEY_PROFILE), url="http://127.0.0.1:8787"),
                            {"PORTKEY_UPSTREAM": up, "PORTKEY_UPSTREAM_TOKEN": "tok"})
    assert load_target_profile(str(PORTKEY_PROFILE))["version"]
    assert target.token == "tok" and target.models is None  # every catalog model, by its model-service name
    host = "x-portkey-custom-host"
    assert target.headers_for("chat_completions") == {"x-portkey-provider": "openai",
                                                      host: up + "/ai-gateway/mlflow/v1"}
    assert target.headers_for("embeddings") == target.headers_for("responses_supervisor") \
        == target.headers_for("chat_completions")
    assert target.headers_for("responses_openai")[host] == up + "/ai-gateway/openai/v1"
    assert target.headers_for("anthropic_messages") == {
        "x-portkey-provider": "anthropic", host: up + "/ai-gateway/anthropic/v1",
        "x-portkey-forward-headers": "authorization"}
    for surface in ("gemini_generate_content", "gemini_stream_generate_content", "gemini_generate_content_v1"):
        assert target.headers_for(surface) == {"x-portkey-provider": "google", host: up + "/ai-gateway/gemini/v1beta"}
        assert target.route(surface).startswith("/v1/models/{model}:")  # Portkey's proxy route
    assert target.secrets() == ["tok"]  # routing values are evidence, not secrets
    for surface in ("responses_serving_endpoints", "invocations"):
        assert target.route(surface) is None
    assert not target.claims("auth.basic") and not target.claims("request_tags")


def test_shipped_portkey_profile_needs_its_upstream(tmp_path):
    with pytest.raises(BadInput, match="PORTKEY_UPSTREAM, which is unset"):
        resolve_target(TargetOptions(target_file=str(PORTKEY_PROFILE), url="http://127.0.0.1:8787"), {})


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_portkey_install_pins_the_gateway_and_the_dependency_that_breaks_it(tmp_path):
    certify = _script("certify_portkey")
    manifest = certify.manifest("1.15.2")
    assert manifest["dependencies"] == {"@portkey-ai/gateway": "1.15.2"}
    assert manifest["overrides"] == {"@hono/node-server": "1.14.1"}
    folder = tmp_path / "pk"
    for name, version in (("@portkey-ai/gateway", "1.15.2"), ("@hono/node-server", "1.19.19")):
        (folder / "node_modules" / name).mkdir(parents=True)
        (folder / "node_modules" / name / "package.json").write_text(json.dumps({"version": version}))
    assert not certify.installed_as_pinned(folder, "1.15.2")  # the unpinned dependency: install again
    (folder / "node_modules" / "@hono/node-server" / "package.json").write_text('{"version": "1.14.1"}')
    assert certify.installed_as_pinned(folder, "1.15.2")
    assert not certify.installed_as_pinned(folder, "1.16.0")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")
@pytest.mark.parametrize("call", ["listen(0, undefined, done)", "listen(0, done)", "listen({port: 0}, done)",
                                  "listen(0, '127.0.0.1', done)"])
def test_the_loopback_preload_keeps_a_node_server_off_other_interfaces(call):
    """Portkey's start-server.js names no address: Node would listen on every interface."""
    preload = REPO / "scripts" / "loopback.mjs"
    code = ("const s = require('http').createServer(); const done = () => { "
            "console.log(s.address().address); s.close(); }; s." + call)
    out = subprocess.run(["node", f"--import={preload.as_uri()}", "-e", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "127.0.0.1", out.stderr


def test_listening_addresses_read_from_proc_net(tmp_path):
    from conformance.peers import listening_addresses, only_loopback

    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(header + "   0: 0100007F:1F90 00000000:0000 0A 0 0 0 0 0 0\n"
                                           "   1: 00000000:1F91 00000000:0000 0A 0 0 0 0 0 0\n"
                                           "   2: 0100007F:1F92 0100007F:9C40 01 0 0 0 0 0 0\n")
    (tmp_path / "tcp6").write_text(header + "   0: 00000000000000000000000001000000:1F90 "
                                            "00000000000000000000000000000000:0000 0A 0 0 0 0 0 0\n"
                                            "   1: 00000000000000000000000000000000:1F93 "
                                            "00000000000000000000000000000000:0000 0A 0 0 0 0 0 0\n")
    assert listening_addresses(8080, tmp_path) == {"127.0.0.1", "::1"}
    assert only_loopback(listening_addresses(8080, tmp_path))
    assert listening_addresses(8081, tmp_path) == {"0.0.0.0"} and not only_loopback({"0.0.0.0"})
    assert listening_addresses(8083, tmp_path) == {"::"} and not only_loopback({"::"})
    assert listening_addresses(8082, tmp_path) == set()  # an established connection, not a listener
    assert listening_addresses(8080, tmp_path / "absent") is None


def test_genai_client_cases_need_the_v1_path_the_client_posts_to(run_cli, tmp_path):
    """Found certifying LiteLLM: google-genai, given only a base URL, posts to .../v1/models/...; its cases took
    the base URL from the v1beta route and did not list gemini_generate_content.v1, so a gateway serving only
    v1beta failed them with a 405 on a path it never claimed, instead of skipping them as unsupported."""
    from conformance.clientcases import load_client_cases

    genai = [c for c in load_client_cases() if c.client.name == "google-genai"]
    assert genai
    for case in genai:
        assert case.client.route == "gemini_generate_content_v1", case.id
        assert "gemini_generate_content.v1" in case.features, case.id
    profile = write(tmp_path / "t.yaml", "name: v1beta-only\nroutes: {gemini_generate_content_v1: null}\n")
    result = run_cli("run", "--target", profile, "-k", "client-genai")
    cases = result.summary["cases"]
    assert {c["id"] for c in cases} == {c.id for c in genai}
    assert all(c["outcome"] == "skipped" for c in cases), [(c["id"], c["outcome"], c["message"]) for c in cases]
    assert all(c["message"] == "target has no route for gemini_generate_content_v1" for c in cases)
