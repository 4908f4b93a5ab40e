"""Certify LiteLLM proxy against the contract, end to end, on loopback.

    python scripts/certify_litellm.py            # or: tox -e litellm

The steps every certification shares (conformance/peers.py) around LiteLLM's own:
- installs the pinned `litellm[proxy]` (the `version` of conformance/targets/litellm.yaml) into its own
  virtual environment (default .tox/litellm-proxy), never into the suite's;
- writes a LiteLLM config that routes every model of the target profile to the reference gateway: the
  Anthropic and Gemini providers at its native routes when it serves them, the OpenAI-compatible provider at
  its OpenAI-style routes otherwise (and for every other model); secrets are read from the environment
  (`os.environ/...`), so the config holds none;
- starts the proxy on 127.0.0.1 on a free port with a generated master key and LITELLM_LOCAL_MODEL_COST_MAP;
  the suite sends the master key;
- the certificate, docs/certifications/litellm-<version>/, also holds that config (litellm-config.yaml).

Exit status: as conformance/peers.py says (0 the certificate was written, whatever its verdict).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from conformance import peers

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "conformance" / "targets" / "litellm.yaml"
DEFAULT_ENV = REPO / ".tox" / "litellm-proxy"
MASTER_KEY_ENV = "LITELLM_CONFORMANCE_MASTER_KEY"
UPSTREAM_TOKEN_ENV = "LITELLM_CONFORMANCE_UPSTREAM_TOKEN"
UPSTREAM_AUTH_ENV = "LITELLM_CONFORMANCE_UPSTREAM_AUTHORIZATION"

# reference gateway routes: the OpenAI-style prefix, and the native routes a LiteLLM provider can point at
OPENAI_PREFIX = "/ai-gateway/mlflow/v1"
NATIVE = {
    # catalog family: (LiteLLM provider, api_base path, a route the reference gateway serves when it has it).
    # By family, not provider: Gemma is Google's too, but the Gemini API serves Gemini models only.
    "claude": ("anthropic", "/ai-gateway/anthropic", "/ai-gateway/anthropic/v1/messages"),
    "gemini": ("gemini", "/ai-gateway/gemini/v1beta", "/ai-gateway/gemini/v1beta/models/{model}:generateContent"),
}


# --- 1. LiteLLM in its own environment ------------------------------------------------------------------


def installed_version(env: Path) -> str | None:
    python = env / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_litellm(env: Path, version: str, say: Callable[[str], None] = print) -> Path:
    if installed_version(env) == version and (env / "bin" / "litellm").exists():
        say(f"litellm {version} already installed in {env}")
        return env / "bin" / "litellm"
    say(f"installing litellm[proxy]=={version} into {env} (about 700 MB, a minute or two)")
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                             f"litellm[proxy]=={version}"])
    if result.returncode != 0 or installed_version(env) != version:
        raise peers.StepFailed(f"pip could not install litellm[proxy]=={version} into {env}", 3)
    return env / "bin" / "litellm"


# --- 3. the LiteLLM config --------------------------------------------------------------------------------


def reference_routes() -> set[str]:
    """Which of the native routes LiteLLM could use the reference gateway of this checkout serves."""
    from starlette.routing import Match

    from conformance.gateway.app import SURFACE_MODULES

    routes = [route for module in SURFACE_MODULES for route in module.routes()]
    served = set()
    for _, _, probe in NATIVE.values():
        scope = {"type": "http", "method": "POST", "path": probe.replace("{model}", "system.ai.m"), "root_path": ""}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            served.add(probe)
    return served


def litellm_config(profile: dict[str, Any], upstream: str, served: set[str]) -> dict[str, Any]:
    """model_list routing each profile model (catalog name -> LiteLLM model_name) to the reference gateway.

    The upstream model name is the catalog's model-service name. Secrets stay in the environment.
    """
    from conformance.catalog import load_catalog

    catalog = load_catalog()
    model_list = []
    for name, model_name in profile["models"].items():
        model = catalog.get(name)
        assert model is not None, name  # the profile loader checked it
        upstream_name = model.served_name("system.ai")
        provider, base, probe = NATIVE.get(model.family, ("openai", OPENAI_PREFIX, None))
        if probe is None or probe not in served:
            provider, base = "openai", OPENAI_PREFIX
        params: dict[str, Any] = {"model": f"{provider}/{upstream_name}", "api_base": upstream + base}
        if provider == "openai":
            params["api_key"] = f"os.environ/{UPSTREAM_TOKEN_ENV}"
        else:
            # Databricks' native routes take the token as `Authorization: Bearer` (spec 003, the Anthropic and
            # Gemini client examples pass it in default headers); the provider's own key header is unused
            params["api_key"] = "unused"
            params["extra_headers"] = {"Authorization": f"os.environ/{UPSTREAM_AUTH_ENV}"}
        entry: dict[str, Any] = {"model_name": model_name, "litellm_params": params}
        if model.has("embeddings"):
            entry["model_info"] = {"mode": "embedding"}
        model_list.append(entry)
    return {
        "model_list": model_list,
        "litellm_settings": {"drop_params": False, "num_retries": 0, "request_timeout": 60},
        "general_settings": {"master_key": f"os.environ/{MASTER_KEY_ENV}"},
    }


# --- the proxy on loopback ------------------------------------------------------------------------------


@contextlib.contextmanager
def start_litellm(launch: peers.Launch) -> Iterator[peers.Started]:
    served = reference_routes()
    config = litellm_config(launch.profile, launch.upstream, served)
    shown = litellm_config(launch.profile, "http://127.0.0.1:<reference-port>", served)
    config_path = launch.workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    master_key = "sk-" + secrets.token_urlsafe(24)
    launch.secrets.append(master_key)
    upstream = {UPSTREAM_TOKEN_ENV: launch.upstream_token, UPSTREAM_AUTH_ENV: f"Bearer {launch.upstream_token}"}
    env = peers.clean_environment({"LITELLM_LOCAL_MODEL_COST_MAP": "True", MASTER_KEY_ENV: master_key, **upstream})
    port = peers.free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = launch.workdir / "litellm.log"
    cmd = [str(launch.installed), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    with peers.gateway_process("litellm", cmd, env, logfile, url + "/health/liveliness", launch.secrets, launch.say):
        header = ("# The LiteLLM config scripts/certify_litellm.py generated for this run (the reference gateway,\n"
                  "# LiteLLM's upstream, listens on a free loopback port); secrets come from the environment.\n")
        yield peers.Started(url=url, token_env=MASTER_KEY_ENV,
                      env={k: v for k, v in env.items() if k not in upstream}, log=logfile,
                      files={"litellm-config.yaml": header + yaml.safe_dump(shown, sort_keys=False)})


LITELLM = peers.PeerGateway(
    name="litellm", profile=PROFILE, default_env=DEFAULT_ENV, install=ensure_litellm, start=start_litellm,
    description="Certify LiteLLM proxy (the pinned release of conformance/targets/litellm.yaml) on loopback.")


def main(argv: list[str] | None = None) -> int:
    return peers.certify_main(LITELLM, argv, repo=REPO)


if __name__ == "__main__":
    sys.exit(main())
