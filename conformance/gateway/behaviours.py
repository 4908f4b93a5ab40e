"""The deviation and variation switches of the reference gateway, read from behaviours.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

from conformance.errors import BadInput
from conformance.yamlio import load_yaml


@dataclass(frozen=True)
class Switch:
    name: str
    conformant: bool
    rule: str
    expect_failed: tuple[str, ...] = ()
    expect_drift: tuple[str, ...] = ()  # drift switches: cases whose response shape changes
    expect_warned: tuple[str, ...] = ()  # cases whose broken rule is should/advisory: warned, not failed

    def expects_failure(self, test_id: str) -> bool:
        """test_id is `case@model` (or a bare case id); a pattern names a case on every model it runs for,
        or, with an `@`, only some models (where a rule shows only on some answer shapes)."""
        return _matches(test_id, self.expect_failed)

    def expects_warning(self, test_id: str) -> bool:
        """As expects_failure, for expect_warned; a case expected to fail is not expected to warn."""
        return not self.expects_failure(test_id) and _matches(test_id, self.expect_warned)


def _matches(test_id: str, patterns: tuple[str, ...]) -> bool:
    case_id = test_id.split("@")[0]
    return any(fnmatchcase(test_id if "@" in pattern else case_id, pattern) for pattern in patterns)


@cache
def switches() -> dict[str, Switch]:
    raw = load_yaml(Path(__file__).with_name("behaviours.yaml"))
    out: dict[str, Switch] = {}
    for name, spec in raw.get("deviations", {}).items():
        out[name] = Switch(name, False, spec["rule"], tuple(spec.get("expect_failed", ())),
                           expect_warned=tuple(spec.get("expect_warned", ())))
    for name, spec in raw.get("variations", {}).items():
        out[name] = Switch(name, True, spec["note"])
    for name, spec in raw.get("drift", {}).items():
        out[name] = Switch(name, True, spec["note"], tuple(spec.get("expect_failed", ())),
                           tuple(spec["expect_drift"]), tuple(spec.get("expect_warned", ())))
    return out


def deviations() -> list[Switch]:
    return [s for s in switches().values() if not s.conformant]


def variations() -> list[Switch]:
    return [s for s in switches().values() if s.conformant and not s.expect_drift]


def conformant_switches() -> list[Switch]:
    """Every switch whose answers the suite must pass: the variations, and the drift switches that expect no
    failure (a changed shape is drift, never a reason to fail a conformant answer)."""
    return [s for s in switches().values() if s.conformant and not s.expect_failed]


def drift_switches() -> list[Switch]:
    """Switches that change a response's shape (conformantly): the snapshot comparison must show them."""
    return [s for s in switches().values() if s.expect_drift]


def expects_drift(switch: Switch, case_id: str) -> bool:
    return any(fnmatchcase(case_id, pattern) for pattern in switch.expect_drift)


def check_names(names: list[str]) -> frozenset[str]:
    known = switches()
    for name in names:
        if name not in known:
            raise BadInput(f"unknown deviation {name!r} (see `conformance serve --list-deviations`)")
    return frozenset(names)


def listing() -> str:
    lines = ["deviations (each breaks one rule):"]
    lines += [f"  {s.name:36} {s.rule}" for s in deviations()]
    lines += ["variations (conformant, but different):"]
    lines += [f"  {s.name:36} {s.rule}" for s in variations()]
    lines += ["drift (conformant, but a different response shape):"]
    lines += [f"  {s.name:36} {s.rule}" for s in drift_switches()]
    return "\n".join(lines)
