"""Allure results for a conformance run, written with as few files as the report needs.

allure-pytest writes one "container" file per fixture per test (four per conformance case) besides the result
and its attachments; on a slow disk those writes were a third of the suite's time per case. A container only
says that a fixture was set up and torn down; the report shows nothing from one that passed. So this logger
writes the containers of fixtures that did not pass (the set-up error of an unreachable target stays in the
report) and drops the rest. Everything else is allure-pytest's own listener and file format.
"""

from __future__ import annotations

import os
from typing import Any

import allure_commons
from allure_commons import hookimpl
from allure_commons.logger import AllureFileLogger


class LeanAllureFileLogger(AllureFileLogger):
    @hookimpl
    def report_container(self, container: Any) -> None:
        fixtures = [*container.befores, *container.afters]
        if any(getattr(f, "status", None) not in (None, "passed") for f in fixtures):
            super().report_container(container)


def _unregister_later(plugin: Any) -> Any:
    def clean_up() -> None:
        name = allure_commons.plugin_manager.get_name(plugin)
        if name is not None:
            allure_commons.plugin_manager.unregister(name=name)

    return clean_up


def install(config: Any, report_dir: str) -> None:
    """Do what allure-pytest's pytest_configure does for --alluredir, with the lean logger. The caller has set
    config.option.allure_report_dir to None first, so allure-pytest itself registers no listener or logger."""
    from allure_pytest.listener import AllureListener

    clean = False if config.option.collectonly else config.option.clean_alluredir
    listener = AllureListener(config)
    config.pluginmanager.register(listener, "allure_listener")
    allure_commons.plugin_manager.register(listener)
    config.add_cleanup(_unregister_later(listener))
    file_logger = LeanAllureFileLogger(os.path.abspath(report_dir), clean)
    allure_commons.plugin_manager.register(file_logger)
    config.add_cleanup(_unregister_later(file_logger))
