"""Reports of a run: HTML (checked by parsing it), summary.md, conformance-report.yaml, diff, coverage."""

from __future__ import annotations

import hashlib
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from shared_runs import PLAIN, ROLE_NOT_ASSISTANT

from conformance.cli import main
from conformance.html import allure_binary
from conformance.resources import default_spec_dir
from conformance.spec import pinned_digests


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


def test_run_writes_html_summary_md_and_certificate(shared_run):
    result = shared_run(*PLAIN)
    assert result.code == 0
    run_dir = result.run_dir
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    assert page.cases == result.outcomes()
    assert {"fallback", "conformance-verdict", "cf-profiles", "cf-matrix"} <= page.ids
    assert {"cf-json cf-request-body", "cf-json cf-response-body", "cf-spec-section", "cf-spec-quote"} <= set(
        page.classes)
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
    assert report["spec"]["documents"] == pinned_digests() and len(pinned_digests()) >= 3
    spec = default_spec_dir()
    if spec is not None and spec.is_dir():
        for name, digest in report["spec"]["documents"].items():
            assert digest == "sha256:" + hashlib.sha256((spec / name).read_bytes()).hexdigest()
        assert report["spec"]["local"]["status"] == "same"


def test_failures_are_grouped_by_root_cause_and_rerendered(shared_run, capsys, tmp_path):
    result = shared_run(*ROLE_NOT_ASSISTANT)
    assert result.code == 1
    run_dir = tmp_path / "run"
    shutil.copytree(result.run_dir, run_dir)  # the shared run's folder stays as the run wrote it
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
    assert "cf-findings" in page.classes


def test_diff_lists_a_regression_and_fails(shared_run, capsys):
    clean = shared_run(*PLAIN).run_dir
    broken = shared_run(*ROLE_NOT_ASSISTANT).run_dir
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
    assert main(["coverage"]) == 0  # the spec files beside a checkout, else the pinned sections
    out = capsys.readouterr().out
    section = out.split("MLflow Chat Completions API:")[1].split("line")[0]
    assert "chat-multi-turn" in section
    assert "sections checked by at least one case" in out and out.rstrip().endswith(" 0 flagged")


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


def test_the_plugin_path_writes_the_same_reports(tmp_path, capsys, monkeypatch):
    """`pytest --pyargs conformance` is `conformance run`: summary.md, certificate, HTML, the exit status."""
    monkeypatch.delenv("CONFORMANCE_REFERENCE_TOKEN", raising=False)
    code = pytest.main(["--pyargs", "conformance", "-p", "no:cacheprovider", "-q", "-k",
                        "chat-system-and-user and claude-sonnet-4-5", "--conformance-reports", str(tmp_path),
                        "--conformance-html", "builtin", "--gateway-deviation", "role-not-assistant"])
    out = capsys.readouterr().out
    assert int(code) == 1, out[-2000:]
    run_dir = (tmp_path / "latest").resolve()
    for name in ("summary.json", "summary.md", "conformance-report.yaml", "report.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    assert "FAILED chat-system-and-user @ claude-sonnet-4-5: [assistant_role]" in out
    assert any(line.startswith("reports: ") for line in out.splitlines())


def test_allure_staging_groups_and_titles_cases_that_never_ran_their_body(tmp_path):
    """A case skipped (model not served) or errored in its set-up has no labels of its own: the staged result gets
    the surface / model type / model grouping, the `case @ model` title and the outcome of summary.json."""
    import json as json_module

    from conformance.html import stage_results

    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "a-result.json").write_text(json_module.dumps(
        {"name": "test_case[chat-system-and-user@gpt-5]", "status": "skipped",
         "labels": [{"name": "host", "value": "h"}],
         "parameters": [{"name": "case", "value": "chat-system-and-user@gpt-5", "mode": "hidden"}]}))
    (results / "b-result.json").write_text(json_module.dumps(
        {"name": "test_case[chat-multi-turn@gpt-5]", "status": "failed", "labels": []}))
    summary = {"target": {"name": "t"}, "totals": {}, "cases": [
        {"id": "chat-system-and-user", "model": "gpt-5", "surface": "chat_completions", "model_type": "chat",
         "outcome": "skipped", "message": "model not served: gpt-5 (not in the listing)"},
        {"id": "chat-multi-turn", "model": "gpt-5", "surface": "chat_completions", "model_type": "chat",
         "outcome": "error", "message": "infrastructure: timeout"}]}
    staging = tmp_path / "staging"
    staging.mkdir()
    assert stage_results(tmp_path, summary, staging) == 2
    skipped = json_module.loads((staging / "a-result.json").read_text())
    assert skipped["name"] == "chat-system-and-user @ gpt-5"
    assert {(lb["name"], lb["value"]) for lb in skipped["labels"]} == {
        ("epic", "chat_completions"), ("feature", "chat"), ("story", "gpt-5")}
    assert "model not served" in skipped["descriptionHtml"]
    errored = json_module.loads((staging / "b-result.json").read_text())
    assert errored["status"] == "broken" and errored["statusDetails"]["message"] == "infrastructure: timeout"


def test_the_first_screen_says_a_partial_strict_or_incomplete_run():
    """What the verdict does not cover is on the first screen of both reports (they share verdict_block)."""
    from conformance.html import run_state_html, verdict_block

    assert run_state_html({}) == ""
    summary = {"target": {"name": "gw", "url": "http://gw"}, "totals": {"passed": 1}, "cases": [],
               "aborted": "circuit breaker: 3 consecutive infrastructure errors", "strict": True,
               "incomplete": True, "not_run": {"deselected": 5, "budget_skipped": 2}}
    verdict = {"profiles": {"chat_completions": {"result": "partial", "reason": "incomplete: 5 case(s) deselected",
                                                 "statistics": {"passed": 1}}}}
    page = verdict_block(summary, verdict)
    assert "Partial run, aborted:</b> circuit breaker: 3 consecutive" in page
    assert "5 case(s) deselected (-k / -m), 2 skipped for the token budget" in page
    assert "--strict:</b> warnings" in page
    assert 'title="incomplete: 5 case(s) deselected"' in page and ">why not success</th>" in page
    assert "interrupted" in run_state_html({"interrupted": "SIGTERM"})


def test_allure_outcome_tags_follow_the_record_once(tmp_path):
    """The test body tags a result with only should findings `warned`; the staged result's tags follow the
    case's outcome in summary.json: once for a warned case, not at all for one --strict failed."""
    import json as json_module

    from conformance.html import stage_results

    results = tmp_path / "allure-results"
    results.mkdir()
    for name, case in (("a", "chat-system-and-user@gpt-5"), ("b", "chat-multi-turn@gpt-5")):
        (results / f"{name}-result.json").write_text(json_module.dumps(
            {"name": f"{case.split('@')[0]} @ gpt-5", "status": "passed",
             "labels": [{"name": "conformance_case", "value": case}, {"name": "tag", "value": "warned"}]}))
    record = {"model": "gpt-5", "surface": "chat_completions", "model_type": "chat",
              "findings": [{"check": "usage_total_is_sum", "strength": "should", "message": "$.usage: 3 != 2"}]}
    summary = {"target": {"name": "t"}, "totals": {}, "cases": [
        {**record, "id": "chat-system-and-user", "outcome": "warned", "message": "[usage_total_is_sum] $.usage"},
        {**record, "id": "chat-multi-turn", "outcome": "failed", "message": "[usage_total_is_sum] $.usage"}]}
    staging = tmp_path / "staging"
    staging.mkdir()
    assert stage_results(tmp_path, summary, staging) == 2
    warned, failed = (json_module.loads((staging / f"{n}-result.json").read_text()) for n in "ab")
    assert warned["status"] == "unknown" and [lb["value"] for lb in warned["labels"] if lb["name"] == "tag"] == [
        "warned"]
    assert failed["status"] == "failed" and not [lb for lb in failed["labels"] if lb["name"] == "tag"]


def test_diff_into_a_closed_pipe_is_quiet():
    """`conformance diff A B | head -1`: the reader closes the pipe; no BrokenPipeError traceback, status 141."""
    import subprocess
    import sys

    certs = Path(__file__).resolve().parent.parent / "docs" / "certifications"
    runs = sorted(certs.glob("*/summary.json"))[:2]
    assert len(runs) == 2
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "diff", *map(str, runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as head does, here before the first line is written (the child is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
