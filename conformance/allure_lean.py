"""Allure results for a conformance run, written with as few files and as little work as the report needs.

allure-pytest writes one "container" file per fixture per test (four per conformance case) besides the result
and its attachments; on a slow disk those writes were a third of the suite's time per case, and the listener's
bookkeeping for them (objects, ids, hooks around every fixture) a tenth of the pytest process's CPU. A container
only says that a fixture was set up and torn down. The conformance fixtures carry nothing a reader needs there:
the one that can break (`exchange`, an infrastructure error) breaks the test's set-up, and allure-pytest puts
that message on the test result itself. So the listener here does not track fixtures, and no container is
written. Results, attachments, labels and statuses are allure-pytest's own, in its file format.
"""

from __future__ import annotations

import os
from typing import Any

import allure_commons
import pytest
from allure_commons.logger import AllureFileLogger


def _lean_listener_class() -> type:
    from allure_pytest.listener import AllureListener

    class LeanAllureListener(AllureListener):  # type: ignore[misc]
        @pytest.hookimpl(hookwrapper=True)
        def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
            yield

        @pytest.hookimpl(hookwrapper=True)
        def pytest_fixture_post_finalizer(self, fixturedef: Any) -> Any:
            yield

    return LeanAllureListener


def _unregister_later(plugin: Any) -> Any:
    def clean_up() -> None:
        name = allure_commons.plugin_manager.get_name(plugin)
        if name is not None:
            allure_commons.plugin_manager.unregister(name=name)

    return clean_up


def install(config: Any, report_dir: str) -> None:
    """Do what allure-pytest's pytest_configure does for --alluredir, with the lean listener. The caller has set
    config.option.allure_report_dir to None first, so allure-pytest itself registers no listener or logger."""
    clean = False if config.option.collectonly else config.option.clean_alluredir
    listener = _lean_listener_class()(config)
    config.pluginmanager.register(listener, "allure_listener")
    allure_commons.plugin_manager.register(listener)
    config.add_cleanup(_unregister_later(listener))
    file_logger = AllureFileLogger(os.path.abspath(report_dir), clean)
    allure_commons.plugin_manager.register(file_logger)
    config.add_cleanup(_unregister_later(file_logger))
