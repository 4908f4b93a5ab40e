"""The deviation and variation switches of the reference gateway (behaviours.yaml), and what each one must do to
the suite's verdicts.

A deviation names the rules it breaks (`breaks`: registered checks, schema names, the judging path's rules, and
for official-client cases what the example reads), optionally within a `scope` (routes, surfaces, model types,
models, stream or not, refusal or not, auth mode), and a rule may carry a scope of its own. The outcome it must
give a case item is derived, never listed: an item the switch was applied to (the reference gateway consulted the
switch while answering it, GatewayState.on) that is judged by a broken rule within scope fails when that rule is
`must` in the case (findings.strength_of) and warns when it is `should` or `advisory`; every other item passes.
A new case that uses a check is therefore expected to fail under every switch that breaks that check, and a copy
of a case under another id gets the original's expectations, with no other file to edit. A usage case item
(conformance/usage_cases/) is judged by the usage checks of its kind (conformance/usage_checks.py) and, for a
tagged request, by the rules of that request as an ordinary case of its route. A drift switch names
the answers whose shape it changes the same way (`drifts`: schema names or rules, within its scope); a variation
that changes only what the snapshots mask or undo (text, transport, framing) says so (`keeps_shape: true`), and
must then show no drift on any answer.

Only the suite's self-tests judge expectations (tests/harness.py); a run uses the switches and their listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard

from conformance.casemodel import ClientCase, Step, UsageCase
from conformance.errors import BadInput
from conformance.yamlio import load_yaml

# rules of the judging path that a deviation may break besides the registered checks and the schemas
# (conformance/findings.py: RULES and CASE_RULES; `client` is an official client's call as a whole)
PATH_RULES = ("status", "json", "error_body", "error_form", "client")
CLIENT_RULE_PREFIXES = ("read:", "iterate:")  # an official-client case reads these paths of the client's result
SCOPE_KEYS = ("routes", "surfaces", "model_types", "stream", "negative", "auth", "models", "args")
MODEL_KEYS = ("families", "names", "providers", "capabilities", "reasoning", "exclude_families",
              "reasons_by_default")
SWITCH_KEYS = {"deviations": {"rule", "breaks", "scope"},
               "variations": {"note", "keeps_shape"},
               "drift": {"note", "drifts", "scope"}}


@dataclass(frozen=True)
class Scope:
    """Which case items a switch (or one rule it breaks) reaches; a key left out reaches every item."""

    routes: frozenset[str] | None = None  # the surface whose route the request goes to (a client's route)
    surfaces: frozenset[str] | None = None  # the case's surface (auth, request_tags, ... have their own)
    model_types: frozenset[str] | None = None
    stream: bool | None = None
    negative: bool | None = None  # the case expects a refusal (an error status)
    auth: frozenset[str] | None = None  # the request's auth mode (default, bearer, basic, none, wrong-token, ...)
    models: dict[str, Any] | None = None  # a model selector (MODEL_KEYS); an item without a model is outside
    args: dict[str, Any] | None = None  # a rule's own scope only: the check's arguments in the case (check_args)

    def covers(self, item: Any, rule: str | None = None) -> bool:
        facts = item_facts(item)
        for key in ("routes", "surfaces", "model_types"):
            allowed = getattr(self, key)
            if allowed is not None and facts[key] not in allowed:
                return False
        for key in ("stream", "negative"):
            wanted = getattr(self, key)
            if wanted is not None and facts[key] != wanted:
                return False
        if self.auth is not None and not facts["auth"] & self.auth:
            return False
        if self.args is not None and rule is not None and not _args_match(item, rule, self.args):
            return False
        return self.models is None or (item.model is not None and model_matches(item.model, self.models))


def _args_match(item: Any, rule: str, wanted: dict[str, Any]) -> bool:
    """The check's arguments in some step of the case have the wanted values (an argument left out is None, and
    None matches false)."""
    for step in _steps(item):
        args = step.expect.args_of(rule)
        if rule in step.expect.checks and all(
                args.get(k) == v or (not args.get(k) and v is False) for k, v in wanted.items()):
            return True
    return False


def model_matches(model: Any, selector: dict[str, Any]) -> bool:
    """The model keys of a case's `models` selector, plus reasons_by_default (the catalog's reasoning_effort
    default is not none: such a model answers chat with reasoning blocks unless asked otherwise)."""
    by_default = model.reasoning_effort.get("default") not in (None, "none")
    return (all(model.has(c) for c in selector.get("capabilities", []))
            and ("families" not in selector or model.family in selector["families"])
            and ("names" not in selector or model.name in selector["names"])
            and ("providers" not in selector or model.provider in selector["providers"])
            and ("reasoning" not in selector or model.reasoning in selector["reasoning"])
            and model.family not in selector.get("exclude_families", [])
            and ("reasons_by_default" not in selector or selector["reasons_by_default"] == by_default))


_BRACKET_KEY = re.compile(r'\["([^"\]]+)"\]')


def client_path(path: str) -> str:
    """One spelling of what an example reads: `["choices"][0]["message"]["content"]` (curl's JSON, as a dict)
    and `choices[0].message.content` (an SDK's typed object) are the same field."""
    return _BRACKET_KEY.sub(r".\1", path).lstrip(".")


def is_client_case(case: Any) -> TypeGuard[ClientCase]:
    return isinstance(case, ClientCase)


def is_usage_case(case: Any) -> TypeGuard[UsageCase]:
    """A usage-tracking case (conformance/usage_cases/)."""
    return isinstance(case, UsageCase)


def _tagged_request(item: Any) -> Any:
    """The tagged request of a usage `tags` item, as the ordinary case it is judged as (usage_tracking)."""
    from conformance.usage_tracking import request_item

    return request_item(item, {})


def _steps(item: Any) -> list[Step]:
    if is_usage_case(item.case):
        return list(_tagged_request(item).case.steps) if item.case.kind == "tags" else []
    return [] if is_client_case(item.case) else list(item.case.steps)


def item_facts(item: Any) -> dict[str, Any]:
    """What a scope looks at, for an HTTP, an official-client or a usage case item (surface `usage`; a tagged
    request's route is its own, a statement's `sql_statements`)."""
    case = item.case
    if is_usage_case(case):
        if case.kind == "tags":
            return {**item_facts(_tagged_request(item)), "surfaces": "usage"}
        return {"surfaces": "usage", "model_types": case.model_type, "routes": "sql_statements", "stream": False,
                "negative": False, "auth": frozenset(["default"])}
    facts = {"surfaces": case.surface, "model_types": case.model_type}
    if is_client_case(case):
        call = case.client
        stream = bool(call.iterate) or (call.call or "").endswith("stream") \
            or (call.kwargs or {}).get("stream") is True
        return {**facts, "routes": call.route, "stream": stream, "negative": False,
                "auth": frozenset([call.auth or "default"])}
    return {**facts, "routes": case.route_surface, "stream": any(s.stream for s in case.steps),
            "negative": case.negative, "auth": frozenset(s.request.auth for s in case.steps)}


def rules_of(item: Any) -> dict[str, str]:
    """Every rule the case item's answer is judged by, with its strength in this case: the expected status, JSON,
    the error body and its form, each step's schema and named checks; for an official-client case, its call, the
    fields it reads or iterates and its output schema (each with the case's own strength: findings.CASE_RULES)."""
    from conformance.findings import strength_of

    case = item.case
    if is_usage_case(case):
        from conformance.usage_checks import USAGE_CHECKS
        from conformance.usage_checks import strength_of as usage_strength_of

        rules = rules_of(_tagged_request(item)) if case.kind == "tags" else {}
        rules.update({name: usage_strength_of(case, name) for name, check in USAGE_CHECKS.items()
                      if case.kind in check.kinds})
        return rules
    if is_client_case(case):
        call, strength = case.client, str(case.strength)
        rules = {"client": strength}
        rules.update({f"read:{client_path(p)}": strength for p in call.read})
        if call.iterate:
            rules[f"iterate:{client_path(call.iterate)}"] = strength
        if call.schema:
            rules[call.schema] = strength
        return rules
    rules = {"status": strength_of(case, "status")}
    for step in case.steps:
        expect = step.expect
        if expect.error_body:
            rules.update(error_body=strength_of(case, "error_body"), error_form=strength_of(case, "error_form"))
        elif not step.negative:
            rules["json"] = strength_of(case, "json")
        if expect.schema:
            rules[expect.schema] = strength_of(case, "schema")
        rules.update({name: strength_of(case, name) for name in expect.checks})
    return rules


@dataclass(frozen=True)
class Switch:
    name: str
    conformant: bool
    rule: str  # a deviation: the rule it breaks, in words; a variation or drift switch: the freedom it takes
    breaks: tuple[tuple[str, Scope | None], ...] = ()  # (rule, the rule's own scope within the switch's)
    scope: Scope = field(default_factory=Scope)
    drifts: tuple[str, ...] | None = None  # drift switches: the schemas / rules of the answers whose shape changes
    keeps_shape: bool = False  # a variation that changes no answer's shape: its answers must show no drift

    @property
    def compares_shapes(self) -> bool:
        """Whether its self-test compares the answers' shapes: a drift switch's must drift where it says, and a
        shape-keeping variation's must not drift at all."""
        return bool(self.drifts) or self.keeps_shape

    def broken(self, item: Any, applied: bool = True) -> dict[str, str]:
        """The rules this switch breaks in this case item, with their strengths in the case; `applied`: the
        gateway consulted the switch while answering the item (one it never consulted answers as without it)."""
        if not applied or not self.scope.covers(item):
            return {}
        rules = rules_of(item)
        return {name: rules[name] for name, scope in self.breaks
                if name in rules and (scope is None or scope.covers(item, name))}

    def expected(self, item: Any, applied: bool = True) -> str:
        """passed, failed or warned: a broken must rule fails, only should/advisory ones warn. A wrong status
        is the one finding of its answer (the judge reads no further), and so is a 200 body that is not JSON."""
        hits = self.broken(item, applied)
        for first in ("status", "json"):
            if first in hits and (first == "status" or not item_facts(item)["stream"]):
                hits = {first: hits[first]}
                break
        if not hits:
            return "passed"
        return "failed" if "must" in hits.values() else "warned"

    def expects_drift(self, item: Any, applied: bool = True) -> bool:
        """The item's response shape differs from the baseline snapshot with this switch on (HTTP cases only:
        an official client's result, or a usage case's, has no snapshot)."""
        if (not self.drifts or not applied or is_client_case(item.case) or is_usage_case(item.case)
                or not self.scope.covers(item)):
            return False
        last = item.case.steps[-1].expect  # the snapshot keeps the last answer's shape (an earlier step's is not)
        return any(name in (last.schema, *last.checks) for name in self.drifts)


def _tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"behaviours.yaml: {where} must be a list of strings")
    return tuple(value)


def _scope(raw: Any, where: str, rule_scope: bool = False) -> Scope:
    raw = raw or {}
    keys = SCOPE_KEYS if rule_scope else tuple(k for k in SCOPE_KEYS if k != "args")
    if not isinstance(raw, dict) or set(raw) - set(keys):
        raise BadInput(f"behaviours.yaml: {where}: a scope is a mapping of {keys}")
    models = raw.get("models")
    if models is not None and (not isinstance(models, dict) or set(models) - set(MODEL_KEYS)):
        raise BadInput(f"behaviours.yaml: {where}: a models scope is a mapping of {MODEL_KEYS}")
    if "args" in raw and not isinstance(raw["args"], dict):
        raise BadInput(f"behaviours.yaml: {where}: args maps a check's argument to its value")
    for key in ("stream", "negative"):
        if key in raw and not isinstance(raw[key], bool):
            raise BadInput(f"behaviours.yaml: {where}: scope {key} is true or false")
    sets = {key: frozenset(_tuple(raw[key], f"{where} scope {key}")) if key in raw else None
            for key in ("routes", "surfaces", "model_types", "auth")}
    return Scope(**sets, stream=raw.get("stream"), negative=raw.get("negative"), models=models,
                 args=raw.get("args"))


def _breaks(raw: Any, where: str) -> tuple[tuple[str, Scope | None], ...]:
    """`breaks: [rule, {rule: scope}, ...]`: a rule with a scope of its own breaks only within it."""
    if not isinstance(raw, list) or not raw:
        raise BadInput(f"behaviours.yaml: {where}: breaks is a non-empty list of the rules the deviation breaks")
    out: list[tuple[str, Scope | None]] = []
    for entry in raw:
        if isinstance(entry, str):
            out.append((entry, None))
        elif isinstance(entry, dict) and len(entry) == 1:
            (name, scope), = entry.items()
            out.append((str(name), _scope(scope, f"{where} breaks {name}", rule_scope=True)))
        else:
            raise BadInput(f"behaviours.yaml: {where}: a breaks entry is a rule name or {{rule: scope}}")
    return tuple(out)


def _switch(section: str, name: str, spec: Any) -> Switch:
    where = f"{section}.{name}"
    if not isinstance(spec, dict):
        raise BadInput(f"behaviours.yaml: {where}: a switch is a mapping")
    unknown = set(spec) - SWITCH_KEYS[section]
    if unknown:
        hint = (" (expected cases are derived now: name the rules it breaks, see behaviours.py)"
                if unknown & {"expect_failed", "expect_warned", "expect_drift"} else "")
        raise BadInput(f"behaviours.yaml: {where}: unknown keys {sorted(unknown)}{hint}")
    text = spec.get("rule") if section == "deviations" else spec.get("note")
    if not isinstance(text, str) or not text:
        raise BadInput(f"behaviours.yaml: {where}: needs a {'rule' if section == 'deviations' else 'note'}")
    if section == "deviations":
        return Switch(name, False, text, _breaks(spec.get("breaks"), where), _scope(spec.get("scope"), where))
    keeps = spec.get("keeps_shape", False)
    if not isinstance(keeps, bool):
        raise BadInput(f"behaviours.yaml: {where}: keeps_shape is true or false")
    drifts = None
    if section == "drift":
        drifts = _tuple(spec.get("drifts"), f"{where} drifts")
        if not drifts:
            raise BadInput(f"behaviours.yaml: {where}: drifts names the schemas or rules of the answers it changes")
    return Switch(name, True, text, scope=_scope(spec.get("scope"), where), drifts=drifts, keeps_shape=keeps)


@cache
def switches(path: Path | None = None) -> dict[str, Switch]:
    raw = load_yaml(path or Path(__file__).with_name("behaviours.yaml"))
    out: dict[str, Switch] = {}
    for section in SWITCH_KEYS:
        for name, spec in (raw.get(section) or {}).items():
            out[name] = _switch(section, name, spec)
    return out


def known_rules() -> set[str]:
    """Every name a `breaks` or `drifts` entry may take (a client read path is free: `read:` / `iterate:`)."""
    from conformance.checks import CHECKS
    from conformance.schemas import schema_names
    from conformance.usage_checks import USAGE_CHECKS

    return {*CHECKS, *schema_names(), *PATH_RULES, *USAGE_CHECKS}


def unknown_rules(switch: Switch) -> list[str]:
    names = [*(rule for rule, _ in switch.breaks), *(switch.drifts or ())]
    known = known_rules()
    return [n for n in names if n not in known and not n.startswith(CLIENT_RULE_PREFIXES)]


def deviations() -> list[Switch]:
    return [s for s in switches().values() if not s.conformant]


def variations() -> list[Switch]:
    return [s for s in switches().values() if s.conformant and not s.drifts]


def conformant_switches() -> list[Switch]:
    """Every switch whose answers the suite must pass: the variations and the drift switches (a changed shape
    is drift, never a reason to fail a conformant answer)."""
    return [s for s in switches().values() if s.conformant]


def drift_switches() -> list[Switch]:
    """Switches that change a response's shape (conformantly): the snapshot comparison must show them."""
    return [s for s in switches().values() if s.drifts]


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
