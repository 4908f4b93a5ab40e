"""Screenshots of a run's HTML reports as a browser shows them (headless Chromium), for notes and reviews.

    python scripts/screenshots.py RUN_DIR OUT_DIR [--case CASE@MODEL] [--prefix NAME]

Writes OUT_DIR/<prefix>builtin.png (report.html's first screen) and, when the run has the Allure report,
<prefix>allure.png (its first screen) and <prefix>allure-case.png (the page of --case, default: the first failed
case, else the first case). Renders the missing report first (`conformance report`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conformance.html import allure_binary
from conformance.reporting import render_reports

WINDOW = "--window-size=1400,1000"


def chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        raise SystemExit("no headless Chromium (Debian: apt-get install chromium)")
    return found


def shot(url: str, out: Path, height: int = 1000, budget: int = 20000) -> None:
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1400,{height}", f"--virtual-time-budget={budget}", f"--screenshot={out}", url],
                   capture_output=True, timeout=300, check=True)
    print(out)


def leaf_id(index: Path, title: str) -> str | None:
    """The Allure tree's id of the test titled `title`, from the rendered page."""
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", WINDOW,
                           "--virtual-time-budget=20000", "--dump-dom", index.as_uri()],
                          capture_output=True, text=True, timeout=300)
    for found in re.finditer(r'data-testid="tree-leaf"[^>]*\bid="([0-9a-f]+)".*?tree-leaf-title"[^>]*>([^<]*)<',
                             done.stdout, re.S):
        if found.group(2).strip() == title:
            return found.group(1)
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--case", help="CASE@MODEL whose Allure page to take")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args(argv)
    run_dir, out = args.run_dir.resolve(), args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    render_reports(run_dir, html="builtin")
    shot((run_dir / "report.html").as_uri(), out / f"{args.prefix}builtin.png")
    if allure_binary() is None:
        print("Allure is not installed: no Allure screenshots", file=sys.stderr)
        return 0
    render_reports(run_dir, html="allure")
    index = run_dir / "html" / "index.html"
    shot(index.as_uri(), out / f"{args.prefix}allure.png")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    case = args.case or next((f"{c['id']}@{c['model']}" if c.get("model") else c["id"]
                              for c in summary["cases"] if c["outcome"] == "failed"), None)
    if case is not None:
        name, _, model = case.partition("@")
        found = leaf_id(index, f"{name} @ {model}" if model else name)
        if found:
            shot(f"{index.as_uri()}#{found}", out / f"{args.prefix}allure-case.png", height=1300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
