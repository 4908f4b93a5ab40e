"""docs/nightly.md's workflow is valid YAML and does what the document promises."""

from __future__ import annotations

import re

import yaml

from conformance.resources import PACKAGE_DIR


def _workflow() -> dict:
    text = (PACKAGE_DIR.parent / "docs" / "nightly.md").read_text(encoding="utf-8")
    block = re.search(r"^```yaml\n(.*?)^```$", text, re.S | re.M)
    assert block, "docs/nightly.md holds the workflow in a ```yaml block"
    return yaml.safe_load(block.group(1))


def test_nightly_workflow_installs_clients_keeps_only_judged_runs_and_posts_the_summary():
    steps = _workflow()["jobs"]["conformance"]["steps"]
    by_name = {s.get("name", s.get("uses", "")): s for s in steps}
    install = next(s["run"] for n, s in by_name.items() if n.startswith("Install"))
    assert "'.[clients]'" in install and "conformance html-setup" in install
    run = next(s["run"] for n, s in by_name.items() if n.startswith("Run the suite"))
    assert "judged=true" in run and "reports/latest/summary.json" in run
    keep = next(s for n, s in by_name.items() if n.startswith("Keep this run"))
    assert "steps.run.outputs.judged == 'true'" in keep["if"] and keep["uses"].startswith("actions/upload-artifact")
    summary = next(s["run"] for n, s in by_name.items() if n.startswith("Publish summary.md"))
    assert "summary.md" in summary and "GITHUB_STEP_SUMMARY" in summary
