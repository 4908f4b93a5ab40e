"""Target configuration: precedence (flag > environment > profile file > defaults) and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.config import TargetOptions, resolve_target
from conformance.errors import BadInput

ENV = {"GATEWAY_URL": "https://env-gateway.example.com", "DATABRICKS_HOST": "https://host.example.com",
       "DATABRICKS_TOKEN": "tok-env"}


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_no_url_anywhere_means_the_reference_gateway():
    target = resolve_target(TargetOptions(), environ={})
    assert target.reference and target.url is None and target.name == "reference"


def test_flag_beats_environment_beats_profile_file(tmp_path):
    profile = write(tmp_path / "t.yaml", "name: vendor\nurl: https://file.example.com\ntoken_env: VENDOR_TOKEN\n")
    env = {**ENV, "VENDOR_TOKEN": "tok-vendor"}
    assert resolve_target(TargetOptions(url="https://flag.example.com/"), env).url == "https://flag.example.com"
    assert resolve_target(TargetOptions(target_file=profile), env).url == "https://env-gateway.example.com"
    no_gateway_url = {k: v for k, v in env.items() if k != "GATEWAY_URL"}
    assert resolve_target(TargetOptions(target_file=profile), no_gateway_url).url == "https://host.example.com"
    only_file = {"VENDOR_TOKEN": "tok-vendor"}
    target = resolve_target(TargetOptions(target_file=profile), only_file)
    assert (target.url, target.token, target.name) == ("https://file.example.com", "tok-vendor", "vendor")


def test_token_env_flag_and_auth_scheme():
    env = {**ENV, "OTHER": "tok-other"}
    target = resolve_target(TargetOptions(token_env="OTHER", auth="basic"), env)
    assert target.token == "tok-other" and target.auth == "basic"
    assert resolve_target(TargetOptions(), env).auth == "bearer"


def test_databrickscfg_profile(tmp_path):
    cfg = write(tmp_path / "cfg", "[DEFAULT]\nhost = https://default.example.com\ntoken = tok-default\n"
                                  "[dev]\nhost = https://dev.example.com\ntoken = tok-dev\n")
    env = {**ENV, "DATABRICKS_CONFIG_FILE": cfg}
    target = resolve_target(TargetOptions(databricks_profile="dev"), env)
    assert (target.url, target.token) == ("https://dev.example.com", "tok-dev")
    assert resolve_target(TargetOptions(databricks_profile="DEFAULT"), env).token == "tok-default"
    flagged = resolve_target(TargetOptions(databricks_profile="dev", url="https://flag.example.com"), env)
    assert flagged.url == "https://flag.example.com"


def test_target_profile_routes_models_features(tmp_path):
    profile = write(tmp_path / "t.yaml", """
name: litellm
version: "1.2.3"
url: http://127.0.0.1:4000
routes: {chat_completions: /v1/chat/completions}
models: {claude-sonnet-4-5: anthropic-sonnet}
features: [chat_completions]
""")
    target = resolve_target(TargetOptions(target_file=profile), {})
    assert target.route("chat_completions") == "/v1/chat/completions"
    assert target.route("embeddings") == "/ai-gateway/mlflow/v1/embeddings"
    assert target.served_name("claude-sonnet-4-5") == "anthropic-sonnet"
    assert target.served_name("gpt-5") is None
    assert target.claims("chat_completions") and not target.claims("chat_completions.streaming")
    assert target.token is None  # local URL: a token is optional


@pytest.mark.parametrize(("profile_text", "message"), [
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("name: x\nroutes: {chat_completions: no-leading-slash}\n", "is invalid"),
    ("name: x\nbogus_key: 1\n", "is invalid"),
    ("name: x\nmodels: {no-such-model: foo}\n", "not a catalog model"),
    ("name: x\nfeatures: [teleportation]\n", "unknown feature"),
])
def test_malformed_target_profile_is_one_clear_error(tmp_path, profile_text, message):
    path = write(tmp_path / "bad.yaml", profile_text)
    with pytest.raises(BadInput, match=message):
        resolve_target(TargetOptions(target_file=path), {})


def test_non_local_url_without_token_is_refused():
    with pytest.raises(BadInput, match="no token"):
        resolve_target(TargetOptions(url="https://remote.example.com"), {})
    assert resolve_target(TargetOptions(url="http://localhost:9"), {}).token is None


@pytest.mark.parametrize("argv", [
    ["run", "--auth", "digest"],
    ["run", "--timeout", "-1"],
    ["run", "--url", "ftp://example.com"],
    ["run", "--url", "https://remote.example.com"],
    ["run", "--target", "/no/such/profile.yaml"],
    ["run", "--profile", "nope"],
    ["run", "--deviation", "no-such-switch"],
    ["run", "--url", "http://127.0.0.1:9", "--deviation", "usage-sum-wrong"],
    ["run", "-n", "many"],
    ["run", "--no-such-flag"],
    ["serve", "--deviation", "no-such-switch"],
    ["serve", "--port", "70000"],
    ["frobnicate"],
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(argv, tmp_path):
    _one_line_exit_2(["conformance", *argv], tmp_path)


@pytest.mark.parametrize("argv", [["--deviation", "no-such-switch"], ["--port", "70000"], ["--stream-delay", "11"],
                                  ["--no-such-flag"]])
def test_the_gateways_own_entry_refuses_bad_input_as_serve_does(argv, tmp_path):
    """`python -m conformance.gateway` (how a run starts its embedded gateway where there is no forkserver):
    `conformance serve`'s checks."""
    _one_line_exit_2(["conformance.gateway", *argv], tmp_path)


def _one_line_exit_2(module_and_argv: list[str], tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", *module_and_argv], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("conformance: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "reports").exists(), "bad input must fail before any run folder is written"


def test_each_route_gets_the_name_form_the_spec_shows_for_it():
    """001: system.ai.<name> on the /ai-gateway routes, "model": "databricks-gpt-5" on /serving-endpoints/responses
    ("replace the model service name with an endpoint name"); the SDK's query shows system.ai.<name>."""
    target = resolve_target(TargetOptions(), {})
    assert target.served_name("gpt-5", "responses_serving_endpoints") == "databricks-gpt-5"
    for surface in ("chat_completions", "responses_openai", "responses_supervisor", "invocations", None):
        assert target.served_name("gpt-5", surface) == "system.ai.gpt-5", surface


def test_name_forms_precedence_flag_then_profile_route_then_profile_then_spec(tmp_path):
    profile = write(tmp_path / "t.yaml", "name: x\nname_form: databricks\n"
                                         "name_forms: {chat_completions: system.ai}\n")
    target = resolve_target(TargetOptions(target_file=profile), {})
    assert target.served_name("gpt-5", "chat_completions") == "system.ai.gpt-5"  # the profile's route entry
    assert target.served_name("gpt-5", "responses_openai") == "databricks-gpt-5"  # the profile's name_form
    only_routes = write(tmp_path / "r.yaml", "name: x\nname_forms: {invocations: databricks}\n")
    target = resolve_target(TargetOptions(target_file=only_routes), {})
    assert target.served_name("claude-sonnet-4-5", "invocations") == "databricks-claude-sonnet-4-5"
    assert target.served_name("gpt-5", "responses_serving_endpoints") == "databricks-gpt-5"  # the spec's
    assert target.served_name("gpt-5", "chat_completions") == "system.ai.gpt-5"
    forced = resolve_target(TargetOptions(target_file=profile, name_form="system.ai"), {})
    assert {forced.served_name("gpt-5", s) for s in ("chat_completions", "responses_serving_endpoints")} == {
        "system.ai.gpt-5"}
    mapped = write(tmp_path / "m.yaml", "name: x\nmodels: {gpt-5: my-gpt}\n")  # a profile's own names, every route
    assert resolve_target(TargetOptions(target_file=mapped), {}).served_name("gpt-5", "responses_serving_endpoints") \
        == "my-gpt"


@pytest.mark.parametrize("text", ["name: x\nname_forms: {chat_completions: endpoint}\n",
                                  "name: x\nname_forms: {no_such_surface: databricks}\n"])
def test_a_bad_name_forms_entry_is_bad_input(tmp_path, text):
    with pytest.raises(BadInput, match="is invalid"):
        resolve_target(TargetOptions(target_file=write(tmp_path / "t.yaml", text)), {})
