"""Where the suite's data lives, in a source checkout and in an installed wheel alike.

An installed package must work from any directory: everything it reads is found from its own location, never
from the current directory. What a wheel carries beside the package's own data/ (see pyproject.toml):
`_schemas/` (the top-level schemas/) and `_snapshots/reference/` (the reference gateway's shipped shape baseline).
What the suite installs for the user (the Allure HTML generator) goes to a per-user folder, never into the
checkout or the environment.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
CASES_DIR = PACKAGE_DIR / "cases"
SUITE_DIR = PACKAGE_DIR / "suite"

HOME_ENV = "CONFORMANCE_HOME"  # the per-user folder (default: the platform's user data folder)
TOOLS_ENV = "CONFORMANCE_TOOLS_DIR"  # where `conformance html-setup` installs Allure (default: <home>/tools)
SPEC_DIR_ENV = "CONFORMANCE_SPEC_DIR"


def checkout_dir() -> Path | None:
    """The source checkout the package runs from (an editable install), or None for an installed wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "schemas").is_dir() else None


@cache
def schemas_dir() -> Path:
    # A wheel carries the top-level schemas/ as conformance/_schemas; a checkout keeps it beside the package.
    for candidate in (PACKAGE_DIR / "_schemas", PACKAGE_DIR.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("schemas/ not found beside the conformance package")


def shipped_snapshot_root() -> Path:
    """The snapshots that come with the suite (the reference gateway's baseline): the checkout's snapshots/,
    or the copy a wheel carries."""
    checkout = checkout_dir()
    return checkout / "snapshots" if checkout is not None else PACKAGE_DIR / "_snapshots"


def user_home() -> Path:
    """The per-user folder of the suite (tools it installs): $CONFORMANCE_HOME, else the platform's user data
    folder ($XDG_DATA_HOME or ~/.local/share on Linux, %LOCALAPPDATA% on Windows, ~/Library/Application Support
    on macOS) / gateway-conformance."""
    given = os.environ.get(HOME_ENV)
    if given:
        return Path(given)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "gateway-conformance"


def tools_dir() -> Path:
    given = os.environ.get(TOOLS_ENV)
    return Path(given) if given else user_home() / "tools"


def default_spec_dir() -> Path | None:
    """The spec documents to compare with the pinned digests: $CONFORMANCE_SPEC_DIR, else ../shared/spec beside
    a source checkout; an installed package has none (its certificates state the pinned digests)."""
    given = os.environ.get(SPEC_DIR_ENV)
    if given:
        return Path(given)
    checkout = checkout_dir()
    return checkout.parent / "shared" / "spec" if checkout is not None else None
