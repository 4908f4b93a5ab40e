"""Certifying another gateway end to end on loopback: what scripts/certify_<gateway>.py share.

A script describes its gateway as a `PeerGateway`: how to install the pinned release into a folder of its own
(never the suite's environment) and how to start it on 127.0.0.1 routed to an upstream. `certify_main` does the
rest the same way for every gateway, so their certificates are comparable:
1. loads the target profile (its `version` is the release to install);
2. installs it, or finds it installed;
3. starts the reference gateway (`conformance serve --port 0 --stream-delay UPSTREAM_STREAM_DELAY_S`) with a
   generated token: the upstream, streaming at a model's pace;
4. starts the gateway on a free loopback port, routed to it;
5. runs `conformance run --target <profile> --url <gateway> --token-env <var>` in a child process;
6. stops both (on failure, Ctrl-C and SIGTERM too) and copies the run's outputs, plus the gateway's own files
   (its generated config, the versions it ran with) and certification.yaml (the suite's commit, the command,
   the upstream's stream pace),
   to docs/certifications/<name>-<version>/, with every generated secret replaced.

Exit status: 0 the certificate was written (its verdict, pass or fail, is in summary.json); otherwise the status
of the step that failed (2 bad input, 3 a process did not start or the target was unreachable, 4 the suite
crashed).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from conformance.config import load_target_profile
from conformance.errors import BadInput, InfrastructureError

CERTIFICATE_FILES = ("summary.json", "summary.md", "conformance-report.yaml")
CERTIFICATION_RECORD = "certification.yaml"  # the suite commit, the command and the upstream's stream pace
READY_TIMEOUT_S = 180
# The upstream streams at a model's pace, seconds per token (`conformance serve --stream-delay`). Unpaced, the
# reference gateway writes a 160-word stream in about 20 ms, so through a gateway that takes over a second to its
# first byte streaming_incremental judges a stream that really was made all at once ("came all at once"). Its
# stream-incremental-* cases (cases/behaviour.yaml: 160 tokens, min_duration_s 1.0, max_ratio 0.9) judge a stream
# whose last content comes 1 s or more after the request, and pass it at first/last <= 0.9. At 8 ms a token the
# upstream alone takes 1.28 s over those 160 tokens: every such stream is judged, even through a gateway that
# adds no time (1 s / 160 = 6.25 ms would only just reach the guard), and a gateway that passes the stream on as
# it comes stays under 0.9 unless its first byte takes over 11 s; one that buffers it still gives about 1.00.
# It is the pace of the stream-buffered deviation (gateway/framing.py BUFFERED_PACE_S), which proves the check
# catches buffering. It paces every stream of the run: no other check reads their timing (the certificate's
# stream latencies include it).
UPSTREAM_STREAM_DELAY_S = 0.008
# variables that would point the run, or a gateway's own SDK, somewhere else than the loopback pair
FOREIGN_ENV = ("GATEWAY_URL", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_FILE")


class StepFailed(Exception):
    """A step of the certification could not be done: its message is one line (or a log tail), its exit code."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Launch:
    """What a gateway's `start` gets: the installed release and the upstream it routes to."""

    installed: Any  # what `install` returned (an executable, a folder)
    version: str
    profile: dict[str, Any]
    upstream: str  # the reference gateway's URL
    upstream_token: str
    workdir: Path  # private, removed after the run: generated configs and the gateway's log go here
    secrets: list[str]  # every generated secret; `start` appends its own
    say: Callable[[str], None]


@dataclass
class Started:
    """A gateway up on loopback, and how the suite reaches it."""

    url: str
    token_env: str  # the variable of `env` holding the token the suite sends
    env: dict[str, str]  # the environment of `conformance run` (without the gateway's upstream secrets)
    log: Path  # the gateway's output: its tail is shown (redacted) when a run gives no verdict
    files: dict[str, str] = field(default_factory=dict)  # certificate files of its own: name -> text


@dataclass(frozen=True)
class PeerGateway:
    name: str  # certificate folder prefix, log prefix
    profile: Path
    default_env: Path  # where the release is installed unless --env says otherwise
    install: Callable[[Path, str, Callable[[str], None]], Any]  # (folder, version, say) -> installed
    start: Callable[[Launch], contextlib.AbstractContextManager[Started]]
    description: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env.update(extra or {})
    return env


def redact(text: str, secrets_: Sequence[str]) -> str:
    for value in sorted(secrets_, key=len, reverse=True):
        text = text.replace(value, "[REDACTED]")
    return text


def tail(path: Path, secrets_: Sequence[str], lines: int = 30) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(redact(text, secrets_).splitlines()[-lines:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a gateway and whatever it spawned: it runs in its own process group, led by its own pid."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def listening_addresses(port: int, proc_net: Path = Path("/proc/net")) -> set[str] | None:
    """The addresses a TCP port listens on, from /proc/net/tcp and tcp6; None where there is no such file."""
    found: set[str] = set()
    tables = [(proc_net / "tcp", 4), (proc_net / "tcp6", 6)]
    if not any(path.exists() for path, _ in tables):
        return None
    for path, family in tables:
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.IPv4Address(packed) if family == 4 else ipaddress.IPv6Address(packed)))
    return found


def only_loopback(addresses: set[str]) -> bool:
    def loopback(text: str) -> bool:
        address = ipaddress.ip_address(text)
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback

    return all(loopback(a) for a in addresses)


@contextlib.contextmanager
def gateway_process(name: str, cmd: list[str], env: dict[str, str], logfile: Path, ready_url: str,
                    secrets_: Sequence[str], say: Callable[[str], None], cwd: Path | None = None) -> Iterator[None]:
    """Start a gateway in its own process group and wait until `ready_url` answers 200; stop it on the way out."""
    with logfile.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise StepFailed(f"{name} exited with status {proc.returncode} before it was ready:\n"
                                 + tail(logfile, secrets_))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise StepFailed(f"{name} not ready after {READY_TIMEOUT_S}s:\n" + tail(logfile, secrets_))
            time.sleep(0.5)
        port = urlsplit(ready_url).port
        addresses = listening_addresses(port) if port else None
        if addresses and not only_loopback(addresses):
            raise StepFailed(f"{name} listens on {', '.join(sorted(addresses))} port {port}, not on loopback only")
        say(f"{name} ready at {ready_url}" + (f" (listening on {', '.join(sorted(addresses))} only)"
                                               if addresses else ""))
        yield
    finally:
        stop(proc)


@contextlib.contextmanager
def reference_upstream(token: str, say: Callable[[str], None]) -> Iterator[str]:
    """The reference gateway as the upstream, streaming at UPSTREAM_STREAM_DELAY_S a token; yields its URL."""
    from conformance.gateway.server import GatewayProcess

    try:
        with GatewayProcess(token, stream_delay_s=UPSTREAM_STREAM_DELAY_S) as gateway:
            assert gateway.url is not None
            say(f"reference gateway (the upstream) at {gateway.url}, streaming at {UPSTREAM_STREAM_DELAY_S:g} s a "
                "token")
            yield gateway.url
    except InfrastructureError as exc:
        raise StepFailed(str(exc), 3) from None


def redact_tree(folder: Path, secrets_: Sequence[str]) -> list[str]:
    """Replace any generated secret found in the copied files (the suite redacts its own token already)."""
    touched = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cleaned = redact(text, secrets_)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")
            touched.append(path.name)
    return touched


def portable(text: str, repo: Path) -> str:
    """Paths of the certifying machine made relative to the checkout: a committed certificate names the spec as
    `../shared/spec` and the snapshots as `snapshots/<gateway>`, not a folder of whoever made it."""
    for folder, shown in ((repo.resolve(), ""), (repo.resolve().parent, "../")):
        text = re.sub(rf"(?<![\w/.-]){re.escape(str(folder))}/", shown, text)
    return text


def portable_tree(folder: Path, repo: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".yaml"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if portable(text, repo) != text:
                path.write_text(portable(text, repo), encoding="utf-8")


def write_certificate(run_dir: Path, out: Path, files: dict[str, str], secrets_: Sequence[str],
                      say: Callable[[str], None] = print, repo: Path | None = None) -> list[str]:
    """The run's summary files and the gateway's own files into `out`; stale copies of them go first; with
    `repo`, its paths (and its parent's) relative (portable)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (*CERTIFICATE_FILES, *files):
        stale = out / name
        if stale.exists():
            stale.unlink()
    copied = []
    for name in CERTIFICATE_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out / name)
            copied.append(name)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        copied.append(name)
    touched = redact_tree(out, secrets_)
    if repo is not None:
        portable_tree(out, repo)
    if touched:
        say(f"warning: generated secrets were found and redacted in {', '.join(touched)}")
    return copied


def suite_revision(repo: Path) -> dict[str, Any]:
    """The suite's commit and whether the checkout differed from it (outside docs/certifications/, which the
    certification itself writes): a certificate says which suite judged it."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "note": "not a git checkout"}
    changed = git("status", "--porcelain", "--", ".", ":(exclude)docs/certifications") or ""
    return {"commit": commit.strip(), "modified": bool(changed.strip())}


def certification_record(peer: PeerGateway, version: str, revision: dict[str, Any], args: list[str]) -> str:
    record = {"gateway": peer.name, "version": version, "suite": revision,
              "command": " ".join([f"python scripts/certify_{peer.name}.py", *(["--", *args] if args else [])]),
              "upstream": {"stream_delay_s": UPSTREAM_STREAM_DELAY_S}}  # the reference gateway's stream pace
    return ("# Written by the certification (conformance/peers.py): which suite made this certificate, and how.\n"
            + yaml.safe_dump(record, sort_keys=False))


def certify_main(peer: PeerGateway, argv: list[str] | None = None, *, repo: Path) -> int:
    prefix = f"certify-{peer.name}"

    def say(message: str) -> None:
        print(f"{prefix}: {message}", flush=True)

    parser = argparse.ArgumentParser(prog=prefix, description=peer.description or None)
    parser.add_argument("--env", type=Path, default=peer.default_env,
                        help=f"where {peer.name} is installed (default {_shown(peer.default_env, repo)})")
    parser.add_argument("--profile", type=Path, default=peer.profile,
                        help=f"target profile (default {_shown(peer.profile, repo)})")
    parser.add_argument("--out", type=Path, default=repo / "docs" / "certifications",
                        help=f"certificates folder; the run goes to <out>/{peer.name}-<version>/")
    parser.add_argument("--reports", type=Path, default=repo / "reports", help="where the run folder goes")
    parser.add_argument("--no-certificate", action="store_true", help="run, but do not write the certificate")
    parser.add_argument("--gateway-log", type=Path, metavar="FILE",
                        help="keep the gateway's own log there, generated secrets redacted (evidence for ANALYSIS.md;"
                             " never part of the certificate)")
    parser.add_argument("conformance_args", nargs="*", help="extra `conformance run` arguments, after --")
    args = parser.parse_args(argv)

    try:
        profile = load_target_profile(str(args.profile))
    except BadInput as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    version = profile.get("version")
    if not version:
        print(f"{prefix}: error: {args.profile} has no version to pin", file=sys.stderr)
        return 2

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM too: the finally blocks stop both gateways

    revision = suite_revision(repo)
    previous = signal.signal(signal.SIGTERM, terminate)
    upstream_token = "ref-" + secrets.token_urlsafe(24)
    generated = [upstream_token]
    reports = args.reports.resolve()
    try:
        installed = peer.install(args.env.resolve(), version, say)
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp, \
                reference_upstream(upstream_token, say) as upstream:
            launch = Launch(installed, version, profile, upstream, upstream_token, Path(tmp), generated, say)
            with peer.start(launch) as started:
                extra = " ".join(args.conformance_args)
                say(f"+ conformance run --target {args.profile} --url {started.url} --token-env "
                    f"{started.token_env}" + (f" {extra}" if extra else ""))
                cmd = [sys.executable, "-m", "conformance", "run", "--target", str(args.profile),
                       "--url", started.url, "--token-env", started.token_env, "--reports", str(reports),
                       *args.conformance_args]
                code = subprocess.run(cmd, env=started.env).returncode
                if code not in (0, 1):
                    say(f"{peer.name} log (tail):\n" + tail(started.log, generated))
                files = started.files
            if args.gateway_log:  # the gateway has stopped: its log is complete
                text = started.log.read_text(encoding="utf-8", errors="replace") if started.log.exists() else ""
                args.gateway_log.write_text(redact(text, generated), encoding="utf-8")
                say(f"{peer.name} log: {args.gateway_log}")
    except StepFailed as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; both gateways stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    latest = (reports / "latest").resolve()
    summary_path = latest / "summary.json"
    if code not in (0, 1) or not summary_path.exists():
        print(f"{prefix}: error: the run gave no verdict (conformance exit {code})", file=sys.stderr)
        return code or 4
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    say(f"verdict of {peer.name} {version}: " + ", ".join(f"{v} {k}" for k, v in summary["totals"].items()))
    if args.no_certificate:
        return 0
    out = args.out.resolve() / f"{peer.name}-{version}"
    files = {**files, CERTIFICATION_RECORD: certification_record(peer, version, revision, args.conformance_args)}
    copied = write_certificate(latest, out, files, generated, say, repo=repo)
    say(f"certificate: {out} ({', '.join(copied)})")
    return 0


def _shown(path: Path, repo: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(repo))
    return str(path)
