"""Everything rendered from a run folder: summary.md, conformance-report.yaml and the HTML report.

`conformance run` renders them after the run; `conformance report RUN_DIR` re-renders them from the folder
alone (summary.json and allure-results/ hold everything needed).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from conformance import latency
from conformance.certify import case_name, conformance_report
from conformance.errors import BadInput
from conformance.findings import group
from conformance.yamlio import dump_yaml


def load_run(path: Path) -> dict[str, Any]:
    """summary.json of a run folder (or the file itself); a missing or broken one is bad input."""
    file = path / "summary.json" if path.is_dir() else path
    if not path.exists():
        raise BadInput(f"run folder {path} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError:
        raise BadInput(f"{path} holds no summary.json (not a run folder)") from None
    except ValueError as exc:
        raise BadInput(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list) or "totals" not in data:
        raise BadInput(f"{file} is not a conformance summary")
    return data


def summary_markdown(summary: dict[str, Any], verdict: dict[str, Any], html_note: str = "") -> str:
    target = summary["target"]
    lines = [f"## Conformance: {target['name']}" + (f" {target['version']}" if target.get("version") else ""),
             "",
             f"Target `{target.get('url')}`, run {summary.get('started_at', '')}, suite "
             f"{summary.get('suite_version', '')}." + (f" Deviations: {', '.join(summary['deviations'])}."
                                                       if summary.get("deviations") else "")
             + (" `--strict`: warnings are counted as failures." if summary.get("strict") else "")]
    for key in ("aborted", "interrupted"):  # a run the circuit breaker or a signal ended (stopping.py)
        if summary.get(key):
            lines += ["", f"**Partial run, {key}:** {summary[key]}"]
    if summary.get("incomplete"):
        not_run = summary.get("not_run") or {}
        lines += ["", f"**Incomplete run**: {not_run.get('deselected', 0)} case(s) deselected (-k / -m), "
                      f"{not_run.get('budget_skipped', 0)} skipped for the token budget. The verdict covers only "
                      "what ran."]
    lines += ["", "| surface | model type | passed | failed | warned | skipped | errors |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    cells: dict[tuple[str, str], Counter[str]] = {}
    for record in summary["cases"]:
        cells.setdefault((record["surface"], record["model_type"]), Counter())[record["outcome"]] += 1
    for (surface, model_type), c in sorted(cells.items()):
        lines.append(f"| {surface} | {model_type} | {c['passed']} | {c['failed']} | {c['warned']} | "
                     f"{c['skipped']} | {c['error']} |")
    t = summary["totals"]
    lines.append(f"| **total** | | **{t['passed']}** | **{t['failed']}** | **{t.get('warned', 0)}** | "
                 f"**{t['skipped']}** | **{t['errors']}** |")
    lines += ["", "### Verdict per profile", "",
              "| profile | result | passed | failed | warned | skipped | errors | why not success "
              "| unsupported features |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, p in verdict["profiles"].items():
        s = p["statistics"]
        lines.append(f"| {name} | {p['result']} | {s['passed']} | {s['failed']} | {s['warned']} | {s['skipped']} | "
                     f"{s['errors']} | {p.get('reason') or '-'} | {', '.join(p['unsupported_features']) or '-'} |")
    lines += _grouped(summary, "failed", "Failures", "a broken `must` rule: non-conformance")
    lines += _grouped(summary, "warned", "Warnings", "broken `should` / `advisory` rules, with their evidence: "
                                                     "never non-conformance")
    lines += _grouped(summary, "error", "Infrastructure errors", "no answer to judge: never a verdict")
    lines += latency.markdown(summary)
    drift = [r for r in summary["cases"] if r.get("snapshot", {}).get("status") == "drift"]
    snap = summary.get("snapshot_totals", {})
    lines += ["", f"### Shape drift ({len(drift)})", ""]
    if not snap:
        lines.append("No snapshot comparison in this run.")
    elif snap.get("no-baseline") and not (snap.get("match") or drift):
        lines.append("No baseline for this target: the snapshot check was skipped.")
    elif not drift:
        lines.append("None: every response has the recorded shape.")
    for record in drift[:20]:
        lines.append(f"- `{case_name(record)}`: " + "; ".join(record["snapshot"]["drift"][:3]))
    if html_note:
        lines += ["", html_note]
    return "\n".join(lines) + "\n"


GROUPS_SHOWN = 25


def _grouped(summary: dict[str, Any], outcome: str, title: str, meaning: str) -> list[str]:
    """One line per root cause (findings.group): the rule, one case's message as evidence, the cases."""
    groups = group(summary["cases"], outcome)
    cases = sum(len(g.cases) for g in groups)
    lines = ["", f"### {title} ({cases} case{'s' if cases != 1 else ''}, {len(groups)} root "
                 f"cause{'s' if len(groups) != 1 else ''})", ""]
    if not groups:
        return [*lines, "None."]
    lines += [f"{meaning.capitalize()}. One line per rule broken the same way (numbers, ids and model names "
              "aside), its evidence from the first case:", ""]
    lines += [f"- {entry.line()}" for entry in groups[:GROUPS_SHOWN]]
    if len(groups) > GROUPS_SHOWN:
        lines.append(f"- ... and {len(groups) - GROUPS_SHOWN} more root causes (see summary.json)")
    return lines


def render_html(run_dir: Path, summary: dict[str, Any], verdict: dict[str, Any], mode: str) -> tuple[str, str]:
    """(the HTML file written, or "", and why the built-in page was used instead of Allure, or "")."""
    from conformance import html

    if mode == "none":
        return "", ""
    reason = "Allure HTML was not requested (--html builtin)"
    if mode in ("auto", "allure"):
        if html.allure_binary() is not None:
            latency.allure_environment(run_dir, summary)  # Allure shows it with the report
            try:
                return str(html.generate_allure(run_dir, summary, verdict)), ""
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                if mode == "allure":
                    raise BadInput(str(exc)) from None
                reason = f"Allure failed ({str(exc)[:200]})"
        elif mode == "allure":
            raise BadInput("Allure is not installed (run `conformance html-setup`; needs node and npm)")
        else:
            reason = "Allure (node) is not installed"
    return str(html.builtin_html(run_dir, summary, verdict, reason)), reason


def render_reports(run_dir: Path, html: str = "auto", spec_dir: str | None = None) -> list[str]:
    """Write summary.md, conformance-report.yaml and the HTML report of a run folder; the console lines saying
    where they are."""
    summary = load_run(run_dir)
    verdict = conformance_report(summary, Path(spec_dir) if spec_dir else None)
    (run_dir / "conformance-report.yaml").write_text(
        dump_yaml(verdict), encoding="utf-8")
    page, fallback = render_html(run_dir, summary, verdict, html)
    (run_dir / "summary.md").write_text(summary_markdown(summary, verdict), encoding="utf-8")
    names = ["summary.json", "summary.md", "conformance-report.yaml"]
    if page:
        names.append(str(Path(page).relative_to(run_dir.resolve())) if Path(page).is_absolute()
                     and Path(page).is_relative_to(run_dir.resolve()) else page)
    lines = [f"reports: {run_dir}/ ({', '.join(names)})"]
    if fallback and html == "auto":
        lines.append(f"HTML report: the built-in page ({fallback}; `conformance html-setup` installs Allure)")
    return lines
