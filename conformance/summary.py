"""summary.json: the run's machine-readable verdict (other tools read it: keep names and fields stable)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import __version__

OUTCOMES = ("passed", "failed", "skipped", "error")


class SummaryCollector:
    """Folds pytest reports (setup/call/teardown, possibly from xdist workers) into one record per case."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.started = datetime.now(timezone.utc)

    def add(self, nodeid: str, when: str, outcome: str, message: str, props: dict[str, Any]) -> None:
        meta = props.get("conformance_case")
        if meta is None:
            return
        record = self.cases.setdefault(nodeid, {**meta, "outcome": "passed", "message": ""})
        if "usage" in props:
            record["usage"] = props["usage"]
        if "snapshot" in props:
            record["snapshot"] = props["snapshot"]
        if when == "setup" and outcome == "skipped":
            record.update(outcome="skipped", message=message)
        elif outcome == "failed":
            # a setup failure is the fixture that sends the request: an infrastructure error
            if when == "call":
                record.update(outcome="failed", message=message)
            elif record["outcome"] != "failed":
                record.update(outcome="error", message=message)

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(("passed", "failed", "skipped", "errors"), 0)
        for record in self.cases.values():
            counts["errors" if record["outcome"] == "error" else record["outcome"]] += 1
        counts["drift"] = sum(1 for r in self.cases.values() if r.get("snapshot", {}).get("status") == "drift")
        return counts

    def failures_by_strength(self) -> dict[str, int]:
        """Failed cases by normative strength: a `must` failure breaks the contract, a `should` one a limit
        or a support statement (errors are not verdicts and are not counted)."""
        counts = dict.fromkeys(("must", "should"), 0)
        for record in self.cases.values():
            if record["outcome"] == "failed":
                counts[record.get("strength") or "must"] += 1
        return counts

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
        cases = sorted(self.cases.values(), key=lambda r: (r["surface"], r["id"], r.get("model") or ""))
        return {
            "suite_version": __version__,
            "target": target,
            "started_at": self.started.isoformat(timespec="seconds"),
            "duration_s": round((finished - self.started).total_seconds(), 3),
            "totals": self.totals(),
            "failures_by_strength": self.failures_by_strength(),
            "cases": cases,
            "tokens": self.tokens(),
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
    """0 no conformance failure; 1 a failure; 3 unreachable, or only infrastructure errors occurred."""
    totals = summary["totals"]
    if summary.get("unreachable"):
        return 3
    if totals["failed"]:
        return 1
    if totals["errors"] and not totals["passed"]:
        return 3
    return 0
