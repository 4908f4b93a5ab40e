"""The HTML reports of a run: Allure 3 (npm package `allure`) when installed, else a page of our own.

`conformance html-setup` installs the pinned Allure into a per-user folder with npm (resources.tools_dir():
$CONFORMANCE_TOOLS_DIR, else ~/.local/share/gateway-conformance/tools), so an installed suite finds it from any
directory.

Both reports open on the same first screen (verdict_block): the verdict per profile and the surface x model-type
matrix. Below it, every case with its spec section, the spec's quote set apart, its findings, and its request and
response pretty-printed with the failed paths highlighted (pretty.py).

Allure: the run's allure-results are copied to a staging folder where each result gets what only the finished
run knows: its outcome (warned is Allure's `unknown`, an infrastructure error `broken`), and the readable
description; then `allure awesome --single-file --group-by epic,feature,story` (surface / model type / model)
writes one self-contained index.html named "Conformance: <target> <version>", the verdict block is put at its
top, and its Google Analytics tag removed so it opens offline without calling out. The raw allure-results stay
as pytest wrote them.

Without node or Allure the suite writes `report.html` itself: one file, no scripts, built from summary.json and
allure-results/ (the same redacted evidence), and it says that it is the fallback.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from conformance import latency
from conformance.casemodel import CaseBase
from conformance.errors import BadInput
from conformance.pretty import LABEL, PRE, evidence_html
from conformance.resources import tools_dir

ALLURE_VERSION = "3.18.0"  # pinned: the report's layout (and the self-tests that read it) are this release's
ALLURE_PACKAGE = f"allure@{ALLURE_VERSION}"
# the tag loader and the short inline script that defines gtag(); never the report's data script, whose base64
# may hold "gtag" by chance (matching it case-insensitively anywhere once removed a whole report's data)
ANALYTICS = re.compile(r"<script[^>]*googletagmanager[^>]*>\s*</script>|<script[^>]*>[^<]{0,2000}?function gtag\("
                       r"[^<]{0,2000}</script>")
CASE_LABEL = "conformance_case"
# outcome -> (Allure status, what the report's legend calls it)
ALLURE_STATUS = {"passed": "passed", "failed": "failed", "warned": "unknown", "error": "broken",
                 "skipped": "skipped"}
NOISE_LABELS = {"host", "thread", "framework", "language", "package", "suite", "subSuite", "parentSuite"}
NOISE_TAGS = {"syrupy_snapshot"}
OUTCOME_TAGS = ("warned", "infrastructure")
OUTCOME_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "warned": "#9a6700", "skipped": "#6e7781",
                   "error": "#8250df"}
RESULT_COLOURS = {"success": "#1a7f37", "partial": "#9a6700", "failure": "#cf222e", "not-claimed": "#6e7781",
                  "not-run": "#6e7781"}


# --- Allure: install, find ------------------------------------------------------------------------------------


def allure_folder() -> Path:
    return tools_dir() / "allure"


def allure_binary() -> Path | None:
    binary = allure_folder() / "node_modules" / ".bin" / "allure"
    return binary if binary.exists() and shutil.which("node") else None


def installed_version() -> str | None:
    try:
        manifest = json.loads((allure_folder() / "node_modules" / "allure" / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest.get("version")


def install_allure() -> str:
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found: HTML reports will use the built-in single-file page"
    folder = allure_folder()
    if installed_version() == ALLURE_VERSION and allure_binary() is not None:
        return f"Allure {ALLURE_VERSION} is installed in {folder}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "package.json").exists():
        (folder / "package.json").write_text('{"name": "conformance-tools", "private": true}\n', encoding="utf-8")
    try:
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", ALLURE_PACKAGE],
                              cwd=folder, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise BadInput("npm install allure timed out after 600 s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"npm install allure failed: {last}")
    return f"Allure {ALLURE_VERSION} installed in {folder}"


def strip_analytics(text: str) -> str:
    return ANALYTICS.sub("", text)


# --- what both reports show -----------------------------------------------------------------------------------


def report_name(summary: dict[str, Any]) -> str:
    target = summary["target"]
    return "Conformance: " + str(target["name"]) + (f" {target['version']}" if target.get("version") else "")


def outcome_matrix(summary: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], Counter[str]]]:
    """surfaces, model types and the outcome counts of each (surface, model type) cell."""
    cells: dict[tuple[str, str], Counter[str]] = {}
    for record in summary["cases"]:
        cells.setdefault((record["surface"], record["model_type"]), Counter())[record["outcome"]] += 1
    surfaces = sorted({s for s, _ in cells})
    order = ["chat", "vision", "audio_video", "reasoning", "embeddings"]
    types = sorted({t for _, t in cells}, key=lambda t: (order.index(t) if t in order else len(order), t))
    return surfaces, types, cells


def _count(outcome: str, n: int, symbol: str) -> str:
    colour = OUTCOME_COLOURS[outcome]
    return f'<span class="cf-n cf-{outcome}" title="{n} {outcome}" style="color:{colour}">{symbol}{n}</span>'


def _cell(counts: Counter[str]) -> str:
    parts = []
    for outcome, symbol in (("passed", "✓"), ("failed", "✗"), ("warned", "!"), ("error", "⚠"), ("skipped", "\u2013")):
        if counts.get(outcome):
            parts.append(_count(outcome, counts[outcome], symbol))
    return " ".join(parts)


TABLE = "border-collapse:collapse;font:13px system-ui,sans-serif;margin:4px 0"
TH = "border-bottom:1px solid #d0d7de;padding:2px 8px;text-align:left;font-weight:600;color:#333"
TD = "border-bottom:1px solid #eaeef2;padding:1px 8px;text-align:left"


def verdict_block(summary: dict[str, Any], verdict: dict[str, Any], legend: str = "", collapsible: bool = False) -> str:
    """The first screen of both reports: who was tested, the verdict per profile, the surface x model-type matrix."""
    esc = html.escape
    target, totals = summary["target"], summary["totals"]
    spec = verdict.get("spec", {})
    local = spec.get("local", {})
    spec_note = {"same": "the local spec files are the pinned ones", "not-found": "pinned digests",
                 "differs": "local spec files DIFFER from the pinned ones"}.get(local.get("status", ""), "")
    chips = " ".join(
        f'<span class="cf-total" data-outcome="{k}" style="display:inline-block;margin-right:12px;'
        f'color:{OUTCOME_COLOURS[o]};font-weight:600">{totals.get(k, 0)} {label}</span>'
        for k, o, label in (("passed", "passed", "passed"), ("failed", "failed", "failed"),
                            ("warned", "warned", "warned"), ("skipped", "skipped", "skipped"),
                            ("errors", "error", "errors")))
    rows, idle = [], []
    # the "why not success" column only when a profile that ran is not a success
    why = any(p.get("reason") and any(p.get("statistics", {}).values()) for p in verdict.get("profiles", {}).values())
    for name, profile in verdict.get("profiles", {}).items():
        s = profile.get("statistics", {})
        ran = sum(s.get(k, 0) for k in ("passed", "failed", "warned", "errors", "skipped"))
        result = profile.get("result", "")
        if not ran:  # no case of this profile in the run: one line below the table, not a row of zeros
            idle.append(f"{name} ({result})")
            continue
        style = TD
        failed = f"{s.get('failed', 0)}" + (f" ({s['must_failures']} must)" if s.get("must_failures") else "")
        reason = str(profile.get("reason") or "")
        shown = reason if len(reason) <= REASON_SHOWN else reason[:REASON_SHOWN] + "…"
        rows.append(
            f'<tr class="cf-profile" data-profile="{esc(name)}" data-result="{esc(result)}">'
            f'<td style="{style}">{esc(name)}</td><td style="{style};font-weight:600;color:'
            f'{RESULT_COLOURS.get(result, "#333")}">{esc(result)}</td>'
            + "".join(f'<td style="{style};text-align:right">{v}</td>'
                      for v in (s.get("passed", 0), failed, s.get("warned", 0), s.get("skipped", 0),
                                s.get("errors", 0)))
            + (f'<td class="cf-reason" title="{esc(reason)}" style="{style};color:#57606a;font-size:12px">'
               f"{esc(shown)}</td>" if why else "") + "</tr>")
    profiles = (f'<table id="cf-profiles" style="{TABLE}"><tr>' + "".join(
        f'<th style="{TH}">{h}</th>' for h in ("profile", "result", "passed", "failed", "warned", "skipped",
                                               "errors", *(("why not success",) if why else ()))) + "</tr>"
        + "".join(rows)
        + "</table>")
    if idle:
        profiles += (f'<div class="cf-idle" style="color:#6e7781;font-size:12px;max-width:560px">no case in this run: '
                     f"{esc(', '.join(idle))}</div>")
    surfaces, types, cells = outcome_matrix(summary)
    matrix = (f'<table id="cf-matrix" style="{TABLE}"><tr><th style="{TH}">surface \\ model type</th>'
              + "".join(f'<th style="{TH}">{esc(t)}</th>' for t in types) + "</tr>")
    for surface in surfaces:
        matrix += f'<tr data-surface="{esc(surface)}"><td style="{TD};font-weight:600">{esc(surface)}</td>'
        for model_type in types:
            counts = cells.get((surface, model_type), Counter())
            matrix += (f'<td class="cf-cell" data-cell="{esc(surface)}/{esc(model_type)}" style="{TD}">'
                       f"{_cell(counts) or '<span style=color:#d0d7de>·</span>'}</td>")
        matrix += "</tr>"
    matrix += "</table>"
    models = verdict.get("models", {})
    unserved = models.get("not_served") or {}
    missing = models.get("routes_missing") or {}
    setup = ""
    if unserved or missing:
        setup = ('<p class="cf-setup" style="margin:6px 0;font:13px system-ui">'
                 + (f"<b>models not served</b> (their cases skipped): {esc(', '.join(sorted(unserved)))}. "
                    if unserved else "")
                 + (f"<b>routes missing</b>: {esc(', '.join(sorted(missing)))}." if missing else "") + "</p>")
    state = run_state_html(summary)
    heading = (f'<h1 style="font:600 20px system-ui,sans-serif;margin:0 0 4px;display:inline">'
               f"{esc(report_name(summary))}</h1>")
    opening, closing = "", ""
    if collapsible:
        line = ", ".join(f"{totals.get(k, 0)} {k}" for k in ("passed", "failed", "warned", "skipped", "errors"))
        heading = (f'<summary style="cursor:pointer">{heading} <span style="color:#57606a;font-size:13px">'
                   f"{esc(line)}</span></summary>")
        opening, closing = '<details id="cf-verdict-fold" open>', "</details>"
    return (
        '<section id="conformance-verdict" style="font:14px system-ui,sans-serif;color:#1f2328;background:#fff;'
        f'padding:12px 24px 10px;border-bottom:1px solid #d0d7de;line-height:1.4">{opening}{heading}'
        f'<div style="color:#57606a;font-size:13px">target {esc(str(target.get("url")))} &middot; run '
        f'{esc(str(summary.get("started_at", "")))} &middot; suite {esc(str(summary.get("suite_version", "")))}'
        f' &middot; spec {esc(str(spec.get("id", "")))} ({esc(spec_note)})'
        + (f" &middot; deviations: {esc(', '.join(summary['deviations']))}" if summary.get("deviations") else "")
        + f'</div><div style="margin:8px 0 6px">{chips}'
        + (f'<span style="color:#57606a">{totals["drift"]} shape drift</span>' if totals.get("drift") else "")
        + "</div>" + state + setup
        + '<div style="display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start">'
        + f'<div><div style="{LABEL}">Verdict per profile</div>{profiles}</div>'
        + f'<div><div style="{LABEL}">Surface x model type (✓ passed ✗ failed ! warned ⚠ error \u2013 skipped)</div>'
        + f"{matrix}</div></div>"
        + (f'<p class="cf-legend" style="margin:6px 0 0;color:#57606a;font-size:12px">{legend}</p>' if legend else "")
        + f"{closing}</section>"
    )


REASON_SHOWN = 90  # characters of a profile's "why not success" on the first screen (all of it on hover)


def run_state_html(summary: dict[str, Any]) -> str:
    """What the verdict does not cover, before the tables: a partial run (the circuit breaker, a signal), an
    incomplete one (deselected or budget-skipped cases), and --strict."""
    esc = html.escape
    notes = []
    for key, title in (("aborted", "Partial run, aborted"), ("interrupted", "Partial run, interrupted by")):
        if summary.get(key):
            notes.append(f'<span class="cf-partial" data-state="{key}"><b>{title}:</b> {esc(str(summary[key]))}. '
                         "The verdict covers only what was judged before.</span>")
    if summary.get("incomplete"):
        not_run = summary.get("not_run") or {}
        notes.append(f'<span class="cf-incomplete"><b>Incomplete run:</b> {not_run.get("deselected", 0)} case(s) '
                     f'deselected (-k / -m), {not_run.get("budget_skipped", 0)} skipped for the token budget; the '
                     "verdict covers only what ran.</span>")
    if summary.get("strict"):
        notes.append('<span class="cf-strict"><b>--strict:</b> warnings (broken should / advisory rules) are '
                     "counted as failures.</span>")
    if not notes:
        return ""
    return ('<p id="cf-run-state" style="margin:4px 0 6px;padding:4px 8px;background:#fff8c5;border:1px solid '
            '#d4a72c;border-radius:4px;font:13px system-ui">' + "<br>".join(notes) + "</p>")


def case_index(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from conformance.certify import case_name

    return {case_name(r): r for r in summary["cases"]}


def _case_data() -> dict[str, CaseBase]:
    from conformance.cases import load_cases
    from conformance.clientcases import load_client_cases
    from conformance.usage_tracking import load_usage_cases

    return {case.id: case for case in (*load_cases(), *load_client_cases(), *load_usage_cases())}


def messages_of(record: dict[str, Any]) -> list[tuple[str, bool]]:
    """The case's findings as (text, is_warning): the contract's `findings` with their strength where the run
    recorded them, else the lines of its message."""
    findings = record.get("findings")
    if isinstance(findings, list) and findings:
        return [(f"[{f.get('check', '')}] {f.get('message', '')}" if f.get("check") and not
                 str(f.get("message", "")).startswith("[") else str(f.get("message", "")),
                 f.get("strength", "must") != "must") for f in findings]
    if record["outcome"] in ("failed", "warned"):
        return [(line, record["outcome"] == "warned") for line in (record.get("message") or "").splitlines()
                if line.strip()]
    return []


def findings_html(record: dict[str, Any]) -> str:
    findings = record.get("findings")
    items = []
    if isinstance(findings, list) and findings:
        for f in findings:
            strength = f.get("strength", "must")
            colour = OUTCOME_COLOURS["failed" if strength == "must" else "warned"]
            items.append(f'<li class="cf-finding" data-strength="{html.escape(strength)}"><b style="color:'
                         f'{colour}">{html.escape(strength)}</b> <code>{html.escape(str(f.get("check", "")))}'
                         f"</code> {html.escape(str(f.get('message', '')))}</li>")
    else:
        for text, warn in messages_of(record):
            kind = "warned" if warn else "failed"
            items.append(f'<li class="cf-finding" data-strength="{"should" if warn else "must"}">'
                         f'<span style="color:{OUTCOME_COLOURS[kind]}">{html.escape(text)}</span></li>')
    if record["outcome"] in ("error", "skipped") and record.get("message"):
        items.append(f'<li class="cf-finding cf-{record["outcome"]}">{html.escape(record["message"])}</li>')
    if not items:
        return ""
    title = {"failed": "Failed checks", "warned": "Warnings", "error": "Infrastructure error",
             "skipped": "Skipped"}.get(record["outcome"], "Findings")
    return f'<div style="{LABEL}">{title}</div><ul class="cf-findings" style="margin:2px 0 8px">{"".join(items)}</ul>'


def spec_html(record: dict[str, Any], case: CaseBase | None) -> str:
    """The case's description, then the spec section as a heading and its quote set apart."""
    spec = case.spec if case is not None else None  # None: a case this suite no longer has
    section = (spec.section if spec else "") or record.get("spec") or ""
    doc = spec.doc if spec else ""
    quote = (spec.quote if spec else "") or ""
    reason = (spec.reason if spec else "") or ""
    description = (case.description or "").strip() if case is not None else ""
    out = f'<p class="cf-description" style="margin:0 0 8px">{html.escape(description)}</p>' if description else ""
    out += (f'<div class="cf-spec-section" style="{LABEL}">spec {html.escape(str(doc))} &middot; '
            f"{html.escape(str(section))}</div>")
    if quote:
        out += (f'<blockquote class="cf-spec-quote" style="margin:2px 0 10px;padding:4px 12px;border-left:3px '
                f'solid #8c959f;color:#424a53;white-space:pre-wrap">{html.escape(quote)}</blockquote>')
    elif reason:
        out += (f'<p class="cf-spec-reason" style="margin:2px 0 10px;color:#424a53">our rule: '
                f"{html.escape(reason)}</p>")
    return out


def case_html(record: dict[str, Any], case: CaseBase | None, exchanges: list[dict[str, Any]]) -> str:
    """Everything a reader needs about one case: spec, findings, snapshot drift, evidence."""
    snap = record.get("snapshot") or {}
    drift = ""
    if snap.get("status") == "drift":
        drift = (f'<div style="{LABEL}">Shape drift (not a failure)</div>'
                 f'<pre class="cf-snapshot" style="{PRE}">{html.escape(chr(10).join(snap.get("drift", [])))}</pre>')
    return (spec_html(record, case) + findings_html(record) + drift
            + evidence_html(exchanges, messages_of(record)))


# --- evidence from allure-results -----------------------------------------------------------------------------


def read_results(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    out: list[tuple[Path, dict[str, Any]]] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*-result.json"), key=lambda p: p.stat().st_mtime):
        try:
            out.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except ValueError:
            continue
    return out


def result_case(result: dict[str, Any]) -> str | None:
    """The case name (`case@model`) an Allure result belongs to."""
    for label in result.get("labels", []):
        if label.get("name") == CASE_LABEL:
            return label.get("value")
    name = result.get("name", "")  # results written before the label existed: test_case[<case>@<model>]
    found = re.match(r"test_(?:client_|usage_)?case\[(.+)\]$", name)
    return found.group(1) if found else None


def exchanges_of(folder: Path, result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for attachment in result.get("attachments", []):
        if not attachment.get("name", "").endswith("exchange"):
            continue
        try:
            out.append(json.loads((folder / attachment.get("source", "")).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


# --- Allure ---------------------------------------------------------------------------------------------------


def stage_results(run_dir: Path, summary: dict[str, Any], staging: Path) -> int:
    """Copy allure-results into `staging` with each case's outcome and readable description; returns how many."""
    source = run_dir / "allure-results"
    index, data = case_index(summary), _case_data()
    staged = 0
    for path, result in read_results(source):
        name = result_case(result)
        record = index.get(name or "")
        if record is not None:
            outcome = record["outcome"]
            result["status"] = ALLURE_STATUS.get(outcome, result.get("status"))
            details = result.get("statusDetails") or {}
            if outcome == "warned":
                details = {"message": "warned (no broken must rule): " + (record.get("message") or "")}
            elif outcome == "error":
                details = {"message": record.get("message") or "infrastructure error"}
            elif details.get("message"):
                details["message"] = str(details["message"]).removeprefix("Failed: ")
            if details:
                result["statusDetails"] = details
            result["fullName"] = f"{record['surface']}/{name}"
            result["descriptionHtml"] = case_html(record, data.get(record["id"]), exchanges_of(source, result))
            result.pop("description", None)
            # the outcome tags come from the record (under --strict a should finding is a failure), once each
            labels = [lb for lb in result.get("labels", []) if lb.get("name") not in (*NOISE_LABELS, CASE_LABEL)
                      and not (lb.get("name") == "tag" and lb.get("value") in (*NOISE_TAGS, *OUTCOME_TAGS))]
            if outcome in ("warned", "error"):
                labels.append({"name": "tag", "value": "warned" if outcome == "warned" else "infrastructure"})
            # a case skipped or errored before its body ran has no labels of its own: grouped and titled the same
            have = {lb.get("name") for lb in labels}
            for label, value in (("epic", record["surface"]), ("feature", record["model_type"]),
                                 ("story", record.get("model") or "no model")):
                if label not in have:
                    labels.append({"name": label, "value": value})
            if not result.get("name") or result["name"].startswith("test_"):
                result["name"] = f"{record['id']} @ {record['model']}" if record.get("model") else record["id"]
            result["labels"] = labels
            staged += 1
        (staging / path.name).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    for path in source.iterdir() if source.is_dir() else ():
        if not path.name.endswith("-result.json") and path.is_file():
            try:
                os.link(path, staging / path.name)
            except OSError:
                shutil.copyfile(path, staging / path.name)
    return staged


# the verdict is the first screen of the report's home; on a test's page it folds to its title line
FOLD_SCRIPT = ("<script>(function(){var d=document.getElementById('cf-verdict-fold');if(!d)return;"
               "function f(){d.open=!location.hash||location.hash==='#';}f();"
               "window.addEventListener('hashchange',f);})();</script>")
ALLURE_LEGEND = ("In the tree below (grouped surface / model type / model): Allure's <b>unknown</b> status is a "
                 "<b>warned</b> case (a broken should or advisory rule, not a failure), <b>broken</b> an "
                 "infrastructure error (no verdict); each test's page shows the spec, the findings and the "
                 "request and response with the failed fields marked.")


def generate_allure(run_dir: Path, summary: dict[str, Any], verdict: dict[str, Any]) -> Path:
    binary = allure_binary()
    if binary is None:
        raise FileNotFoundError("allure is not installed (run `conformance html-setup`)")
    run_dir = run_dir.resolve()
    out = run_dir / "html"
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix=".allure-staging-", dir=run_dir) as staging:
        stage_results(run_dir, summary, Path(staging))
        done = subprocess.run([str(binary), "awesome", "--single-file", "--group-by", "epic,feature,story",
                               "--report-name", report_name(summary), "-o", str(out), staging],
                              capture_output=True, text=True, timeout=600, cwd=run_dir)
    index = out / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"allure failed: {(done.stderr or done.stdout).strip()[-300:]}")
    page = strip_analytics(index.read_text(encoding="utf-8"))
    block = verdict_block(summary, verdict, ALLURE_LEGEND, collapsible=True) + FOLD_SCRIPT
    page = page.replace('<div id="app"></div>', block + '<div id="app"></div>', 1)
    index.write_text(page, encoding="utf-8")
    return index


# --- the built-in page ----------------------------------------------------------------------------------------


CSS = """body{font:14px system-ui,sans-serif;margin:0;color:#1f2328}main{padding:0 24px 40px;max-width:1400px}
h2{font:600 16px system-ui;margin:18px 0 6px}h3{font:600 14px system-ui;margin:14px 0 4px;color:#424a53}
details.case{margin:2px 0;border:1px solid #eaeef2;border-radius:4px;padding:2px 8px}
details.case>summary{cursor:pointer;padding:3px 0}details.case[open]{padding-bottom:8px}
.outcome{display:inline-block;min-width:58px;font-weight:600}.note{background:#fff8c5;padding:8px 24px;
border-bottom:1px solid #d4a72c;margin:0}"""


def builtin_html(run_dir: Path, summary: dict[str, Any], verdict: dict[str, Any], reason: str) -> Path:
    from conformance.certify import case_name

    esc = html.escape
    folder = run_dir / "allure-results"
    evidence: dict[str, list[dict[str, Any]]] = {}
    for _, result in read_results(folder):
        name = result_case(result)
        if name is not None:
            evidence[name] = exchanges_of(folder, result)
    data = _case_data()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(report_name(summary))}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<p class='note' id='fallback'>This is the suite's built-in single-file report (fallback): "
             f"{esc(reason)}. Run <code>conformance html-setup</code> for the Allure report.</p>",
             verdict_block(summary, verdict), "<main>"]
    rank = {"failed": 0, "warned": 1, "error": 2}
    attention = sorted((r for r in summary["cases"] if r["outcome"] in rank), key=lambda r: rank[r["outcome"]])
    if attention:
        parts.append(f"<h2 id='attention'>Needs attention ({len(attention)})</h2><ul>")
        for record in attention:
            first = (record.get("message") or "").strip().splitlines()[:1]
            parts.append(f"<li><a href='#case-{esc(case_name(record))}' style='color:"
                         f"{OUTCOME_COLOURS[record['outcome']]}'>{esc(record['outcome'])}</a> "
                         f"<b>{esc(record['id'])}</b> @ {esc(record.get('model') or 'no model')}: "
                         f"{esc(first[0][:200] if first else '')}</li>")
        parts.append("</ul>")
    parts.append(latency.html_table(summary, esc, (TABLE, TH, TD)) + "<h2>Cases</h2>")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in summary["cases"]:
        groups.setdefault((record["surface"], record["model_type"], record.get("model") or "no model"),
                          []).append(record)
    for (surface, model_type, model), records in sorted(groups.items()):
        parts.append(f"<h3>{esc(surface)} / {esc(model_type)} / {esc(model)}</h3>")
        for record in records:
            name = case_name(record)
            outcome = record["outcome"]
            snap = record.get("snapshot", {})
            opened = " open" if outcome in ("failed", "warned") else ""
            parts.append(
                f"<details class='case' id='case-{esc(name)}' data-case='{esc(name)}' data-outcome='{esc(outcome)}'"
                f"{opened}><summary><span class='outcome {esc(outcome)}' style='color:{OUTCOME_COLOURS[outcome]}'>"
                f"{esc(outcome)}</span> {esc(record['id'])} @ {esc(record.get('model') or 'no model')} "
                f"<span style='color:#8c959f'>[{esc(record.get('strength', ''))}]</span>"
                + (" <b>drift</b>" if snap.get("status") == "drift" else "") + "</summary>"
                + case_html(record, data.get(record["id"]), evidence.get(name, [])) + "</details>")
    parts.append("</main></body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
