"""Findings: the rules one answer broke, each with the strength of its rule, and what they amount to.

A finding is (check, strength, message). `check` is a registered check's name or one of the built-in rules of
the judging path (RULES: json, schema, error_body, error_form; CASE_RULES: status, `client` for an official
client's verdict, `multi_turn` for a later step that could not be sent). Its strength is the rule's default
(the check registry's, RULES', or the case's own for CASE_RULES), unless the case overrides it in
`check_strengths`.

The outcome follows from the strongest finding (CONTRACT: outcomes): any `must` finding is `failed`; only
`should` / `advisory` findings are `warned`, which is never non-conformance; `--strict` counts every finding as
a failure. The first finding of a case is its most specific (ordered()), and `group()` folds many cases that
broke the same rule the same way into one root cause: the one grouping summary.md and the console share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.casemodel import CaseBase

STRENGTHS = ("must", "should", "advisory")
WARNING_STRENGTHS = ("should", "advisory")


@dataclass(frozen=True)
class Rule:
    strength: str
    reason: str


# The judging path's own rules (conformance/evaluate.py), with their default strengths.
RULES: dict[str, Rule] = {
    "json": Rule("must", 'the documented response formats are JSON ("The following is an expected response '
                         'format for a request made using the REST API"); a 200 answer that is not JSON, or a '
                         "stream event that is not, breaks them"),
    "schema": Rule("must", 'the documented response formats ("expected response format") and the interfaces the '
                           'spec names ("OpenAI-compatible interfaces", "Provider-specific interfaces"): the '
                           "schema of the surface's answer (a case overrides it where its request is not a "
                           "documented one, as for streams on native APIs)"),
    "error_body": Rule("must", "the errors.json feature a target claims is 'a JSON error body' (features.yaml), "
                               'and every documented request is JSON ("Content-Type: application/json")'),
    # what conformance/bounds.py refuses to read: the answer cannot be the documented JSON response format
    "transport.body-size": Rule("must", "the documented answers are a few hundred KB at most; one larger than "
                                        "--max-body-bytes (or a compressed body inflating past it) cannot be read "
                                        "as the documented response format"),
    "transport.content-encoding": Rule("must", "the suite offers gzip and identity only; a body in another "
                                               "Content-Encoding cannot be read as the documented JSON response"),
    "transport.json-depth": Rule("must", "the documented response formats nest a few levels; JSON nested deeper "
                                         "than 64 is no documented response and is refused unparsed"),
    "transport.utf-8": Rule("must", "the documented responses are JSON (application/json, text/event-stream), "
                                    "which is UTF-8 between systems (RFC 8259 section 8.1)"),
    "error_form": Rule("should", "the spec defines no error body: the Databricks form and the provider's own "
                                 "(data/surfaces.yaml error_schemas) are what clients of each surface read"),
}

# Rules whose finding takes the case's own strength: the expected status is the case's headline rule (its
# preferred_status, if any, has a strength of its own); an official client's call is the case itself; a later
# step that cannot be sent fails the documented multi-turn exchange the case is.
CASE_RULES = {
    "status": "the case's expected status: the case's own rule",
    "client": "an official client's documented call: what the example reads must be there",
    "multi_turn": "a later step sends back a value of an earlier answer, as the documented multi-turn examples do",
    "transport.redirect": "a 3xx instead of the case's expected status (no client follows one to another origin)",
    "transport.server-error": "a 5xx on every attempt instead of the case's expected status",
}


@dataclass(frozen=True)
class Finding:
    check: str
    strength: str
    message: str

    def text(self) -> str:
        return f"[{self.check}] {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "strength": self.strength, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(str(data["check"]), str(data["strength"]), str(data["message"]))


def strength_of(case: CaseBase, check: str) -> str:
    """The strength of a rule in this case: the case's override, else the rule's default."""
    override = case.check_strengths.get(check)
    if override:
        return override.strength
    if check in CASE_RULES:
        return case.strength
    if check in RULES:
        return RULES[check].strength
    from conformance.checks import CHECKS

    return CHECKS[check].strength


def _kind_rank(check: str) -> int:
    """Named checks and the status first, generic structure last (a schema message is rarely the cause)."""
    if check == "status":
        return 0
    if check in ("json", "error_body"):
        return 2
    if check == "error_form":
        return 3
    if check == "schema":
        return 4
    return 1


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most specific first: must before should before advisory, then status and named checks before JSON,
    error-body and schema messages; otherwise in the order they were found (steps in order)."""
    return sorted(findings, key=lambda f: (STRENGTHS.index(f.strength), _kind_rank(f.check)))


def outcome_of(findings: Sequence[Finding], strict: bool = False) -> str:
    if any(f.strength == "must" for f in findings) or (strict and findings):
        return "failed"
    return "warned" if findings else "passed"


def strongest(findings: Iterable[dict[str, Any]]) -> str | None:
    levels = [f["strength"] for f in findings if f.get("strength") in STRENGTHS]
    return min(levels, key=STRENGTHS.index) if levels else None


# --- one root cause, one line ------------------------------------------------------------------------------

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_MODEL = re.compile(r"\b(?:system\.ai\.|databricks-)?(?:claude|gpt|gemini|gemma|llama|bge|gte)[A-Za-z0-9._-]*", re.I)
# prefixed ids (chatcmpl-9x2, resp_abc123, msg_01...), long hex, long tokens with a digit (signatures, base64)
_ID = re.compile(r"\b(?:[A-Za-z]+[-_])+[A-Za-z0-9]*\d[A-Za-z0-9]*\b|\b[0-9a-f]{12,}\b"
                 r"|(?=[A-Za-z0-9+/=_-]*\d)[A-Za-z0-9+/=_-]{24,}")
_STEP = re.compile(r"^\[step \d+\] ")  # the same broken rule in another step of a multi-step case
# the status of "HTTP 400" is the cause, and "4xx" a class: both kept
_NUMBER = re.compile(r"(?<![A-Za-z\d.])(?<!HTTP )\d+(?:\.\d+)?(?![A-Za-z\d])")
# model output quoted in a body excerpt differs from case to case; an error's message does not
_OUTPUT = re.compile(r'"(content|text|thinking|signature|output_text|delta|data|embedding|arguments)"\s*:\s*'
                     r'"(?:[^"\\]|\\.)*(?:"|$)')
KEY_LENGTH = 160  # body excerpts are cut: compare what every case of a root cause has


def normalise(message: str) -> str:
    """A message with what differs between cases of one root cause masked: model names, ids, numbers."""
    text = _STEP.sub("", " ".join(message.split()))
    text = _OUTPUT.sub(lambda m: f'"{m.group(1)}":"<output>"', text)
    for pattern, mask in ((_UUID, "<id>"), (_MODEL, "<model>"), (_ID, "<id>"), (_NUMBER, "N")):
        text = pattern.sub(mask, text)
    return text[:KEY_LENGTH]


@dataclass
class Group:
    """Cases whose first finding (of the outcome's strengths) is one rule broken the same way."""

    check: str
    strength: str
    key: str  # the normalised message
    example: str  # one case's real message, the evidence
    cases: list[str] = field(default_factory=list)

    def line(self, limit: int = 200, names: int = 8) -> str:
        shown = ", ".join(f"`{c}`" for c in self.cases[:names])
        more = f" and {len(self.cases) - names} more" if len(self.cases) > names else ""
        message = self.example if len(self.example) <= limit else self.example[:limit] + "..."
        plural = "s" if len(self.cases) != 1 else ""
        return f"[{self.check}] ({self.strength}) {message} — {len(self.cases)} case{plural}: {shown}{more}"


def _case_name(record: dict[str, Any]) -> str:
    return f"{record['id']}@{record['model']}" if record.get("model") else str(record["id"])


def first_finding(record: dict[str, Any]) -> dict[str, Any] | None:
    """The case's most specific finding that explains its outcome: a must finding for a failed case (or,
    under --strict, its first finding), a should/advisory one for a warned case."""
    findings = [f for f in record.get("findings") or [] if f.get("strength") in STRENGTHS]
    if not findings:
        return None
    found = ordered(Finding.from_dict(f) for f in findings)
    if record.get("outcome") == "warned":
        found = [f for f in found if f.strength in WARNING_STRENGTHS] or found
    return found[0].as_dict()


_NAMED = re.compile(r"^\[([\w.: -]+)\] (.*)$")


def group(records: Iterable[dict[str, Any]], outcome: str) -> list[Group]:
    """summary.json case records of one outcome (failed, warned or error) as root causes, largest first.
    A case counts once, under its first finding; a record without findings (an infrastructure error, a test
    that broke) under its message."""
    groups: dict[tuple[str, str], Group] = {}
    for record in records:
        if record.get("outcome") != outcome:
            continue
        first = first_finding(record)
        if first is None:  # an infrastructure error, a test that broke, or a summary.json of before findings
            lines = (record.get("message") or "").strip().splitlines()
            named = _NAMED.match(_STEP.sub("", lines[0])) if lines else None
            check = named.group(1) if named and outcome != "error" else outcome
            text = named.group(2) if named and outcome != "error" else (lines[0] if lines else "")
            strength = "-" if outcome == "error" else "must" if outcome == "failed" else "should"
        else:
            check, strength, text = first["check"], first["strength"], first["message"]
        key = (check, normalise(text))
        entry = groups.setdefault(key, Group(check, strength, key[1], " ".join(text.split())))
        entry.cases.append(_case_name(record))
    return sorted(groups.values(), key=lambda g: (-len(g.cases), STRENGTHS.index(g.strength)
                                                  if g.strength in STRENGTHS else 3, g.check, g.key))
