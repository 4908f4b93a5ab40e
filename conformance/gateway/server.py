"""Running the reference gateway: in this process (`conformance serve`), a thread, or a child process."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any

import uvicorn

from conformance.errors import BadInput, InfrastructureError
from conformance.gateway.app import create_app
from conformance.gateway.common import GatewayState
from conformance.gateway.faults import FaultConfig
from conformance.reference import REFERENCE_TOKEN_ENV

ANNOUNCE = "conformance reference gateway listening on "
# How long an idle keep-alive connection stays open. uvicorn's default, 5 s, is shorter than the pools of the
# gateways certified against the reference gateway as their upstream keep a connection (aiohttp 15 s, LiteLLM
# 120 s): a request sent on a connection the server is closing fails as a connection error, at random, under
# load. A workspace's load balancer keeps them for minutes; so does the reference gateway.
KEEP_ALIVE_S = 600
GATEWAY_PRELOAD = __name__  # what a forked gateway's forkserver imports (GatewayProcess)
START_S = 60.0  # how long a gateway may take to listen (a loaded machine, the forkserver's own start included)


def bind(host: str, port: int) -> socket.socket:
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto is IPPROTO_TCP
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    return sock


def _server(state: GatewayState, faults: FaultConfig | None = None) -> uvicorn.Server:
    # injected transport faults are meant to happen: do not print a traceback for each
    level = "critical" if faults and faults.fault_rate else "warning"
    config = uvicorn.Config(create_app(state, faults), log_level=level, access_log=False, lifespan="off",
                            timeout_keep_alive=KEEP_ALIVE_S)
    return uvicorn.Server(config)


def serve(state: GatewayState, host: str, port: int, announce: Callable[[str], None],
          faults: FaultConfig | None = None) -> None:
    """Serve until interrupted; announce the URL once the socket is bound (a parent process waits for it)."""
    sock = bind(host, port)
    announce(f"{ANNOUNCE}http://{host}:{sock.getsockname()[1]}")
    _server(state, faults).run(sockets=[sock])


class ThreadedGateway:
    """The gateway on a free loopback port in a thread of this process: cheap enough for one per test."""

    def __init__(self, token: str, switches: Iterable[str] = (), faults: FaultConfig | None = None,
                 self_test: bool = False, not_serving: Iterable[str] = (), listing: bool = True,
                 stream_delay_s: float = 0.0) -> None:
        self.state = GatewayState(token=token, switches=frozenset(switches), self_test=self_test,
                                  not_serving=frozenset(not_serving), listing=listing, stream_delay_s=stream_delay_s)
        self._server = _server(self.state, faults)
        self._sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise InfrastructureError("reference gateway thread did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def _forked_gateway(link: Connection, token: str, switches: list[str], faults: FaultConfig, self_test: bool,
                    stream_delay_s: float, environ: dict[str, str]) -> None:
    """A GatewayProcess forked from the forkserver: the URL goes back on `link`, and the gateway ends when the
    link does (its parent closed it, or died: a run killed with SIGKILL leaves no gateway behind). Daemonic: a
    process that exits without closing its gateway has it terminated by multiprocessing, never waits for it."""
    os.environ.clear()
    os.environ.update(environ)  # the parent's of the moment, not the forkserver's of its start

    def end_with_link() -> None:
        with contextlib.suppress(EOFError, OSError):
            link.recv()
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful exit

    threading.Thread(target=end_with_link, daemon=True).start()
    state = GatewayState(token=token, switches=frozenset(switches), self_test=self_test, stream_delay_s=stream_delay_s)
    with contextlib.suppress(KeyboardInterrupt):
        serve(state, "127.0.0.1", 0, link.send, faults)


class GatewayProcess:
    """The gateway as a child process (its own interpreter and GIL, so it does not compete with the suite's):
    a fork of the read-ahead helpers' forkserver (pacing.helper_context), which imports the gateway's code once
    for every gateway a process starts (0.3 s of CPU each: the self-tests start dozens); where the platform has
    no forkserver, `python -m conformance.gateway`."""

    def __init__(self, token: str, switches: Iterable[str] = (), faults: FaultConfig | None = None,
                 self_test: bool = False, stream_delay_s: float = 0.0) -> None:
        self.token = token
        self.stream_delay_s = stream_delay_s  # seconds per streamed token (`serve --stream-delay`)
        self.switches = list(switches)
        self.self_test = self_test  # the self-tests' switch control (gateway/selftest.py)
        self.faults = faults or FaultConfig()
        self.url: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._fork: Any = None  # the forked gateway (multiprocessing's Process) and its link
        self._link: Connection | None = None

    def __enter__(self) -> GatewayProcess:
        if "forkserver" in multiprocessing.get_all_start_methods():
            return self._forked()
        return self._spawned()

    def _forked(self) -> GatewayProcess:
        from conformance import pacing

        context = pacing.helper_context()
        # the preload takes effect where this starts the forkserver (a run starts its gateway before any helper)
        context.set_forkserver_preload(pacing.preload(GATEWAY_PRELOAD))
        self._link, theirs = context.Pipe(duplex=True)
        self._fork = context.Process(target=_forked_gateway, name="conformance-reference-gateway", daemon=True,
                                     args=(theirs, self.token, self.switches, self.faults, self.self_test,
                                           self.stream_delay_s, dict(os.environ)))
        self._fork.start()
        theirs.close()
        line = ""
        with contextlib.suppress(EOFError, OSError):
            if self._link.poll(START_S):
                line = self._link.recv()
        if not line.startswith(ANNOUNCE):
            code = self._fork.exitcode
            self.__exit__()
            raise InfrastructureError(f"reference gateway failed to start: "
                                      f"{'exit status ' + str(code) if code is not None else 'no answer'}")
        self.url = line[len(ANNOUNCE):].strip()
        return self

    def _spawned(self) -> GatewayProcess:
        cmd = [sys.executable, "-m", "conformance.gateway", "--port", "0", "--token-env", REFERENCE_TOKEN_ENV]
        for name in self.switches:
            cmd += ["--deviation", name]
        if self.self_test:
            cmd.append("--self-test")
        if self.stream_delay_s:
            cmd += ["--stream-delay", str(self.stream_delay_s)]
        if self.faults.active:
            cmd += ["--latency", str(self.faults.latency_s), "--faults", str(self.faults.fault_rate),
                    "--seed", str(self.faults.seed)]
            if self.faults.rate_limit:
                cmd += ["--rate-limit", str(self.faults.rate_limit)]
        env = {**os.environ, REFERENCE_TOKEN_ENV: self.token}
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the child prints exactly one line once it listens
        if not line.startswith(ANNOUNCE):
            self.__exit__()
            raise InfrastructureError(f"reference gateway failed to start: {line.strip() or 'no output'}")
        self.url = line[len(ANNOUNCE):].strip()
        return self

    @property
    def pid(self) -> int | None:
        if self._fork is not None:
            return int(self._fork.pid)
        return self._proc.pid if self._proc is not None else None

    def __exit__(self, *exc: object) -> None:
        if self._fork is not None:
            self._fork.terminate()
            self._fork.join(timeout=10)
            if self._fork.exitcode is None:
                self._fork.kill()
                self._fork.join()
            self._fork = None
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None
