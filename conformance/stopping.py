"""Ending a run early, and cleanly: the circuit breaker, SIGTERM and SIGINT.

- After N consecutive infrastructure errors (`--max-consecutive-errors N`, default 30; 0 turns it off) the
  target is gone or unusable, and going on would cost up to a request budget per case for nothing: the run
  stops, summary.json says so (`aborted`: the count and the last cause) and the exit status is 3. Consecutive in
  the order the results come in; a case that got an answer (passed or failed) resets the count, a skip neither
  counts nor resets.
- SIGTERM and SIGINT stop the run as Ctrl-C does: pytest unwinds, summary.json is written with what ran so far
  (`interrupted`: the signal's name), the helper processes and the reference gateway are stopped, and the exit
  status is 128 + the signal number.
Under pytest-xdist the controller decides; the workers learn of a stop from a marker file in the run folder,
checked before each case (`stop_reason`), and skip what is left.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

STOP_FILE = ".stopped"
DEFAULT_MAX_CONSECUTIVE_ERRORS = 30


def stop_reason(run_dir: Path) -> str | None:
    try:
        return (run_dir / STOP_FILE).read_text(encoding="utf-8") or "stopped"
    except OSError:
        return None


class RunGuard:
    """Registered on the controller: counts infrastructure errors as results come in, handles the signals."""

    def __init__(self, config: pytest.Config, run_dir: Path, threshold: int) -> None:
        self.config = config
        self.run_dir = run_dir
        self.threshold = threshold
        self.consecutive = 0
        self.last_cause = ""
        self.aborted: str | None = None
        self.interrupted: str | None = None
        self._session: pytest.Session | None = None
        self._previous: dict[int, Any] = {}

    # --- signals --------------------------------------------------------------------------------------------

    def install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.interrupted is None:
            self.interrupted = name
            self._mark(f"interrupted by {name}")
        raise KeyboardInterrupt(name)  # pytest unwinds as for Ctrl-C: summary, clean-up, exit

    # --- the circuit breaker --------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.aborted or not any(name == "conformance_case" for name, _ in report.user_properties):
            return
        if report.when == "setup" and report.failed:  # the exchange fixture: an infrastructure error
            self.consecutive += 1
            # (under xdist the text starts with the worker's "[gw0] linux -- Python ..." line)
            lines = [line for line in report.longreprtext.strip().splitlines() if not line.startswith("[gw")]
            self.last_cause = lines[0] if lines else ""
        elif report.when == "call":
            self.consecutive = 0
        if self.threshold and self.consecutive >= self.threshold:
            self._trip()

    def _trip(self) -> None:
        self.aborted = (f"circuit breaker: {self.consecutive} consecutive infrastructure errors "
                        f"(--max-consecutive-errors {self.threshold}); the run stopped with what it had judged; "
                        f"last cause: {self.last_cause[:300]}")
        self._mark(self.aborted)
        if self._session is not None:
            self._session.shouldstop = self.aborted
        dsession = self.config.pluginmanager.getplugin("dsession")  # pytest-xdist's controller
        if dsession is not None:
            dsession.shouldstop = self.aborted

    def _mark(self, reason: str) -> None:
        with contextlib.suppress(OSError):
            (self.run_dir / STOP_FILE).write_text(reason, encoding="utf-8")

    def summary_fields(self) -> dict[str, str]:
        fields = {}
        if self.aborted:
            fields["aborted"] = self.aborted
        if self.interrupted:
            fields["interrupted"] = self.interrupted
        return fields
