"""YAML loading with one error type, so callers can turn any bad file into a one-line message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conformance.errors import BadInput

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
