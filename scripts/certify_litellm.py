"""Certify LiteLLM proxy against the contract, end to end, on loopback.

    python scripts/certify_litellm.py            # or: tox -e litellm

1. installs the pinned `litellm[proxy]` (the `version` of conformance/targets/litellm.yaml) into its own
   virtual environment (default .tox/litellm-proxy), never into the suite's;
2. starts the reference gateway (`conformance serve --port 0`) with a generated token: LiteLLM's upstream;
3. writes a LiteLLM config that routes every model of the target profile to the reference gateway: the
   Anthropic and Gemini providers at its native routes when it serves them, the OpenAI-compatible provider at
   its OpenAI-style routes otherwise (and for every other model); secrets are read from the environment
   (`os.environ/...`), so the config holds none;
4. starts the proxy on 127.0.0.1 on a free port with a generated master key and LITELLM_LOCAL_MODEL_COST_MAP;
5. runs `conformance run --target conformance/targets/litellm.yaml --url <proxy> --token-env <master key var>`;
6. stops both (also on failure or Ctrl-C) and copies the run's outputs to docs/certifications/litellm-<version>/.

Exit status: 0 the certificate was written (its verdict, pass or fail, is in summary.json); otherwise the
status of the step that failed (2 bad input, 3 a process did not start or the target was unreachable,
4 the suite crashed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "conformance" / "targets" / "litellm.yaml"
DEFAULT_ENV = REPO / ".tox" / "litellm-proxy"
CERTIFICATIONS = REPO / "docs" / "certifications"
MASTER_KEY_ENV = "LITELLM_CONFORMANCE_MASTER_KEY"
UPSTREAM_TOKEN_ENV = "LITELLM_CONFORMANCE_UPSTREAM_TOKEN"
UPSTREAM_AUTH_ENV = "LITELLM_CONFORMANCE_UPSTREAM_AUTHORIZATION"
CERTIFICATE_FILES = ("summary.json", "summary.md", "conformance-report.yaml")
READY_TIMEOUT_S = 180

# reference gateway routes: the OpenAI-style prefix, and the native routes a LiteLLM provider can point at
OPENAI_PREFIX = "/ai-gateway/mlflow/v1"
NATIVE = {
    # catalog family: (LiteLLM provider, api_base path, a route the reference gateway serves when it has it).
    # By family, not provider: Gemma is Google's too, but the Gemini API serves Gemini models only.
    "claude": ("anthropic", "/ai-gateway/anthropic", "/ai-gateway/anthropic/v1/messages"),
    "gemini": ("gemini", "/ai-gateway/gemini/v1beta", "/ai-gateway/gemini/v1beta/models/{model}:generateContent"),
}


class StepFailed(Exception):
    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"certify-litellm: {message}", flush=True)


# --- 1. LiteLLM in its own environment ------------------------------------------------------------------


def installed_version(env: Path) -> str | None:
    python = env / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_litellm(env: Path, version: str) -> Path:
    if installed_version(env) == version and (env / "bin" / "litellm").exists():
        log(f"litellm {version} already installed in {env}")
        return env / "bin" / "litellm"
    log(f"installing litellm[proxy]=={version} into {env} (about 700 MB, a minute or two)")
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                             f"litellm[proxy]=={version}"])
    if result.returncode != 0 or installed_version(env) != version:
        raise StepFailed(f"pip could not install litellm[proxy]=={version} into {env}", 3)
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


# --- processes --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def reference_gateway(token: str) -> Iterator[str]:
    from conformance.errors import InfrastructureError
    from conformance.gateway.server import GatewayProcess

    try:
        with GatewayProcess(token) as gateway:
            assert gateway.url is not None
            log(f"reference gateway (LiteLLM's upstream) at {gateway.url}")
            yield gateway.url
    except InfrastructureError as exc:
        raise StepFailed(str(exc), 3) from None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the proxy and whatever it spawned: it runs in its own process group, led by its own pid."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tail(path: Path, secrets_: list[str], lines: int = 30) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    for value in secrets_:
        text = text.replace(value, "[REDACTED]")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def litellm_proxy(executable: Path, config: Path, env: dict[str, str], logfile: Path,
                  secrets_: list[str]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with logfile.open("wb") as out:
        proc = subprocess.Popen([str(executable), "--config", str(config), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise StepFailed(f"litellm exited with status {proc.returncode} before it was ready:\n"
                                 + tail(logfile, secrets_))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health/liveliness", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise StepFailed(f"litellm not ready after {READY_TIMEOUT_S}s:\n" + tail(logfile, secrets_))
            time.sleep(0.5)
        log(f"litellm proxy ready at {url}")
        yield url
    finally:
        stop(proc)


# --- 5./6. run and certificate ----------------------------------------------------------------------------


def redact_tree(folder: Path, secrets_: list[str]) -> list[str]:
    """Replace any generated secret found in the copied files (the suite redacts its own token already)."""
    touched = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cleaned = text
        for value in secrets_:
            cleaned = cleaned.replace(value, "[REDACTED]")
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")
            touched.append(path.name)
    return touched


def write_certificate(run_dir: Path, out: Path, config: dict[str, Any], secrets_: list[str]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    for name in CERTIFICATE_FILES:
        stale = out / name
        if stale.exists():
            stale.unlink()
    copied = []
    for name in CERTIFICATE_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out / name)
            copied.append(name)
    header = ("# The LiteLLM config scripts/certify_litellm.py generated for this run (the reference gateway,\n"
              "# LiteLLM's upstream, listens on a free loopback port); secrets come from the environment.\n")
    text = yaml.safe_dump(config, sort_keys=False)
    (out / "litellm-config.yaml").write_text(header + text, encoding="utf-8")
    copied.append("litellm-config.yaml")
    touched = redact_tree(out, secrets_)
    if touched:
        log(f"warning: generated secrets were found and redacted in {', '.join(touched)}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV,
                        help=f"virtual environment for LiteLLM (default {DEFAULT_ENV.relative_to(REPO)})")
    parser.add_argument("--profile", type=Path, default=PROFILE, help="target profile (default: the LiteLLM one)")
    parser.add_argument("--out", type=Path, default=CERTIFICATIONS,
                        help="certificates folder; the run goes to <out>/litellm-<version>/")
    parser.add_argument("--reports", type=Path, default=REPO / "reports", help="where the run folder goes")
    parser.add_argument("--no-certificate", action="store_true", help="run, but do not write the certificate")
    parser.add_argument("conformance_args", nargs="*", help="extra `conformance run` arguments, after --")
    args = parser.parse_args(argv)

    from conformance.config import load_target_profile
    from conformance.errors import BadInput

    try:
        profile = load_target_profile(str(args.profile))
    except BadInput as exc:
        print(f"certify-litellm: error: {exc}", file=sys.stderr)
        return 2
    version = profile.get("version")
    if not version:
        print(f"certify-litellm: error: {args.profile} has no version to pin", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM too: the finally blocks stop both gateways

    signal.signal(signal.SIGTERM, terminate)
    upstream_token = "ref-" + secrets.token_urlsafe(24)
    master_key = "sk-" + secrets.token_urlsafe(24)
    generated = [upstream_token, master_key]
    try:
        executable = ensure_litellm(args.env.resolve(), version)
        with tempfile.TemporaryDirectory(prefix="certify-litellm-") as tmp, \
                reference_gateway(upstream_token) as upstream:
            served = reference_routes()
            config = litellm_config(profile, upstream, served)
            shown = litellm_config(profile, "http://127.0.0.1:<reference-port>", served)
            config_path = Path(tmp) / "config.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", MASTER_KEY_ENV: master_key,
                   UPSTREAM_TOKEN_ENV: upstream_token, UPSTREAM_AUTH_ENV: f"Bearer {upstream_token}"}
            for name in ("GATEWAY_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN"):
                env.pop(name, None)
            with litellm_proxy(executable, config_path, env, Path(tmp) / "litellm.log", generated) as url:
                cmd = [sys.executable, "-m", "conformance", "run", "--target", str(args.profile), "--url", url,
                       "--token-env", MASTER_KEY_ENV, "--reports", str(args.reports.resolve()),
                       *args.conformance_args]
                log("+ conformance run --target " + str(args.profile) + f" --url {url} --token-env "
                    + MASTER_KEY_ENV + "".join(f" {a}" for a in args.conformance_args))
                suite_env = {k: v for k, v in env.items() if k not in (UPSTREAM_TOKEN_ENV, UPSTREAM_AUTH_ENV)}
                code = subprocess.run(cmd, env=suite_env).returncode
                if code not in (0, 1):
                    log("litellm log (tail):\n" + tail(Path(tmp) / "litellm.log", generated))
    except StepFailed as exc:
        print(f"certify-litellm: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("certify-litellm: interrupted; both gateways stopped", file=sys.stderr)
        return 130
    latest = (args.reports.resolve() / "latest").resolve()
    summary_path = latest / "summary.json"
    if code not in (0, 1) or not summary_path.exists():
        print(f"certify-litellm: error: the run gave no verdict (conformance exit {code})", file=sys.stderr)
        return code or 4
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    log(f"verdict of litellm {version}: " + ", ".join(f"{v} {k}" for k, v in summary["totals"].items()))
    if args.no_certificate:
        return 0
    out = args.out.resolve() / f"litellm-{version}"
    copied = write_certificate(latest, out, shown, generated)
    log(f"certificate: {out} ({', '.join(copied)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
