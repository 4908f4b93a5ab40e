"""What a run says on the console once it is over, after pytest's progress dots.

One line per failed case (`id @ model: first message`), the warned cases apart, infrastructure errors apart, the
count of root causes (the causes themselves when there are too many cases to list), a partial or incomplete run
said as such, the verdict per profile, the totals with the strength of what broke, one snapshot line, and where
the reports are. pytest's own failure sections and
short summary are turned off by `conformance run` (plugin.terminal_arguments) so nothing is said twice; syrupy's
report block, which would repeat the snapshot line in its own words, is silenced here.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from typing import Any

MAX_LINES = 40  # per kind; the rest are in summary.md and summary.json
WIDTH = 200


def first_line(message: str) -> str:
    lines = (message or "").strip().splitlines()
    text = lines[0] if lines else ""
    more = len(lines) - 1
    return text + (f" (+{more} more)" if more > 0 else "")


def _display_name(record: dict[str, Any]) -> str:
    return f"{record['id']} @ {record['model']}" if record.get("model") else record["id"]


def case_lines(summary: dict[str, Any], width: int = WIDTH) -> list[str]:
    """FAILED / WARNED / ERROR lines, in that order, each kind cut at MAX_LINES."""
    out: list[str] = []
    for outcome, tag in (("failed", "FAILED"), ("warned", "WARNED"), ("error", "ERROR ")):
        records = [r for r in summary["cases"] if r["outcome"] == outcome]
        for record in records[:MAX_LINES]:
            line = f"{tag} {_display_name(record)}: {first_line(record.get('message', ''))}"
            out.append(line if len(line) <= width else line[: width - 3] + "...")
        if len(records) > MAX_LINES:
            out.append(f"... and {len(records) - MAX_LINES} more {outcome} (see summary.md)")
    return out


def verdict_table(verdict: dict[str, Any]) -> list[str]:
    """The verdict per profile as an aligned text table."""
    header = ("profile", "result", "passed", "failed", "warned", "skipped", "errors")
    rows = [header]
    idle = []
    for name, profile in verdict.get("profiles", {}).items():
        s = profile.get("statistics", {})
        if not any(s.get(k, 0) for k in header[2:]):
            idle.append(f"{name} ({profile.get('result', '')})")
            continue
        rows.append((name, profile.get("result", ""), *(str(s.get(k, 0)) for k in header[2:])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip()
             for r in rows]
    return lines + ([f"no case in this run: {', '.join(idle)}"] if idle else [])


def totals_line(summary: dict[str, Any]) -> str:
    t = summary["totals"]
    parts = [f"{t.get(k, 0)} {label}" for k, label in (("passed", "passed"), ("failed", "failed"),
                                                          ("warned", "warned"), ("skipped", "skipped"),
                                                          ("errors", "errors"))]
    target = summary["target"]
    name = target["name"] + (f" {target['version']}" if target.get("version") else "")
    failed = summary.get("failures_by_strength") or {}
    warned = summary.get("warnings_by_strength") or {}
    strengths = (f" ({failed.get('must', 0)} must failures; {warned.get('should', 0)} should, "
                 f"{warned.get('advisory', 0)} advisory warnings"
                 + (", --strict: warnings counted as failures" if summary.get("strict") else "") + ")")
    return f"{len(summary['cases'])} cases on {name} ({target.get('url')}): {', '.join(parts)}{strengths}"


def state_lines(summary: dict[str, Any]) -> list[str]:
    """A run the circuit breaker or a signal ended (stopping.py), a run that left cases out: said before the
    verdict, which covers only what ran."""
    out = [f"run {key}: {summary[key]} (partial summary)" for key in ("aborted", "interrupted") if summary.get(key)]
    if summary.get("incomplete"):
        not_run = summary.get("not_run") or {}
        out.append(f"incomplete run: {not_run.get('deselected', 0)} case(s) deselected, "
                   f"{not_run.get('budget_skipped', 0)} skipped for the token budget")
    return out


ROOT_CAUSES_SHOWN = 10


def root_cause_lines(summary: dict[str, Any]) -> list[str]:
    """Failures and warnings folded by root cause (findings.group, as in summary.md): a count line each, and the
    causes themselves when there were too many cases to list one by one."""
    from conformance.findings import group

    out = []
    for outcome, title in (("failed", "failures"), ("warned", "warnings")):
        groups = group(summary["cases"], outcome)
        if not groups:
            continue
        cases = sum(len(g.cases) for g in groups)
        out.append(f"{title}: {cases} case(s), {len(groups)} root cause(s)")
        if cases > MAX_LINES:
            out += [f"  {g.line(limit=160, names=3)}" for g in groups[:ROOT_CAUSES_SHOWN]]
            if len(groups) > ROOT_CAUSES_SHOWN:
                out.append(f"  ... and {len(groups) - ROOT_CAUSES_SHOWN} more (summary.md)")
    return out


def snapshot_line(summary: dict[str, Any]) -> str | None:
    counts = summary.get("snapshot_totals") or {}
    if not counts:
        return None
    info = summary.get("snapshots", {})
    drift = summary["totals"].get("drift", 0)
    text = "snapshots: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" ({info.get('dir', '')})"
    return text + (" -- drift is not a failure; see summary.md" if drift else "")


def drift_lines(summary: dict[str, Any]) -> list[str]:
    """The cases whose response shape drifted from the baseline, each with its first differences."""
    drifted = [c for c in summary["cases"] if (c.get("snapshot") or {}).get("status") == "drift"]
    if not drifted:
        return []
    out = [f"shape drift in {len(drifted)} case(s) (not failures; see summary.md):"]
    for case in drifted[:MAX_LINES]:
        changes = case["snapshot"].get("drift", [])
        out.append(f"DRIFT  {_display_name(case)}: {'; '.join(changes[:3])}"
                   + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""))
    if len(drifted) > MAX_LINES:
        out.append(f"... and {len(drifted) - MAX_LINES} more drifted (see summary.md)")
    return out


def silence_syrupy(config: Any) -> None:
    """syrupy prints its own report block after ours; the snapshot line above says the same."""
    syrupy = getattr(config, "_syrupy", None)
    if syrupy is not None and hasattr(syrupy, "report"):
        with contextlib.suppress(AttributeError):  # a syrupy whose report cannot be replaced keeps its block
            syrupy.report = _NoReport()


class _NoReport:
    lines: tuple[str, ...] = ()


def quiet_interrupt(terminal: Any) -> None:
    """A run the circuit breaker or a signal stopped has said why (state_lines, and one line on stderr): pytest's
    own "! Interrupted: ... !" or KeyboardInterrupt report after it would say it again, in pytest's terms."""
    with contextlib.suppress(AttributeError, TypeError):  # another pytest: its line stays, nothing breaks
        terminal._report_keyboardinterrupt = lambda: None


def write_summary(terminal: Any, session: Any) -> None:
    summary = session.summary
    width = max(80, min(WIDTH, shutil.get_terminal_size().columns)) if sys.stdout.isatty() else WIDTH
    terminal.write_sep("=", "conformance")
    for note in session.notes:
        terminal.write_line(f"note: {note}")
    if session.preflight is not None:
        terminal.write_line(session.preflight.summary_line())
    for line in case_lines(summary, width):
        terminal.write_line(line)
    for line in root_cause_lines(summary):
        terminal.write_line(line)
    for line in state_lines(summary):
        terminal.write_line(line, red=True)
    verdict = _verdict(session)
    if verdict:
        terminal.write_line("")
        for line in verdict_table(verdict):
            terminal.write_line(line)
        spec_line = _spec_line(verdict)
        if spec_line:
            terminal.write_line(f"note: {spec_line}")
    terminal.write_line("")
    terminal.write_line(totals_line(summary))
    snap = snapshot_line(summary)
    if snap:
        terminal.write_line(snap)
    for line in drift_lines(summary):
        terminal.write_line(line)
    for line in session.report_lines:
        terminal.write_line(line)
    silence_syrupy(terminal.config)
    if summary.get("aborted") or summary.get("interrupted"):
        quiet_interrupt(terminal)


def _verdict(session: Any) -> dict[str, Any] | None:
    from conformance.yamlio import parse_yaml

    path = session.run_dir / "conformance-report.yaml" if session.run_dir else None
    if path is None or not path.is_file():
        return None
    return parse_yaml(path.read_text(encoding="utf-8"))


def _spec_line(verdict: dict[str, Any]) -> str | None:
    from conformance.spec import difference_line

    return difference_line(verdict.get("spec", {}))

