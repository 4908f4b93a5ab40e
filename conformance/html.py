"""The HTML report of a run: Allure 3 (npm package `allure`) when installed, else a page of our own.

`conformance html-setup` installs Allure into a project-local folder (`.tools/allure`, or
$CONFORMANCE_TOOLS_DIR/allure) with npm. `allure awesome --single-file` writes one self-contained index.html;
its Google Analytics tag is removed so the report opens offline without calling out. Without node or Allure the
suite writes `report.html` itself: one file, no scripts from anywhere, built from summary.json and
allure-results/ (the same redacted request and response attachments), and it says that it is the fallback.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conformance import latency
from conformance.errors import BadInput

TOOLS_ENV = "CONFORMANCE_TOOLS_DIR"
ALLURE_PACKAGE = "allure@3"
ANALYTICS = re.compile(r"<script[^>]*googletagmanager[^>]*>\s*</script>|<script[^>]*>[^<]*(?:gtag|dataLayer)"
                       r"[^<]*</script>", re.IGNORECASE)


def tools_dir() -> Path:
    given = os.environ.get(TOOLS_ENV)
    if given:
        return Path(given)
    from conformance.resources import PACKAGE_DIR

    checkout = PACKAGE_DIR.parent
    return (checkout if (checkout / "pyproject.toml").exists() else Path.cwd()) / ".tools"


def allure_binary() -> Path | None:
    binary = tools_dir() / "allure" / "node_modules" / ".bin" / "allure"
    return binary if binary.exists() and shutil.which("node") else None


def install_allure() -> str:
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found: HTML reports will use the built-in single-file page"
    folder = tools_dir() / "allure"
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
    return f"Allure installed in {folder}"


def strip_analytics(text: str) -> str:
    return ANALYTICS.sub("", text)


def generate_allure(run_dir: Path) -> Path:
    binary = allure_binary()
    run_dir = run_dir.resolve()
    results = run_dir / "allure-results"
    if binary is None:
        raise FileNotFoundError("allure is not installed (run `conformance html-setup`)")
    out = run_dir / "html"
    if out.exists():
        shutil.rmtree(out)
    done = subprocess.run([str(binary), "awesome", "--single-file", "-o", str(out), str(results)],
                          capture_output=True, text=True, timeout=300, cwd=run_dir)
    index = out / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"allure failed: {(done.stderr or done.stdout).strip()[-300:]}")
    index.write_text(strip_analytics(index.read_text(encoding="utf-8")), encoding="utf-8")
    return index


# --- the fallback page --------------------------------------------------------------------------------------


def allure_evidence(run_dir: Path) -> dict[str, dict[str, Any]]:
    """test name (`test_case[<case>@<model>]`) -> description and attachments of its last Allure result."""
    folder = run_dir / "allure-results"
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*-result.json"), key=lambda p: p.stat().st_mtime):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        attachments = {}
        for att in result.get("attachments", []):
            source = folder / att.get("source", "")
            if source.is_file():
                attachments[att.get("name", "")] = source.read_text(encoding="utf-8", errors="replace")[:100_000]
        out[result.get("name", "")] = {"description": result.get("description", ""), "attachments": attachments}
    return out


def exchange_blocks(step: str, text: str, esc: Any) -> list[str]:
    """One `exchange` attachment (plugin.py: request and response of one request) as two readable blocks."""
    try:
        document = json.loads(text)
        pairs = [(label, json.dumps(document[label], indent=2)) for label in ("request", "response")]
    except (ValueError, KeyError, TypeError):  # cut at the page's size limit: shown as it is
        return [f"<p><b>{esc(step)}exchange</b></p><pre class='request response'>{esc(text)}</pre>"]
    return [f"<p><b>{esc(step)}{label}</b></p><pre class='{label}'>{esc(body)}</pre>" for label, body in pairs]


CSS = """body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.passed{color:#176f2c}.failed{color:#b00020}
.skipped{color:#777}.error{color:#a15c00}.warned{color:#8a6d00}pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:400px}
details{margin:4px 0}summary{cursor:pointer}.note{background:#fff4ce;padding:8px;border:1px solid #e0c060}"""


def builtin_html(run_dir: Path, summary: dict[str, Any], verdict: dict[str, Any], reason: str) -> Path:
    from conformance.certify import case_name

    esc = html.escape
    evidence = allure_evidence(run_dir)
    target = summary["target"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>conformance report: {esc(target['name'])}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Conformance report: {esc(str(target['name']))}</h1>",
             f"<p class='note' id='fallback'>This is the suite's built-in single-file report (fallback): {esc(reason)}"
             ". Run <code>conformance html-setup</code> for the Allure report.</p>",
             f"<p>target {esc(str(target.get('url')))}, started {esc(summary.get('started_at', ''))}, "
             f"suite {esc(summary.get('suite_version', ''))}</p>",
             *(["<p class='note' id='incomplete'>Incomplete run: cases were deselected or skipped for the token "
                "budget; the verdict covers only what ran.</p>"] if summary.get("incomplete") else []),
             "<h2>Totals</h2><table id='totals'><tr>"
             + "".join(f"<th>{esc(k)}</th>" for k in summary["totals"]) + "</tr><tr>"
             + "".join(f"<td>{v}</td>" for v in summary["totals"].values()) + "</tr></table>",
             "<h2>Profiles</h2><table id='profiles'><tr><th>profile</th><th>result</th><th>passed</th>"
             "<th>failed</th><th>warned</th><th>skipped</th><th>errors</th><th>why not success</th></tr>"]
    for name, profile in verdict["profiles"].items():
        st = profile["statistics"]
        parts.append(f"<tr><td>{esc(name)}</td><td>{esc(profile['result'])}</td><td>{st['passed']}</td>"
                     f"<td>{st['failed']}</td><td>{st.get('warned', 0)}</td><td>{st['skipped']}</td>"
                     f"<td>{st['errors']}</td><td>{esc(profile.get('reason') or '')}</td></tr>")
    parts.append("</table>" + latency.html_table(summary, esc) + "<h2>Cases</h2>")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in summary["cases"]:
        groups.setdefault((record["surface"], record["model_type"], record.get("model") or "no model"),
                          []).append(record)
    for (surface, model_type, model), records in sorted(groups.items()):
        parts.append(f"<h3>{esc(surface)} / {esc(model_type)} / {esc(model)}</h3>")
        for record in records:
            name = case_name(record)
            ev = evidence.get(f"test_case[{name}]", {})
            snap = record.get("snapshot", {})
            parts.append(f"<details class='case' data-case='{esc(name)}' data-outcome='{esc(record['outcome'])}'>"
                         f"<summary><span class='{esc(record['outcome'])}'>{esc(record['outcome'])}</span> "
                         f"{esc(name)} [{esc(record.get('strength', ''))}]"
                         + (" <b>drift</b>" if snap.get("status") == "drift" else "") + "</summary>")
            parts.append(f"<p><b>spec</b> {esc(str(record.get('spec')))}</p>")
            if ev.get("description"):
                parts.append(f"<pre class='spec'>{esc(ev['description'])}</pre>")
            findings = record.get("findings") or []
            if findings:
                warned = record["outcome"] == "warned"
                label, css = ("warnings", "warnings") if warned else ("failed checks", "failures")
                text = "\n".join(f"({f['strength']}) [{f['check']}] {f['message']}" for f in findings)
                parts.append(f"<p><b>{label}</b></p><pre class='{css}'>{esc(text)}</pre>")
            elif record.get("message"):
                parts.append(f"<p><b>failed checks</b></p><pre class='failures'>{esc(record['message'])}</pre>")
            if snap:
                lines = snap.get("drift") or [snap.get("reason") or snap["status"]]
                parts.append(f"<p><b>snapshot: {esc(snap['status'])}</b></p>"
                             f"<pre class='snapshot'>{esc(chr(10).join(lines))}</pre>")
            for name, text in (ev or {}).get("attachments", {}).items():
                if name.endswith("exchange"):
                    parts += exchange_blocks(name.removesuffix("exchange"), text, esc)
            parts.append("</details>")
    parts.append("</body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
