"""Certify Portkey's open-source AI Gateway against the contract, end to end, on loopback.

    python scripts/certify_portkey.py            # or: tox -e portkey

The steps every certification shares (conformance/peers.py) around Portkey's own:
- installs the pinned `@portkey-ai/gateway` (the `version` of conformance/targets/portkey.yaml) with npm into a
  folder of its own (default .tools/portkey), never into the checkout's tree; install scripts are not run
  (the package's only one, patch-package, finds no patches in the published package);
- pins the one dependency that breaks the gateway (NPM_OVERRIDES, below) and records every version it ran
  with in the certificate (portkey-install.yaml);
- starts `node build/start-server.js --port=P --headless` with scripts/loopback.mjs preloaded, because the
  gateway names no address and would listen on every interface; checks it listens on loopback only;
- Portkey takes its routing per request: the suite sends the headers of the target profile (surface_headers:
  provider and custom host of each API) with PORTKEY_UPSTREAM set to the reference gateway, and the reference
  gateway's token as the Bearer token, which Portkey passes upstream as the provider key. Portkey itself holds
  no secret and no config.

Exit status: as conformance/peers.py says (0 the certificate was written, whatever its verdict).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from conformance import peers

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "conformance" / "targets" / "portkey.yaml"
DEFAULT_ENV = REPO / ".tools" / "portkey"
LOOPBACK_PRELOAD = Path(__file__).resolve().parent / "loopback.mjs"
PACKAGE = "@portkey-ai/gateway"
ENTRY = Path("node_modules") / PACKAGE / "build" / "start-server.js"
UPSTREAM_ENV = "PORTKEY_UPSTREAM"  # ${PORTKEY_UPSTREAM} in the profile's headers
# The gateway declares "@hono/node-server": "^1.3.3", so npm installs the newest 1.x. From 1.14.2 on, its
# Response keeps the upstream response's immutable Headers, and Portkey's ResponseService.updateHeaders throws
# `TypeError: immutable` on every answer it passes on unmapped: streaming, embeddings, the /v1/* proxy all
# answer 500 "Something went wrong" (Portkey-AI/gateway issues 1389 and 1550, open). 1.14.1, inside the
# declared range, is the last release before that change. ANALYSIS.md of the certificate shows both.
NPM_OVERRIDES = {"@hono/node-server": "1.14.1"}
REPORTED = (PACKAGE, "hono", "@hono/node-server")  # versions recorded in the certificate


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise peers.StepFailed(f"{name} is not on PATH: Portkey's gateway is a Node.js package "
                               "(install Node.js and npm)")
    return found


def package_version(folder: Path, package: str) -> str | None:
    manifest = folder / "node_modules" / package / "package.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("version")


def manifest(version: str) -> dict[str, Any]:
    return {"name": "portkey-certification", "private": True, "description": "written by scripts/certify_portkey.py",
            "dependencies": {PACKAGE: version}, "overrides": dict(NPM_OVERRIDES)}


def installed_as_pinned(folder: Path, version: str) -> bool:
    return package_version(folder, PACKAGE) == version and all(
        package_version(folder, name) == pinned for name, pinned in NPM_OVERRIDES.items())


def ensure_portkey(folder: Path, version: str, say: Callable[[str], None] = print) -> Path:
    _tool("node")  # to run it: say so before a download
    npm = _tool("npm")
    if installed_as_pinned(folder, version):
        say(f"{PACKAGE} {version} already installed in {folder}")
        return folder
    say(f"installing {PACKAGE}@{version} with npm into {folder} (about 25 MB)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(manifest(version), indent=2) + "\n", encoding="utf-8")
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock",
                             "--loglevel=error"], cwd=folder)
    if result.returncode != 0 or not installed_as_pinned(folder, version):
        raise peers.StepFailed(f"npm could not install {PACKAGE}@{version} into {folder}")
    return folder


def install_record(folder: Path) -> dict[str, Any]:
    """What the certificate says about the installation: enough to install the same again."""

    def version_of(tool: str) -> str:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True)
        return out.stdout.strip() or out.stderr.strip()

    return {
        "node": version_of(_tool("node")),
        "npm": version_of(_tool("npm")),
        "packages": {name: package_version(folder, name) for name in REPORTED},
        "overrides": dict(NPM_OVERRIDES),
        "override_reason": "@hono/node-server 1.14.2 and later break every unmapped answer of the gateway "
                           "(TypeError: immutable; Portkey-AI/gateway issues 1389, 1550)",
        "command": f"node --import scripts/loopback.mjs {ENTRY.as_posix()} --port=<free port> --headless",
    }


@contextlib.contextmanager
def start_portkey(launch: peers.Launch) -> Iterator[peers.Started]:
    folder: Path = launch.installed
    port = peers.free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = launch.workdir / "portkey.log"
    cmd = [_tool("node"), f"--import={LOOPBACK_PRELOAD.as_uri()}", str(folder / ENTRY), f"--port={port}",
           "--headless"]
    env = peers.clean_environment()  # Portkey needs nothing: the routing comes with each request
    token_env = launch.profile.get("token_env") or "PORTKEY_UPSTREAM_TOKEN"
    suite_env = peers.clean_environment({token_env: launch.upstream_token, UPSTREAM_ENV: launch.upstream})
    record = install_record(folder)
    with peers.gateway_process("portkey", cmd, env, logfile, url + "/", launch.secrets, launch.say, cwd=folder):
        header = ("# How scripts/certify_portkey.py installed and started Portkey's gateway for this run; the\n"
                  "# routing headers it was sent are the surface_headers of conformance/targets/portkey.yaml.\n")
        yield peers.Started(url=url, token_env=token_env, env=suite_env, log=logfile,
                      files={"portkey-install.yaml": header + yaml.safe_dump(record, sort_keys=False)})


PORTKEY = peers.PeerGateway(
    name="portkey", profile=PROFILE, default_env=DEFAULT_ENV, install=ensure_portkey, start=start_portkey,
    description="Certify Portkey's open-source AI Gateway (the pinned release of conformance/targets/"
                "portkey.yaml) on loopback.")


def main(argv: list[str] | None = None) -> int:
    return peers.certify_main(PORTKEY, argv, repo=REPO)


if __name__ == "__main__":
    sys.exit(main())
