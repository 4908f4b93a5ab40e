"""summary.json: the run's machine-readable verdict (other tools read it: keep names and fields stable)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import __version__, latency
from conformance.findings import STRENGTHS, WARNING_STRENGTHS, Finding, ordered, strongest

OUTCOMES = ("passed", "failed", "warned", "skipped", "error")
BUDGET_SKIP = "token budget of "  # how runner.py words a case skipped because the run's token budget is spent


PENDING = "pending: "  # how usage_tracking.py words a usage case whose row may still appear (verify-usage)


def budget_skipped(record: dict[str, Any]) -> bool:
    return record["outcome"] == "skipped" and str(record.get("message", "")).startswith(BUDGET_SKIP)


def pending(record: dict[str, Any]) -> bool:
    """An error that is no infrastructure trouble: a usage row not in the table yet, within the stated lag."""
    return record["outcome"] == "error" and str(record.get("message", "")).startswith(PENDING)


class SummaryCollector:
    """Folds pytest reports (setup/call/teardown, possibly from xdist workers) into one record per case.

    The call phase carries the case's findings (plugin.conclude): a passed test with findings is `warned`;
    a failed one takes its first (most specific) finding as its message."""

    def __init__(self, strict: bool = False) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.not_selected: list[dict[str, Any]] = []
        self.strict = strict
        self.started = datetime.now(timezone.utc)

    def deselected(self, records: list[dict[str, Any]]) -> None:
        """Cases left out by -k / -m (case metadata as in a record, without an outcome)."""
        self.not_selected += records

    def add(self, nodeid: str, when: str, outcome: str, message: str, props: dict[str, Any]) -> None:
        meta = props.get("conformance_case")
        if meta is None:
            return
        record = self.cases.setdefault(nodeid, {**meta, "outcome": "passed", "message": "", "findings": []})
        if "usage" in props:
            record["usage"] = props["usage"]
        if "latency" in props:
            record["latency"] = props["latency"]
        if "snapshot" in props:
            record["snapshot"] = props["snapshot"]
        findings = [Finding.from_dict(f) for f in props.get("conformance_findings") or []]
        if when == "setup" and outcome == "skipped":
            record.update(outcome="skipped", message=message)
        elif when == "call" and findings:
            first = ordered(findings)[0]
            if outcome == "passed":  # only should/advisory findings: conformant, with warnings
                first = next((f for f in ordered(findings) if f.strength in WARNING_STRENGTHS), first)
            record.update(outcome="failed" if outcome == "failed" else "warned", message=first.text(),
                          findings=[f.as_dict() for f in ordered(findings)])
        elif outcome == "failed":
            # a setup failure is the fixture that sends the request: an infrastructure error
            if when == "call":
                record.update(outcome="failed", message=message)
            elif record["outcome"] != "failed":
                record.update(outcome="error", message=message)

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(("passed", "failed", "warned", "skipped", "errors"), 0)
        for record in self.cases.values():
            counts["errors" if record["outcome"] == "error" else record["outcome"]] += 1
        counts["drift"] = sum(1 for r in self.cases.values() if r.get("snapshot", {}).get("status") == "drift")
        return counts

    def failures_by_strength(self) -> dict[str, int]:
        """Failed cases by the strength of their strongest finding: always `must`, unless --strict made
        should/advisory findings fail too (errors are not verdicts and are not counted)."""
        return self._by_strength("failed", STRENGTHS)

    def warnings_by_strength(self) -> dict[str, int]:
        """Warned cases by their strongest finding (should, else advisory): never non-conformance."""
        return self._by_strength("warned", WARNING_STRENGTHS)

    def _by_strength(self, outcome: str, levels: tuple[str, ...]) -> dict[str, int]:
        counts = dict.fromkeys(levels, 0)
        for record in self.cases.values():
            if record["outcome"] == outcome:
                level = strongest(record.get("findings") or []) or "must"
                counts[level] = counts.get(level, 0) + 1
        return counts

    def not_run(self) -> dict[str, Any]:
        """What the verdict does not cover: cases deselected (-k / -m) and cases skipped for the token budget."""
        budget = [r for r in self.cases.values() if budget_skipped(r)]
        return {"deselected": len(self.not_selected), "budget_skipped": len(budget),
                "deselected_cases": sorted(self.not_selected, key=lambda r: (r["surface"], r["id"],
                                                                              r.get("model") or ""))}

    def snapshot_totals(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.cases.values():
            status = record.get("snapshot", {}).get("status")
            if status:
                counts[status] = counts.get(status, 0) + 1
        return dict(sorted(counts.items()))

    def tokens(self) -> dict[str, Any]:
        total = {"prompt": 0, "completion": 0}
        per_surface: dict[str, dict[str, int]] = defaultdict(lambda: {"prompt": 0, "completion": 0})
        for record in self.cases.values():
            usage = record.get("usage")
            if not usage:
                continue
            for key in ("prompt", "completion"):
                total[key] += usage[key]
                per_surface[record["surface"]][key] += usage[key]
        return {**total, "per_surface": dict(sorted(per_surface.items()))}

    def document(self, target: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        finished = datetime.now(timezone.utc)
        not_run = self.not_run()
        cases = sorted(self.cases.values(), key=lambda r: (r["surface"], r["id"], r.get("model") or ""))
        return {
            "suite_version": __version__,
            "target": target,
            "started_at": self.started.isoformat(timespec="seconds"),
            "duration_s": round((finished - self.started).total_seconds(), 3),
            "totals": self.totals(),
            "failures_by_strength": self.failures_by_strength(),
            "warnings_by_strength": self.warnings_by_strength(),
            "strict": self.strict,
            "incomplete": bool(not_run["deselected"] or not_run["budget_skipped"]),
            "not_run": not_run,
            "cases": cases,
            "tokens": self.tokens(),
            "latency": latency.aggregate(cases),
            "snapshot_totals": self.snapshot_totals(),
            **(extra or {}),
        }


def write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def new_run_dir(reports: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    reports.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        candidate = reports / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {reports}")


def point_latest(run_dir: Path) -> None:
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, latest)


def exit_status(summary: dict[str, Any]) -> int:
    """0 no conformance failure (warnings are none); 1 a failure (under --strict a warning was one, and the
    case is recorded failed); 3 unreachable, or only infrastructure errors occurred."""
    totals = summary["totals"]
    if summary.get("unreachable"):
        return 3
    if totals["failed"]:
        return 1
    if totals["errors"] and not (totals["passed"] or totals.get("warned")):
        return 3
    return 0
