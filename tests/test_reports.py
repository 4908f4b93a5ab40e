"""Reports of a run: HTML (checked by parsing it), summary.md, conformance-report.yaml, diff, coverage."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conformance.certify import default_spec_dir
from conformance.cli import main
from conformance.html import allure_binary


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cases: dict[str, str] = {}
        self.classes: list[str] = []
        self.scripts: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details" and "data-case" in a:
            self.cases[a["data-case"]] = a["data-outcome"]
        if "class" in a:
            self.classes.append(a["class"])
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.scripts.append(a.get("src", ""))


def test_run_writes_html_summary_md_and_certificate(run_cli):
    result = run_cli("run", "-k", "chat-system or auth or malformed", "--html", "builtin")
    assert result.code == 0
    run_dir = result.run_dir
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    assert page.cases == result.outcomes()
    assert {"fallback", "totals", "profiles"} <= page.ids
    assert {"request", "response", "spec", "snapshot"} <= set(page.classes)
    assert page.scripts == []  # opens offline: nothing to fetch
    text = (run_dir / "report.html").read_text()
    assert "Authorization" not in text or "Bearer ref-" not in text

    md = (run_dir / "summary.md").read_text()
    assert "| chat_completions | chat |" in md and "| auth | chat |" in md
    assert "### Verdict per profile" in md and "| chat_completions | partial |" in md  # -k: incomplete
    assert "**Incomplete run**" in md
    assert "### Failures (0 cases, 0 root causes)" in md and "### Warnings (0 cases, 0 root causes)" in md

    report = yaml.safe_load((run_dir / "conformance-report.yaml").read_text())
    assert report["implementation"]["name"] == "reference"
    assert report["suite_version"] and report["date"]
    assert report["profiles"]["chat_completions"]["result"] == "partial" and report["incomplete"] is True
    assert report["profiles"]["chat_completions"]["reason"].startswith("incomplete: ")
    assert report["profiles"]["auth"]["statistics"]["failed"] == 0
    spec = default_spec_dir()
    if spec.is_dir():
        for name, digest in report["spec"]["documents"].items():
            assert digest == "sha256:" + hashlib.sha256((spec / name).read_bytes()).hexdigest()
        assert len(report["spec"]["documents"]) >= 3


def test_failures_are_grouped_by_root_cause_and_rerendered(run_cli, capsys):
    result = run_cli("run", "--deviation", "role-not-assistant", "-k", "chat-system or auth", "--html", "builtin")
    assert result.code == 1
    run_dir = result.run_dir
    for name in ("summary.md", "conformance-report.yaml", "report.html"):
        (run_dir / name).unlink()
    assert main(["report", str(run_dir), "--html", "builtin"]) == 0
    report = yaml.safe_load((run_dir / "conformance-report.yaml").read_text())
    chat = report["profiles"]["chat_completions"]
    assert chat["result"] == "failure" and "core features failed" in chat["reason"]
    assert chat["statistics"]["failed"] == len(chat["failed_cases"]) > 0
    assert "chat-system-and-user@claude-sonnet-4-5" in chat["failed_cases"]
    assert report["deviations"] == ["role-not-assistant"]
    md = (run_dir / "summary.md").read_text()
    failed = [c for c in yaml.safe_load((run_dir / "summary.json").read_text())["cases"] if c["outcome"] == "failed"]
    assert re.search(rf"### Failures \({len(failed)} cases, 1 root cause\)", md)
    assert re.search(r"^- \[assistant_role\] \(must\) \$\.choices\[0\]\.message\.role: 'model', expected "
                     rf"'assistant' — {len(failed)} cases: `", md, re.M)
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    assert page.cases["chat-system-and-user@claude-sonnet-4-5"] == "failed"
    assert "failures" in page.classes


def test_diff_lists_a_regression_and_fails(run_cli, capsys):
    clean = run_cli("run", "-k", "chat-system", "--html", "none").run_dir
    broken = run_cli("run", "--deviation", "role-not-assistant", "-k", "chat-system or truncated",
                     "--html", "none").run_dir
    capsys.readouterr()
    assert main(["diff", str(clean), str(broken)]) == 1
    out = capsys.readouterr().out
    assert "regressed: " in out and "chat-system-and-user@claude-sonnet-4-5: passed -> failed" in out
    assert "appeared: " in out and "chat-truncated-max-tokens@" in out
    assert main(["diff", str(broken), str(clean)]) == 0
    out = capsys.readouterr().out
    assert "recovered: " in out and "vanished: " in out and "regressed: 0" in out


@pytest.mark.parametrize("argv", [["diff", "/no/such/run", "/no/such/run"], ["report", "/no/such/run"],
                                  ["diff", "only-one"], ["coverage", "--spec", "/no/such/spec"],
                                  ["run", "--spec", "/no/such/spec"]])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("conformance: error:") and err.count("\n") == 1


def test_coverage_lists_sections_and_flags_the_unchecked(capsys):
    if not default_spec_dir().is_dir():
        pytest.skip("spec not found")
    assert main(["coverage"]) == 0
    out = capsys.readouterr().out
    section = out.split("MLflow Chat Completions API:")[1].split("line")[0]
    assert "chat-multi-turn" in section
    assert "NO CASE" in out and "sections checked by at least one case" in out


@pytest.mark.skipif(allure_binary() is None, reason="Allure is not installed (conformance html-setup)")
def test_allure_html_is_one_offline_file(run_cli):
    result = run_cli("run", "-k", "chat-system-and-user", "--html", "allure")
    index = result.run_dir / "html" / "index.html"
    text = index.read_text()
    assert len(text) > 100_000 and "googletagmanager" not in text
    assert "chat-system-and-user" in text or "allure" in text.lower()


def test_html_setup_without_npm_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CONFORMANCE_TOOLS_DIR", str(tmp_path / "tools"))
    assert main(["html-setup"]) == 0
    assert "npm not found" in capsys.readouterr().out
    assert not Path(tmp_path / "tools").exists()
