"""The certification verdict: profiles of features (data/features.yaml), conformance-report.yaml.

In the manner of Kubernetes Gateway API conformance reports. Each feature belongs to one profile (a surface, or
auth / errors / request_tags) and is `core` or `extended`. A case belongs to the profile of each feature it
lists. Per profile:
- success: every case of the profile that ran passed (no failure, no error);
- partial: no `must` case of a core feature failed, but something else did not pass (a `should` case, an
  extended feature, an infrastructure error);
- failure: a `must` case that only needs claimed core features failed, or nothing of the profile could be judged
  (every case errored).
Features the target does not claim are skipped and listed as unsupported; a profile none of whose features is
claimed is reported as `not-claimed` rather than judged.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.config import features
from conformance.spec import certificate_spec, spec_folder


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


def profiles(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = features()
    by_profile: dict[str, dict[str, Any]] = {}
    for name, feature in table.items():
        entry = by_profile.setdefault(feature["profile"], {"core": [], "extended": []})
        entry[feature.get("level", "extended")].append(name)
    out: dict[str, dict[str, Any]] = {}
    for profile, levels in sorted(by_profile.items()):
        all_features = levels["core"] + levels["extended"]
        supported = sorted(f for f in all_features if _claimed(summary, f))
        records = [r for r in summary["cases"] if set(r.get("features", [])) & set(all_features)]
        stats = Counter(r["outcome"] for r in records)
        failed = [r for r in records if r["outcome"] == "failed"]
        errors = [r for r in records if r["outcome"] == "error"]
        core_must = [r for r in failed if r.get("strength", "must") == "must"
                     and all(table.get(f, {}).get("level") == "core" for f in r["features"])]
        ran = stats["passed"] + stats["failed"] + stats["error"]
        if not supported:
            result = "not-claimed"
        elif core_must or (ran and not stats["passed"] and not stats["failed"]):
            result = "failure"
        elif failed or errors or not ran:
            result = "partial"
        else:
            result = "success"
        out[profile] = {
            "result": result,
            "core_features": sorted(levels["core"]),
            "extended_features": sorted(levels["extended"]),
            "supported_features": supported,
            "unsupported_features": sorted(set(all_features) - set(supported)),
            "statistics": {"passed": stats["passed"], "failed": stats["failed"], "skipped": stats["skipped"],
                           "errors": stats["error"],
                           "must_failures": sum(1 for r in failed if r.get("strength", "must") == "must"),
                           "should_failures": sum(1 for r in failed if r.get("strength") == "should")},
            "failed_cases": sorted(case_name(r) for r in failed),
            "error_cases": sorted(case_name(r) for r in errors),
            "skipped_cases": sorted(case_name(r) for r in records if r["outcome"] == "skipped"),
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
        "totals": summary["totals"],
        "profiles": profiles(summary),
    }
