"""Target profiles of other gateways: surfaces declared absent, the shipped LiteLLM profile and its runner.

Found certifying LiteLLM proxy (scripts/certify_litellm.py): a profile could only re-route a surface, never
say the gateway lacks it, so Databricks-only routes (/serving-endpoints/...) would have been called and
failed instead of skipped; and failure messages recorded from xdist workers began with the worker's
interpreter line ("[gw1] linux -- Python 3.11 /path/to/python").
"""

from __future__ import annotations

import importlib.util
import json
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
    certify = _certify_module()
    run_dir, out = tmp_path / "run", tmp_path / "cert"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"message": "upstream said: bad key sk-generated-123"}')
    copied = certify.write_certificate(run_dir, out, {"model_list": []}, ["sk-generated-123"])
    assert copied == ["summary.json", "litellm-config.yaml"]
    assert "sk-generated-123" not in (out / "summary.json").read_text()


def test_genai_client_cases_need_the_v1_path_the_client_posts_to(run_cli, tmp_path):
    """Found certifying LiteLLM: google-genai, given only a base URL, posts to .../v1/models/...; its cases took
    the base URL from the v1beta route and did not list gemini_generate_content.v1, so a gateway serving only
    v1beta failed them with a 405 on a path it never claimed, instead of skipping them as unsupported."""
    from conformance.clientcases import load_client_cases

    genai = [c for c in load_client_cases() if c.client["name"] == "google-genai"]
    assert genai
    for case in genai:
        assert case.client["route"] == "gemini_generate_content_v1", case.id
        assert "gemini_generate_content.v1" in case.features, case.id
    profile = write(tmp_path / "t.yaml", "name: v1beta-only\nroutes: {gemini_generate_content_v1: null}\n")
    result = run_cli("run", "--target", profile, "-k", "client-genai")
    cases = result.summary["cases"]
    assert {c["id"] for c in cases} == {c.id for c in genai}
    assert all(c["outcome"] == "skipped" for c in cases), [(c["id"], c["outcome"], c["message"]) for c in cases]
    assert all(c["message"] == "target has no route for gemini_generate_content_v1" for c in cases)
