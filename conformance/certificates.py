"""`conformance certificates DIR`: the comparison page of the certificates in DIR, written to DIR/README.md.

A certificate is a folder DIR/<gateway>-<version>/ holding the conformance-report.yaml of a certification run
(scripts/certify_<gateway>.py writes them) and, written by hand, the ANALYSIS.md that accounts for every case
that did not pass. The page puts them side by side: one row per certificate (date, suite version, totals), then
the verdict of every profile for every certificate, with its failed and warned counts. It is generated, never
edited: it holds nothing the certificates do not say, and no time of its own, so writing it again from the same
certificates gives the same page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.errors import BadInput

REPORT = "conformance-report.yaml"
RECORD = "certification.yaml"  # written by conformance/peers.py: the suite commit that made the certificate
ANALYSIS = "ANALYSIS.md"
PAGE = "README.md"
RESULTS = ("success", "partial", "failure", "not-claimed", "not-run")


@dataclass
class Certificate:
    folder: str  # its name inside DIR: the link target
    name: str
    version: str
    date: str
    suite_version: str
    totals: dict[str, int]
    profiles: dict[str, dict[str, Any]]
    has_analysis: bool
    incomplete: bool
    suite_commit: str | None = None
    suite_modified: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def _version_key(version: str) -> tuple[Any, ...]:
    """1.10.0 after 1.9.8: numbers compare as numbers, anything else as text after them."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+]", version))


def load_certificate(folder: Path) -> Certificate:
    path = folder / REPORT
    try:
        report = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(report, dict) or not isinstance(report.get("profiles"), dict):
        raise BadInput(f"{path} is not a conformance report (no profiles)")
    impl = report.get("implementation") or {}
    incomplete = False
    summary = folder / "summary.json"
    if summary.exists():
        try:
            incomplete = bool(json.loads(summary.read_text(encoding="utf-8")).get("incomplete"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{summary} is not valid JSON: {exc}") from None
    record: dict[str, Any] = {}
    if (folder / RECORD).exists():
        try:
            record = yaml.safe_load((folder / RECORD).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise BadInput(f"{folder / RECORD} is not valid YAML: {str(exc).splitlines()[0]}") from None
    suite = record.get("suite") if isinstance(record, dict) else None
    suite = suite if isinstance(suite, dict) else {}
    return Certificate(
        folder=folder.name,
        name=str(impl.get("name") or folder.name),
        version=str(impl.get("version") or "?"),
        date=str(report.get("date") or "?"),
        suite_version=str(report.get("suite_version") or "?"),
        totals={k: int(v) for k, v in (report.get("totals") or {}).items() if isinstance(v, int)},
        profiles=report["profiles"],
        has_analysis=(folder / ANALYSIS).is_file(),
        incomplete=incomplete,
        suite_commit=str(suite["commit"]) if suite.get("commit") else None,
        suite_modified=bool(suite.get("modified")),
    )


def load_certificates(folder: Path) -> list[Certificate]:
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder")
    found = [load_certificate(sub) for sub in sorted(folder.iterdir()) if (sub / REPORT).is_file()]
    if not found:
        raise BadInput(f"{folder}: no certificate (a folder holding {REPORT}) in it")
    return sorted(found, key=lambda c: (c.name, _version_key(c.version)))


def _count(stats: dict[str, Any], *keys: str) -> int:
    for key in keys:
        if isinstance(stats.get(key), int):
            return stats[key]
    return 0


def verdict_cell(profile: dict[str, Any] | None) -> str:
    """`failure: 4 failed, 2 warned`: the result, then what did not pass (skips are not claims: left out)."""
    if profile is None:
        return "-"
    result = str(profile.get("result", "?"))
    stats = profile.get("statistics") or {}
    errors = _count(stats, "errors", "error")
    parts = [f"{n} {what}" for n, what in ((_count(stats, "failed"), "failed"), (_count(stats, "warned"), "warned"),
                                           (errors, "error" if errors == 1 else "errors")) if n]
    shown = f"**{result}**" if result == "failure" else result
    return shown + (": " + ", ".join(parts) if parts else "")


def _day(date: str) -> str:
    return date[:10] if re.match(r"\d{4}-\d{2}-\d{2}", date) else date


def render(certificates: list[Certificate]) -> str:
    lines = [
        "# Certificates side by side",
        "",
        "Generated by `conformance certificates docs/certifications` from the certificates in this folder; do not",
        "edit it, run the command again after a certification. Each certificate was made by its one command",
        "(README: \"Certifying another gateway\"), with the reference gateway as the gateway's upstream on loopback;",
        "its ANALYSIS.md accounts for every case that did not pass.",
        "",
        "| gateway | version | date | suite | passed | failed | warned | skipped | errors | analysis |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for cert in certificates:
        t = cert.totals
        analysis = (f"[ANALYSIS.md]({cert.folder}/{ANALYSIS})" if cert.has_analysis else "**missing**")
        analysis += f", [summary]({cert.folder}/summary.md)"
        version = cert.version + (" (incomplete run)" if cert.incomplete else "")
        suite = cert.suite_version
        if cert.suite_commit:
            suite += f" at {cert.suite_commit[:10]}" + (" (modified)" if cert.suite_modified else "")
        lines.append(f"| {cert.name} | {version} | {_day(cert.date)} | {suite} | "
                     f"{_count(t, 'passed')} | {_count(t, 'failed')} | {_count(t, 'warned')} | "
                     f"{_count(t, 'skipped')} | {_count(t, 'errors', 'error')} | {analysis} |")
    names = sorted({p for cert in certificates for p in cert.profiles})
    lines += [
        "",
        "## Verdict per profile",
        "",
        "A profile is a surface (or auth, errors, clients...) with its core and extended features",
        "(conformance/data/features.yaml). `success`: everything that ran passed; `partial`: no `must` case of a",
        "core feature failed, something else did not pass; `failure`: a `must` case of core features failed;",
        "`not-claimed`: the gateway claims none of the profile's features, so its cases were skipped.",
        "",
        "| profile | " + " | ".join(cert.label for cert in certificates) + " |",
        "| --- |" + " --- |" * len(certificates),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(verdict_cell(cert.profiles.get(name)) for cert in certificates) + " |")
    tally = {result: [sum(1 for p in cert.profiles.values() if p.get("result") == result) for cert in certificates]
             for result in RESULTS}
    lines += ["", "| profiles | " + " | ".join(cert.label for cert in certificates) + " |",
              "| --- |" + " ---: |" * len(certificates)]
    for result, counts in tally.items():
        if any(counts):
            lines.append(f"| {result} | " + " | ".join(str(n) for n in counts) + " |")
    return "\n".join(lines) + "\n"


def write_page(folder: Path) -> tuple[Path, list[Certificate]]:
    certificates = load_certificates(folder)
    page = folder / PAGE
    page.write_text(render(certificates), encoding="utf-8")
    return page, certificates
