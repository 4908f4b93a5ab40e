"""Both HTML reports, rendered by a real browser (headless Chromium), read as a person would see them.

Found opening the reports of a run: the Allure report's first screen was "Allure Report" with one node
`test_conformance` holding 644 flat `test_case[...]` leaves and a 2 KB `case_item` parameter; the verdict per
profile and the surface x model-type matrix existed only in summary.md; bodies were escaped one-line strings and
the failing field off screen. These tests assert on the DOM Chromium renders (--dump-dom), not on the HTML
source: the Allure report is built by its scripts in the browser. The run has one case of each kind: a broken must
rule (a stream without its terminator: failed), a broken should rule (usage that does not add up: warned), and
passed ones; it is incomplete (-k), which both first screens say.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.html import allure_binary

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (Debian: apt-get install chromium)")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Any:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        def matches(node: Node) -> bool:
            if tag and node.tag != tag:
                return False
            for key, value in attrs.items():
                have = node.attrs.get(key.replace("_", "-")) or ""
                if key == "class_":
                    have = node.attrs.get("class") or ""
                    if value not in have.split():
                        return False
                elif have != value:
                    return False
            return True

        return [n for n in self.walk() if matches(n)]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'} {attrs}> in the rendered page"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    return builder.root


def rendered(url: str, until: str) -> Node:
    """The DOM after the page's scripts ran; `until` must be in it (a slow machine gets a longer budget)."""
    for budget in (15000, 60000):
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                               f"--virtual-time-budget={budget}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=240)
        if until in done.stdout:
            return parse(done.stdout)
    raise AssertionError(f"{until!r} never rendered in {url}: {done.stderr[-500:]}")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    code = main(["run", "--reports", str(reports), "-n", "0", "--concurrency", "1", "--html", "none",
                 "--deviation", "usage-sum-wrong", "--deviation", "stream-no-done", "-k",
                 "(chat-system-and-user or chat-messages-missing or chat-stream-system-and-user) "
                 "and claude-sonnet-4-5"])
    assert code == 1
    return (reports / "latest").resolve()


def certified(run_dir: Path) -> dict[str, str]:
    import yaml

    report = yaml.safe_load((run_dir / "conformance-report.yaml").read_text())
    return {name: p["result"] for name, p in report["profiles"].items()
            if any(p["statistics"].values())}


FAILED = "chat-stream-system-and-user@claude-sonnet-4-5"
WARNED = "chat-system-and-user@claude-sonnet-4-5"


def test_builtin_page_reads_as_a_person_would(run_dir):
    assert main(["report", str(run_dir), "--html", "builtin"]) == 0
    dom = rendered((run_dir / "report.html").as_uri(), "conformance-verdict")
    body = dom.find("body")
    verdict = body.find(id="conformance-verdict")
    assert verdict.find("h1").text().strip() == "Conformance: reference"
    # the first screen: the verdict comes before any case
    order = [n for n in body.walk() if n.attrs.get("id") == "conformance-verdict" or "case" in
             (n.attrs.get("class") or "").split()]
    assert order[0] is verdict
    profiles = {row.attrs["data-profile"]: row.attrs["data-result"]
                for row in verdict.find(id="cf-profiles").find_all("tr", class_="cf-profile")}
    assert profiles == certified(run_dir) and profiles["chat_completions"] != "success"
    reasons = [row.find(class_="cf-reason").attrs["title"]
               for row in verdict.find(id="cf-profiles").find_all("tr", class_="cf-profile")]
    assert any(r.startswith("incomplete") or "incomplete:" in r for r in reasons), reasons
    assert "Incomplete run" in verdict.find(class_="cf-incomplete").text()
    cell = verdict.find(id="cf-matrix").find(data_cell="chat_completions/chat")
    assert cell.find(class_="cf-failed").text() == "✗1" and cell.find(class_="cf-warned").text() == "!1"
    totals = {n.attrs["data-outcome"]: n.text() for n in verdict.find_all(class_="cf-total")}
    assert totals["warned"] == "1 warned" and totals["failed"] == "1 failed"

    cases = {n.attrs["data-case"]: n for n in body.find_all("details", class_="case")}
    assert {n.attrs["data-outcome"] for n in cases.values()} == {"failed", "warned", "passed"}
    assert cases[FAILED].attrs["data-outcome"] == "failed" and cases[WARNED].attrs["data-outcome"] == "warned"
    warned = cases[WARNED]
    finding = warned.find(class_="cf-finding")
    assert finding.attrs["data-strength"] == "should" and "usage_total_is_sum" in finding.text()
    assert "Warnings" in warned.text() and "Failed checks" not in warned.text()
    marked = warned.find(class_="cf-hl")
    assert marked.attrs["data-path"] == "$.usage.total_tokens" and '"total_tokens"' in marked.text()
    response = warned.find(class_="cf-response-body").text()
    assert response.startswith("{\n  \"") and "\n    " in response, "indented JSON, not one escaped line"
    section, quote = warned.find(class_="cf-spec-section"), warned.find("blockquote", class_="cf-spec-quote")
    assert "Chat" in section.text() and quote.text() and quote.text() not in section.text()
    failed = cases[FAILED]
    assert failed.find(class_="cf-finding").attrs["data-strength"] == "must"
    assert "Failed checks" in failed.text() and "stream_done_terminator" in failed.text()
    events = failed.find_all(class_="cf-event")
    assert len(events) > 2 and events[0].find(class_="cf-event-data").text().startswith("{\n")
    assert "case_item" not in body.text()


@pytest.mark.skipif(allure_binary() is None, reason="Allure is not installed (conformance html-setup)")
def test_allure_report_is_grouped_named_and_opens_on_the_verdict(run_dir):
    assert main(["report", str(run_dir), "--html", "allure"]) == 0
    index = run_dir / "html" / "index.html"
    dom = rendered(index.as_uri(), "tree-leaf-title")
    body = dom.find("body")
    verdict = body.find(id="conformance-verdict")
    app = body.find(id="app")
    nodes = list(body.walk())
    assert nodes.index(verdict) < nodes.index(app), "the verdict is the report's first screen"
    assert verdict.find(id="cf-profiles") and verdict.find(id="cf-matrix")
    assert "Incomplete run" in verdict.find(class_="cf-incomplete").text()
    assert app.find(data_testid="report-title").text().strip() == "Conformance: reference"

    def titles(node: Node, testid: str) -> list[str]:
        return [n.text().strip() for n in node.find_all(data_testid=testid)]

    surfaces = [s for s in app.find_all(data_testid="tree-section")
                if s.find(data_testid="tree-section-title").text() == "chat_completions"]
    assert surfaces, titles(app, "tree-section-title")
    subtree = surfaces[0].parent
    assert "chat" in titles(subtree, "tree-section-title") and "claude-sonnet-4-5" in titles(subtree,
                                                                                          "tree-section-title")
    leaves = {n.find(data_testid="tree-leaf-title").text().strip(): n for n in app.find_all(data_testid="tree-leaf")}
    assert "chat-system-and-user @ claude-sonnet-4-5" in leaves, sorted(leaves)
    status = {title: next(c.attrs["data-testid"] for c in leaf.walk()
                          if (c.attrs.get("data-testid") or "").startswith("tree-leaf-status-"))
              for title, leaf in leaves.items()}
    assert status["chat-stream-system-and-user @ claude-sonnet-4-5"] == "tree-leaf-status-failed"
    assert status["chat-system-and-user @ claude-sonnet-4-5"] == "tree-leaf-status-unknown", "warned, not failed"
    assert "case_item" not in index.read_text()

    warned = leaves["chat-system-and-user @ claude-sonnet-4-5"].attrs["id"]
    page = rendered(f"{index.as_uri()}#{warned}", "srcdoc")
    frames = [n for n in page.walk() if n.tag == "iframe" and "cf-spec-section" in (n.attrs.get("srcdoc") or "")]
    assert frames, "the test's description"
    description = parse(frames[0].attrs["srcdoc"])
    assert description.find(class_="cf-hl").attrs["data-path"] == "$.usage.total_tokens"
    assert description.find("blockquote", class_="cf-spec-quote").text()
    assert description.find(class_="cf-response-body").text().startswith("{\n  \"")
