"""YAML loading with one error type, so callers can turn any bad file into a one-line message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conformance.errors import BadInput

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml's emitter writes what the pure-Python one writes (every conformance-report.yaml of a self-test session
# compared: the same bytes), in a fifth of the time
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(value: Any, width: int = 120) -> str:
    """A report's YAML: keys in their order, text as it is (no escapes), lines up to `width`."""
    return yaml.dump(value, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=width)


def parse_yaml(text: str) -> Any:
    """YAML this suite wrote (a report): no one-line error, it is not the user's input."""
    return yaml.load(text, Loader=_LOADER)


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
