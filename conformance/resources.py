"""Where the suite's data lives, both in a source checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
CASES_DIR = PACKAGE_DIR / "cases"
SUITE_DIR = PACKAGE_DIR / "suite"


@cache
def schemas_dir() -> Path:
    # A wheel carries the top-level schemas/ as conformance/_schemas; a checkout keeps it beside the package.
    for candidate in (PACKAGE_DIR / "_schemas", PACKAGE_DIR.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("schemas/ not found beside the conformance package")
