"""`conformance certificates DIR`: the comparison page, from two small synthetic certificates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conformance.certificates import load_certificates, render
from conformance.cli import main
from conformance.resources import PACKAGE_DIR


def report(name: str, version: str, date: str, totals: dict[str, int], profiles: dict[str, tuple]) -> dict:
    """profiles: name -> (result, failed, warned, errors)"""
    return {
        "apiVersion": "conformance.ai-gateway/v1alpha1", "kind": "ConformanceReport",
        "implementation": {"name": name, "version": version, "url": "http://127.0.0.1:1"},
        "date": date, "suite_version": "0.1.0", "totals": totals,
        "profiles": {p: {"result": r, "statistics": {"passed": 3, "failed": f, "warned": w, "skipped": 1, "errors": e}}
                     for p, (r, f, w, e) in profiles.items()},
    }


def certificate(folder: Path, data: dict, analysis: bool = True, record: dict | None = None,
                summary: dict | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "conformance-report.yaml").write_text(yaml.safe_dump(data))
    if analysis:
        (folder / "ANALYSIS.md").write_text("# analysis\n")
    if record is not None:
        (folder / "certification.yaml").write_text(yaml.safe_dump(record))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def two(tmp_path: Path) -> Path:
    certs = tmp_path / "certifications"
    certificate(certs / "gw-a-1.10.0", report(
        "gw-a", "1.10.0", "2026-12-01T11:39:24+00:00",
        {"passed": 40, "failed": 3, "warned": 2, "skipped": 5, "errors": 1},
        {"chat_completions": ("failure", 3, 0, 0), "embeddings": ("partial", 0, 2, 1),
         "invocations": ("not-claimed", 0, 0, 0)}),
        record={"suite": {"commit": "0123456789abcdef0123", "modified": False}})
    certificate(certs / "gw-a-1.9.8", report(
        "gw-a", "1.9.8", "2026-11-02T08:00:00+00:00", {"passed": 30, "failed": 0, "skipped": 2, "errors": 0},
        {"chat_completions": ("success", 0, 0, 0)}), analysis=False, summary={"incomplete": True})
    certificate(certs / "gw-b-2.0", report(
        "gw-b", "2.0", "2026-12-01T12:00:00+00:00", {"passed": 44, "failed": 0, "warned": 0, "skipped": 4,
                                                    "errors": 0},
        {"chat_completions": ("success", 0, 0, 0), "embeddings": ("success", 0, 0, 0)}))
    (certs / "notes").mkdir()  # a folder without a report is not a certificate
    return certs


def test_the_page_puts_the_certificates_side_by_side(two, capsys):
    assert main(["certificates", str(two)]) == 0
    page = (two / "README.md").read_text()
    out, err = capsys.readouterr()
    assert "3 certificate(s): gw-a 1.9.8, gw-a 1.10.0, gw-b 2.0" in out  # versions compare as numbers
    assert "no ANALYSIS.md in gw-a-1.9.8" in err
    rows = [line for line in page.splitlines() if line.startswith("| gw-")]
    assert rows[0].startswith("| gw-a | 1.9.8 (incomplete run) | 2026-11-02 | 0.1.0 | 30 | 0 | 0 | 2 | 0 | **missing**")
    assert rows[1] == ("| gw-a | 1.10.0 | 2026-12-01 | 0.1.0 at 0123456789 | 40 | 3 | 2 | 5 | 1 | "
                       "[ANALYSIS.md](gw-a-1.10.0/ANALYSIS.md), [summary](gw-a-1.10.0/summary.md) |")
    assert rows[2].startswith("| gw-b | 2.0 | 2026-12-01 | 0.1.0 | 44 | 0 | 0 | 4 | 0 | [ANALYSIS.md](gw-b-2.0/")
    assert "| profile | gw-a 1.9.8 | gw-a 1.10.0 | gw-b 2.0 |" in page
    assert "| chat_completions | success | **failure**: 3 failed | success |" in page
    assert "| embeddings | - | partial: 2 warned, 1 error | success |" in page  # no such profile in 1.9.8: "-"
    assert "| invocations | - | not-claimed | - |" in page
    assert "| failure | 0 | 1 | 0 |" in page and "| success | 1 | 0 | 2 |" in page
    assert "notes" not in page


def test_the_page_is_the_same_when_written_again(two):
    assert main(["certificates", str(two)]) == 0
    first = (two / "README.md").read_text()
    assert main(["certificates", str(two)]) == 0
    assert (two / "README.md").read_text() == first  # no time of its own: no churn in the committed page


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "not a folder"),
    (lambda d: d.mkdir(), "no certificate"),
    (lambda d: (d / "x").mkdir(parents=True) or (d / "x" / "conformance-report.yaml").write_text("a: [1"),
     "is not valid YAML"),
    (lambda d: (d / "x").mkdir(parents=True) or (d / "x" / "conformance-report.yaml").write_text("a: 1\n"),
     "is not a conformance report"),
])
def test_bad_certificate_folders_are_one_line_of_bad_input(tmp_path, capsys, setup, message):
    folder = tmp_path / "certs"
    setup(folder)
    assert main(["certificates", str(folder)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_committed_comparison_page_is_current():
    """docs/certifications/README.md is what the command writes from the committed certificates."""
    folder = PACKAGE_DIR.parent / "docs" / "certifications"
    assert (folder / "README.md").read_text() == render(load_certificates(folder)), \
        "run `conformance certificates docs/certifications` after a certification"
