"""The installed package works from any directory: the wheel, installed into a fresh environment, run from /tmp.

Found installing the suite as the README says (`pip install '.[clients]'`, not editable) and running it from
another folder: the certificate had no spec digests, the shipped snapshot baseline was not found
(`no-baseline`), the Allure generator installed by `html-setup` was "not installed", `conformance coverage`
exited 2. Everything the package reads must be found from its own location (conformance/resources.py).

The environment gets the wheel alone (`--no-deps`); its dependencies come from this test run's environment
through a .pth line, which (unlike the editable install's own .pth) puts no checkout on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from conformance.known_valid import CACHE_ENV
from conformance.resources import PACKAGE_DIR, checkout_dir
from conformance.spec import pinned_digests

pytestmark = pytest.mark.skipif(checkout_dir() is None, reason="needs the source checkout to build the wheel")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtual environment holding the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                            str(PACKAGE_DIR.parent)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "suite-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                              "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return venv / "bin"


def _run(installed: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CONFORMANCE_", "DATABRICKS_", "GATEWAY_", "PYTHON"))
             or k == CACHE_ENV}  # the session's record of valid case data (conftest), not the user's
    return subprocess.run([str(installed / "conformance"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**clean, **(env or {})})


def test_the_installed_suite_finds_its_own_data_from_anywhere(installed, tmp_path):
    where = installed.parent / "bin" / "python"
    located = subprocess.run([str(where), "-c", "import conformance; print(conformance.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(installed.parent) in located, "the wheel's copy, not the checkout"

    done = _run(installed, tmp_path, "run", "-k", "chat-system-and-user and claude-sonnet-4-5", "--html", "auto")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run_dir = (tmp_path / "reports" / "latest").resolve()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["snapshot_totals"].get("match", 0) > 0 and "no-baseline" not in summary["snapshot_totals"]
    assert "_snapshots" in summary["snapshots"]["dir"], "the shipped reference baseline, inside the package"
    report = yaml.safe_load((run_dir / "conformance-report.yaml").read_text())
    assert report["spec"]["documents"] == pinned_digests() and report["spec"]["id"]
    assert report["spec"]["local"]["status"] == "not-found"
    from conformance.html import allure_binary

    html = run_dir / ("html/index.html" if allure_binary() is not None else "report.html")
    assert html.is_file(), sorted(p.name for p in run_dir.iterdir())

    coverage = _run(installed, tmp_path, "coverage", "--uncovered")
    assert coverage.returncode == 0, coverage.stderr
    assert "sections checked by at least one case" in coverage.stdout


def test_local_spec_files_that_differ_are_said(installed, tmp_path):
    from conformance.resources import default_spec_dir

    source = default_spec_dir()
    if source is None or not source.is_dir():
        pytest.skip("no spec folder beside the checkout")
    spec = tmp_path / "spec"
    shutil.copytree(source, spec)
    changed = sorted(spec.glob("*.txt"))[0]
    changed.write_text(changed.read_text() + "\nA sentence the pinned spec does not have.\n")
    done = _run(installed, tmp_path, "run", "-k", "chat-system-and-user and claude-sonnet-4-5", "--html", "none",
                "--spec", str(spec))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = yaml.safe_load(((tmp_path / "reports" / "latest").resolve() / "conformance-report.yaml").read_text())
    assert report["spec"]["local"]["status"] == "differs"
    assert list(report["spec"]["local"]["differs"]) == [changed.name]
    assert "differ from the pinned spec" in done.stdout
