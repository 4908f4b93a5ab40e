"""`conformance diff RUN_A RUN_B`: what changed between two runs (the nightly "since yesterday?").

Cases are keyed by case id and model. regressed: passed, warned (or skipped) in A, failed or errored in B;
recovered: failed or errored in A, passed or warned (conformant) in B; appeared / vanished: in only one run.
Shape drift that is new in B (a case drifting in B that did not in A) is listed too, apart from regressions, and
so are the surfaces and models whose p95 latency grew (latency.slower): never a regression of the verdict.
"""

from __future__ import annotations

from typing import Any

from conformance import latency
from conformance.certify import case_name

BAD = ("failed", "error")


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    old = {case_name(r): r for r in a["cases"]}
    new = {case_name(r): r for r in b["cases"]}
    out: dict[str, Any] = {"regressed": [], "recovered": [], "appeared": [], "vanished": [], "new_drift": []}
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out["appeared"].append({"case": name, "outcome": new[name]["outcome"]})
        elif name not in new:
            out["vanished"].append({"case": name, "outcome": old[name]["outcome"]})
        else:
            before, after = old[name]["outcome"], new[name]["outcome"]
            if after in BAD and before not in BAD:
                out["regressed"].append({"case": name, "from": before, "to": after,
                                         "message": new[name].get("message", "").splitlines()[:1]})
            elif before in BAD and after in ("passed", "warned"):
                out["recovered"].append({"case": name, "from": before, "to": after})
            drift = new[name].get("snapshot", {})
            if drift.get("status") == "drift" and old[name].get("snapshot", {}).get("status") != "drift":
                out["new_drift"].append({"case": name, "drift": drift.get("drift", [])})
    for item in out["regressed"]:
        item["message"] = item["message"][0] if item["message"] else ""
    out["slower"] = latency.slower(a, b)
    out["totals"] = {"a": a["totals"], "b": b["totals"]}
    return out


def render(result: dict[str, Any]) -> str:
    lines = []
    for key in ("regressed", "recovered", "appeared", "vanished", "new_drift", "slower"):
        items = result.get(key, [])
        lines.append(f"{key.replace('_', ' ')}: {len(items)}")
        for item in items:
            if key == "regressed":
                lines.append(f"  {item['case']}: {item['from']} -> {item['to']}"
                             + (f"  ({item['message'][:160]})" if item["message"] else ""))
            elif key == "recovered":
                lines.append(f"  {item['case']}: {item['from']} -> {item['to']}")
            elif key == "new_drift":
                lines.append(f"  {item['case']}: " + "; ".join(item["drift"][:3]))
            elif key == "slower":
                lines.append(f"  {item['surface']} {item['model']}: {item['measure']} p95 "
                             f"{item['p95_a_s'] * 1000:.0f} ms -> {item['p95_b_s'] * 1000:.0f} ms")
            else:
                lines.append(f"  {item['case']} ({item['outcome']})")
    return "\n".join(lines)
