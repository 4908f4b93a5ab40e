"""Allure results for a conformance run, written with as few files and as little work as the report needs.

allure-pytest writes one "container" file per fixture per test (four per conformance case) besides the result
and its attachments; on a slow disk those writes were a third of the suite's time per case, and the listener's
bookkeeping for them (objects, ids, hooks around every fixture) a tenth of the pytest process's CPU. A container
only says that a fixture was set up and torn down. The conformance fixtures carry nothing a reader needs there:
the one that can break (`exchange`, an infrastructure error) breaks the test's set-up, and allure-pytest puts
that message on the test result itself. So the listener here does not track fixtures, and no container is
written. Results, attachments, labels and statuses are allure-pytest's own, in its file format, but for the
parameters: a conformance test's parameter is a whole case record (kilobytes of repr per test, shown on every
page); it becomes a hidden `case` parameter holding the case's name, which keeps each test's history id apart.

The files are written by a thread of their own (BackgroundFileLogger). Creating a file costs a system call
whose time varies thirtyfold on a shared virtual disk (0.02 to 0.7 ms measured on the project's machine); the
pytest thread only serialises and queues, and the writer creates the files while it judges the next case.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import allure_commons
import pytest
from allure_commons import hookimpl
from allure_commons.model2 import Parameter
from attr import asdict

from conformance.redact import REDACTOR

WRITE_EVERY_S = 0.05
CASE_PARAMETERS = ("case_item", "client_item")


def _lean_listener_class() -> type:
    from allure_pytest.listener import AllureListener

    class LeanAllureListener(AllureListener):  # type: ignore[misc]
        @pytest.hookimpl(hookwrapper=True)
        def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
            yield

        @pytest.hookimpl(hookwrapper=True)
        def pytest_fixture_post_finalizer(self, fixturedef: Any) -> Any:
            yield

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_setup(self, item: Any) -> Any:
            inner = super().pytest_runtest_setup(item)  # allure-pytest's own, driven as the old-style wrapper it is
            next(inner)
            outcome = yield
            with contextlib.suppress(StopIteration):
                inner.send(outcome)
            result = self.allure_logger.get_test(self._cache.get(item.nodeid))
            if result is not None:
                kept = [p for p in result.parameters if p.name not in CASE_PARAMETERS]
                if len(kept) != len(result.parameters):
                    case = getattr(getattr(item, "callspec", None), "id", item.name)
                    result.parameters = [*kept, Parameter(name="case", value=case, mode="hidden")]

    return LeanAllureListener


class BackgroundFileLogger:
    """allure-commons' file logger (same files, same names, same JSON), with the writes on a writer thread.
    `close` waits for every queued file: the report is complete once the run's clean-up has run."""

    def __init__(self, report_dir: str, clean: bool = False) -> None:
        self._dir = Path(report_dir).absolute()
        if clean and self._dir.is_dir():
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._queued = self._written = 0  # each counted by one thread only
        self._closing = threading.Event()
        self._error: OSError | None = None
        self._writer = threading.Thread(target=self._write, name="allure-writer", daemon=True)
        self._writer.start()

    def _write(self) -> None:
        # it looks for files every WRITE_EVERY_S rather than being woken for each: a wake-up per file was a
        # switch of the interpreter lock per file
        while not self._closing.wait(WRITE_EVERY_S) or self._queue:
            while self._queue:
                name, data = self._queue.popleft()
                try:  # every Allure file passes the redactor (conformance/redact.py), on this thread
                    (self._dir / name).write_bytes(REDACTOR.data(data))
                except OSError as exc:  # a full disk: said once at close, the run itself goes on
                    self._error = self._error or exc
                self._written += 1

    def _report_item(self, item: Any) -> None:
        data = asdict(item, filter=lambda _, v: v or v is False)
        name = item.file_pattern.format(prefix=uuid.uuid4())
        self._enqueue(name, json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def _enqueue(self, name: str, data: bytes) -> None:
        self._queued += 1
        self._queue.append((name, data))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued file is written (the HTML report is made from them before the clean-up)."""
        deadline = time.monotonic() + timeout_s
        while self._written < self._queued and self._writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    @hookimpl
    def report_result(self, result: Any) -> None:
        self._report_item(result)

    @hookimpl
    def report_container(self, container: Any) -> None:
        self._report_item(container)

    @hookimpl
    def report_globals(self, globals_item: Any) -> None:
        self._report_item(globals_item)

    @hookimpl
    def report_attached_data(self, body: str | bytes, file_name: str) -> None:
        self._enqueue(file_name, body.encode("utf-8") if isinstance(body, str) else body)

    @hookimpl
    def report_attached_file(self, source: str, file_name: str) -> None:
        self._enqueue(file_name, Path(source).read_bytes())

    def close(self) -> None:
        self._closing.set()
        self._writer.join()
        if self._error is not None:
            print(f"conformance: warning: allure results incomplete: {self._error}", file=sys.stderr)


def flush() -> None:
    """Every result and attachment of this process is on disk once this returns."""
    for plugin in allure_commons.plugin_manager.get_plugins():
        if isinstance(plugin, BackgroundFileLogger):
            plugin.flush()


def _unregister_later(plugin: Any) -> Any:
    def clean_up() -> None:
        name = allure_commons.plugin_manager.get_name(plugin)
        if name is not None:
            allure_commons.plugin_manager.unregister(name=name)
        if isinstance(plugin, BackgroundFileLogger):
            plugin.close()

    return clean_up


def install(config: Any, report_dir: str) -> None:
    """Do what allure-pytest's pytest_configure does for --alluredir, with the lean listener. The caller has set
    config.option.allure_report_dir to None first, so allure-pytest itself registers no listener or logger."""
    clean = False if config.option.collectonly else config.option.clean_alluredir
    listener = _lean_listener_class()(config)
    config.pluginmanager.register(listener, "allure_listener")
    allure_commons.plugin_manager.register(listener)
    config.add_cleanup(_unregister_later(listener))
    file_logger = BackgroundFileLogger(os.path.abspath(report_dir), clean)
    allure_commons.plugin_manager.register(file_logger)
    config.add_cleanup(_unregister_later(file_logger))
