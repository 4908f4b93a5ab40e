"""The certification verdict: profiles of features (data/features.yaml), conformance-report.yaml.

In the manner of Kubernetes Gateway API conformance reports. Each feature belongs to one profile (a surface, or
auth / errors / request_tags ...) and is `core` or `extended`; bearer auth is core to every surface profile as
well (every documented example sends a token). A case belongs to the profile of each feature it lists. Per
profile (profiles() says it exactly): success, partial, failure, not-run or not-claimed, with the reason for
anything but success. Warnings (broken should/advisory rules) never make a profile less than success; they are
listed as warned_cases. A run that left cases out (-k / -m, a spent token budget) is `incomplete: true`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.config import features
from conformance.spec import certificate_spec, spec_folder
from conformance.summary import budget_skipped, pending
from conformance.vocabulary import route_surfaces


def implementation_of(target: Any) -> dict[str, Any]:
    """What summary.json keeps about the implementation and its claims, so a report renders from the run alone."""
    return {
        "implementation": {"name": target.name, "version": target.version, "url": target.url,
                           "organization": target.organization, "contact": target.contact},
        "claims": {"features": "all" if target.features is None else sorted(target.features),
                   "unsupported_features": sorted(target.unsupported_features)},
    }


def spec_digests(spec_dir: Path | None) -> dict[str, Any]:
    """The pinned spec the cases were written against, and how local spec files compare (conformance/spec.py)."""
    return certificate_spec(spec_folder(spec_dir))


def models_section(summary: dict[str, Any]) -> dict[str, Any]:
    """Which catalog models the target serves, as the preflight found (conformance/preflight.py): the cases of a
    model it does not serve were skipped, never failed."""
    found = (summary.get("preflight") or {}).get("models")
    if not found:
        return {"source": "not checked"}
    return {"source": found.get("source"), "served": found.get("served", []),
            "not_served": found.get("not_served", {}),
            **({"routes_missing": summary["preflight"]["routes_missing"]}
               if summary["preflight"].get("routes_missing") else {})}


def _claimed(summary: dict[str, Any], feature: str) -> bool:
    claims = summary.get("claims", {"features": "all", "unsupported_features": []})
    if feature in claims.get("unsupported_features", []):
        return False
    return claims.get("features", "all") == "all" or feature in claims["features"]


def case_name(record: dict[str, Any]) -> str:
    return f"{record['id']}@{record['model']}" if record.get("model") else record["id"]


def surface_profiles() -> set[str]:
    """Profiles that are a surface with a route of its own (data/surfaces.yaml)."""
    return set(route_surfaces())


def profile_features() -> dict[str, dict[str, list[str]]]:
    """profile -> {core, extended, own}: a feature's own profile, plus the features core to every surface
    profile (core_of_every_surface: bearer auth, which every documented example sends)."""
    table = features()
    out: dict[str, dict[str, list[str]]] = {}
    for name, feature in table.items():
        entry = out.setdefault(feature["profile"], {"core": [], "extended": [], "own": []})
        entry[feature.get("level", "extended")].append(name)
        entry["own"].append(name)
    everywhere = [name for name, feature in table.items() if feature.get("core_of_every_surface")]
    for profile in surface_profiles() & set(out):
        out[profile]["core"] += [f for f in everywhere if f not in out[profile]["core"]]
    return out


def _all_core(record: dict[str, Any]) -> bool:
    table = features()
    return all(table.get(f, {}).get("level") == "core" for f in record.get("features", []))


def _judge(summary: dict[str, Any], levels: dict[str, list[str]], records: list[dict[str, Any]],
           not_selected: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The result of one profile, as Gateway API conformance reports define it, and why it is not success."""
    own = levels["own"]
    if not any(_claimed(summary, f) for f in own):
        return "not-claimed", "no feature of the profile is claimed"
    judged = [r for r in records if r["outcome"] in ("passed", "failed", "warned")]
    by = {o: [r for r in records if r["outcome"] == o] for o in ("failed", "error", "skipped")}
    waiting = [r for r in by["error"] if pending(r)]
    if not judged:
        left = len(not_selected) + len(by["skipped"]) + len(by["error"])
        later = f", {len(waiting)} pending (`conformance verify-usage RUN_DIR`)" if waiting else ""
        return "not-run", (f"nothing judged: {len(not_selected)} case(s) deselected, {len(by['skipped'])} "
                           f"skipped, {len(by['error']) - len(waiting)} infrastructure error(s){later}") if left \
            else "nothing judged: no case of the profile applies to the target's models"
    reasons = []
    core_failed = [r for r in by["failed"] if _all_core(r)]
    if core_failed:
        reasons.append(f"{len(core_failed)} case(s) of core features failed")
    extended = sorted({f for r in by["failed"] if not _all_core(r) for f in r["features"]
                       if features().get(f, {}).get("level") != "core"})
    if len(by["failed"]) > len(core_failed):
        reasons.append(f"{len(by['failed']) - len(core_failed)} case(s) of extended features failed "
                       f"({', '.join(extended)})")
    unclaimed = [f for f in levels["core"] if not _claimed(summary, f)]
    if unclaimed:
        reasons.append(f"core feature(s) not claimed: {', '.join(unclaimed)}")
    untested = [f for f in levels["core"] if _claimed(summary, f)
                and not any(f in r.get("features", []) for r in judged)]
    if untested:
        reasons.append(f"claimed core feature(s) with no case judged: {', '.join(untested)}")
    if len(by["error"]) > len(waiting):
        reasons.append(f"{len(by['error']) - len(waiting)} case(s) not judged: infrastructure error")
    if waiting:
        reasons.append(f"{len(waiting)} case(s) pending: usage rows not in the table yet "
                       "(`conformance verify-usage RUN_DIR` judges them later)")
    claimed_skips = [r for r in by["skipped"] if all(_claimed(summary, f) for f in r.get("features", []))]
    budget = [r for r in claimed_skips if budget_skipped(r)]
    if not_selected or budget:
        reasons.append(f"incomplete: {len(not_selected)} case(s) deselected, {len(budget)} skipped for the "
                       "token budget")
    if len(claimed_skips) > len(budget):
        reasons.append(f"{len(claimed_skips) - len(budget)} case(s) of claimed features skipped "
                       "(see skipped_cases)")
    if core_failed:
        return "failure", "; ".join(reasons)
    return ("partial", "; ".join(reasons)) if reasons else ("success", None)


def profiles(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per profile: success only if every core feature (bearer auth included, for a surface) was claimed and
    its cases passed (warnings allowed: never non-conformance) and every claimed case of the profile was
    judged; partial when something of that is missing (an unclaimed core feature, an extended feature that
    failed, an infrastructure error, a claimed case not run); failure when a case of core features only broke
    a must rule; not-run when nothing of the profile was judged; not-claimed when none of its own features
    is claimed."""
    out: dict[str, dict[str, Any]] = {}
    deselected = (summary.get("not_run") or {}).get("deselected_cases") or []
    for profile, levels in sorted(profile_features().items()):
        own = set(levels["own"])
        records = [r for r in summary["cases"] if set(r.get("features", [])) & own]
        not_selected = [r for r in deselected if set(r.get("features", [])) & own]
        result, reason = _judge(summary, levels, records, not_selected)
        all_features = sorted(set(levels["core"]) | set(levels["extended"]))
        supported = [f for f in all_features if _claimed(summary, f)]
        stats = Counter(r["outcome"] for r in records)
        out[profile] = {
            "result": result,
            **({"reason": reason} if reason else {}),
            "statistics": {"passed": stats["passed"], "failed": stats["failed"], "warned": stats["warned"],
                           "skipped": stats["skipped"], "errors": stats["error"]},
            "core_features": sorted(levels["core"]),
            "extended_features": sorted(levels["extended"]),
            "supported_features": supported,
            "unsupported_features": sorted(set(all_features) - set(supported)),
            "failed_cases": sorted(case_name(r) for r in records if r["outcome"] == "failed"),
            "warned_cases": sorted(case_name(r) for r in records if r["outcome"] == "warned"),
            "error_cases": sorted(case_name(r) for r in records if r["outcome"] == "error"),
            "skipped_cases": sorted(case_name(r) for r in records if r["outcome"] == "skipped"),
            **({"deselected_cases": len(not_selected)} if not_selected else {}),
        }
    return out


def conformance_report(summary: dict[str, Any], spec_dir: Path | None = None) -> dict[str, Any]:
    impl = summary.get("implementation") or {k: summary["target"].get(k) for k in ("name", "version", "url")}
    return {
        "apiVersion": "conformance.ai-gateway/v1alpha1",
        "kind": "ConformanceReport",
        "implementation": {k: impl.get(k) for k in ("name", "version", "url", "organization", "contact")},
        "date": summary.get("started_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite_version": summary.get("suite_version", __version__),
        "spec": spec_digests(spec_dir),
        "deviations": summary.get("deviations", []),
        "models": models_section(summary),
        "strict": bool(summary.get("strict")),
        "incomplete": bool(summary.get("incomplete")),
        **({"not_run": {k: v for k, v in summary["not_run"].items() if k != "deselected_cases"}}
           if summary.get("incomplete") else {}),
        "totals": summary["totals"],
        "profiles": profiles(summary),
    }
