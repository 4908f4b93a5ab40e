"""The usage checks: what a usage case judges, each registered with its strength and the reason for it.

They judge what the SQL warehouse returned (a statement's answer, the rows of a lookup), not an HTTP exchange of
a model service, so they have a registry of their own beside conformance/checks/; the strengths follow the same
rules (must: a documented example or a stated rule; should: described or implied; advisory: ours) and a usage
case may override a check's strength for itself (`check_strengths`, with a reason), as any case does. A judge
returns problems, (check, message) pairs; `judged()` turns them into findings with the case's strengths and
into the case's outcome (conformance/findings.py: a broken must fails, a broken should or advisory warns).

Only the answers to the statements the spec documents (ai_query) are judged as answers; the suite's own lookups
(the identity, the clock, the rows of the run) are a means: when one cannot be read, the case is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.findings import STRENGTHS, WARNING_STRENGTHS, Finding, ordered, outcome_of
from conformance.findings import strength_of as rule_strength_of
from conformance.redact import REDACTOR
from conformance.statements import Statement

Problem = tuple[str, str]  # (check, message)


@dataclass(frozen=True)
class UsageCheck:
    name: str
    spec: str
    strength: str  # the default strength of its findings (a usage case may override it)
    reason: str  # why, in the spec's own words ("..." quotes them verbatim)
    kinds: tuple[str, ...]  # the usage case kinds it judges


USAGE_CHECKS: dict[str, UsageCheck] = {}


def usage_check(name: str, spec: str, *, strength: str, reason: str, kinds: tuple[str, ...]) -> UsageCheck:
    """Register a usage check, by the rules of checks.base.check (a rule of our own is advisory)."""
    if strength not in STRENGTHS:
        raise ValueError(f"usage check {name!r}: strength {strength!r} is not one of {STRENGTHS}")
    if spec.startswith("ours") and strength != "advisory":
        raise ValueError(f"usage check {name!r}: a rule of our own (spec 'ours: ...') is advisory")
    if name in USAGE_CHECKS:
        raise ValueError(f"usage check {name!r} registered twice")
    USAGE_CHECKS[name] = UsageCheck(name, spec, strength, reason, kinds)
    return USAGE_CHECKS[name]


usage_check(
    "usage_tags_recorded", "003 Tag requests for usage tracking", strength="must", kinds=("tags",),
    reason='a stated rule: "Request tags are logged to the request_tags column in both the usage tracking system '
           'table and inference tables"; the row of a tagged request carries every tag it sent, with its value '
           "(tags of the gateway's own beside them are allowed)")
usage_check(
    "ai_query_answers", "003 Query model services with ai_query", strength="must", kinds=("ai_query_result",),
    reason="a documented example: the ai_query statement of 003 (\"'Summarize the following text: ' || "
           'text_column\") answers one summary per input row')
usage_check(
    "ai_query_captured", "003 Query model services with ai_query", strength="must", kinds=("ai_query_captured",),
    reason='a stated rule: "Requests made through ai_query to Azure Databricks-provided model services are '
           'captured in the usage tracking system table (system.ai_gateway.usage)"')
usage_check(
    "ai_query_refused", "003 Query model services with ai_query: Note", strength="should",
    kinds=("ai_query_refused",),
    reason='implied: "Model services that you create in Unity AI Gateway are not yet supported" says they do not '
           "work with ai_query, not how a call is answered; refused by the API (HTTP 4xx) or as a FAILED "
           "statement are both refusals")
usage_check(
    "sql.statement_response", "Databricks SQL Statement Execution API (schemas/sql.statement_response.schema.json)",
    strength="should", kinds=("ai_query_result", "ai_query_refused"),
    reason='implied: 003 runs ai_query "directly from SQL or Python"; a target that claims the usage features '
           "answers SQL through Databricks' SQL Statement Execution API, whose form (statement_id, status.state, "
           "manifest, result.data_array, as databricks-sdk reads it) the spec itself does not describe; an answer "
           "out of that form that can still be read is warned, one that cannot breaks the documented example")


def strength_of(case: Any, check: str) -> str:
    """The strength of a rule in a usage case: the case's override, else the usage check's default, else the
    judging path's (the tagged request is judged as an ordinary case)."""
    override = case.check_strengths.get(check)
    if override:
        return override.strength
    if check in USAGE_CHECKS:
        return USAGE_CHECKS[check].strength
    return rule_strength_of(case, check)


# --- a usage case's verdict ----------------------------------------------------------------------------------

@dataclass
class Verdict:
    outcome: str  # passed | failed | warned | error | skipped | pending (an error until verify-usage decides)
    message: str = ""
    usage: dict[str, int] | None = None
    findings: list[Finding] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "message": self.message,
                "findings": [f.as_dict() for f in self.findings], **({"usage": self.usage} if self.usage else {})}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Verdict:
        return cls(record["outcome"], record.get("message", ""), record.get("usage"),
                   [Finding.from_dict(f) for f in record.get("findings") or []])

    def with_strict(self, strict: bool) -> Verdict:
        """--strict: a warning counts as a failure (the summary records it so)."""
        if strict and self.outcome == "warned":
            return Verdict("failed", self.message, self.usage, self.findings)
        return self


def judged(case: Any, problems: Iterable[Problem] | Iterable[Finding], usage: dict[str, int] | None = None,
           message: str = "") -> Verdict:
    """The verdict of a judged usage case: its findings (most specific first) with the case's strengths, and
    the outcome they amount to; `message` is kept for a passed case (what the refusal said, say)."""
    findings = ordered(p if isinstance(p, Finding) else Finding(p[0], strength_of(case, p[0]), REDACTOR.text(p[1]))
                       for p in problems)
    outcome = outcome_of(findings)
    if findings:
        first = findings[0] if outcome == "failed" else next(f for f in findings if f.strength in WARNING_STRENGTHS)
        message = first.text()
    return Verdict(outcome, message, usage, findings)


class CannotJudge(Exception):
    """What the table shows cannot decide the case (an error with the reason, never a verdict)."""


# --- the judges --------------------------------------------------------------------------------------------

def tags_of(value: Any) -> dict[str, Any] | None:
    """request_tags as a statement returns a MAP: a JSON object in a string (JSON_ARRAY's form), or the object
    itself (a warehouse answering typed values); None when the row has none."""
    if value is None:
        return None
    try:
        tags = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {"<not a JSON map>": value}
    return tags if isinstance(tags, dict) else {"<not a JSON map>": value}


def not_run_tagged(tags: dict[str, Any] | None, record: dict[str, Any], run_key: str) -> bool:
    return not tags or tags.get(run_key) != record["run_tag"]


def judge_tags(test_id: str, sent: dict[str, str], rows: list[dict[str, Any] | None], record: dict[str, Any],
               case_key: str) -> list[Problem] | None:
    """usage_tags_recorded on one tagged request's rows (the request_tags of the run's rows): [] when they
    carry what was sent, None while the row may still appear."""
    mine = [r for r in rows if r and r.get(case_key) == test_id]
    if mine:
        for row in mine:
            wrong = {k: v for k, v in sent.items() if row.get(k) != v}
            if wrong:
                changes = ", ".join(f"{k}={v!r} (recorded {row.get(k)!r})" if k in row else f"{k}={v!r} (missing)"
                                    for k, v in wrong.items())
                return [("usage_tags_recorded", f"$.request_tags of the usage row of this request does not carry "
                                                f"the tags sent: {changes}; recorded {json.dumps(row)[:300]}")]
        return []
    sent_keys = {c["tags"][case_key] for c in record["cases"].values() if c.get("tags")}
    strays = [r for r in rows if r and r.get(case_key) not in sent_keys]
    if strays:
        return [("usage_tags_recorded", f"no usage row carries {case_key}={test_id!r}; rows of this run were "
                                        f"recorded with other tags: {json.dumps(strays[:3])[:300]}")]
    return None


def judge_capture(rows: list[dict[str, Any]], record: dict[str, Any], run_key: str, elapsed: float,
                  ) -> list[Problem] | None:
    """ai_query_captured: a row of the run's identity in the statement's window, other than the run's tagged
    rows ([] when there is one, None while it may still appear). Rows of the window attributed to others only,
    once the lag is over, cannot tell (CannotJudge)."""
    rows = [r for r in rows if not_run_tagged(tags_of(r.get("request_tags")), record, run_key)]
    if any(r.get("requester") == record["requester"] for r in rows):
        return []
    if rows and elapsed >= record["max_lag_s"]:
        others = sorted({str(r.get("requester")) for r in rows})[:3]
        raise CannotJudge(REDACTOR.text(
            f"rows of the ai_query statement's window are attributed to {others}, none to the run's identity "
            f"{record['requester']!r} (current_user()): cannot tell whether ai_query's request was captured"))
    return None


def not_recorded(kind: str, record: dict[str, Any], elapsed: float) -> Problem:
    """The row still missing once the target's stated lag is over."""
    lag = f"{elapsed:.0f}s after it (the target's usage table lags at most {record['max_lag_s']:.0f}s)"
    if kind == "tags":
        return ("usage_tags_recorded", f"no row of {record['table']} carries the tags of this request {lag}")
    window = record["ai_query"]
    return ("ai_query_captured", f"no row of {record['table']} falls in the ai_query statement's window "
                                 f"({window['since']} to {window['until']}) {lag}")


def form_problems(statement: Statement) -> list[Problem]:
    return [("sql.statement_response", error) for error in statement.form_errors[:3]]


def judge_ai_query_result(statement: Statement) -> list[Problem]:
    """003's documented ai_query on a one-row input: SUCCEEDED, one row, a non-empty string (JSON_ARRAY gives
    every value as a string; a warehouse answering typed values gives a string column as one too)."""
    problems = form_problems(statement)
    if statement.state is None:
        return [*problems, ("ai_query_answers", "the answer to the documented statement cannot be read: "
                                                + (statement.form_errors or ["no status.state"])[0])]
    if statement.state != "SUCCEEDED":
        return [*problems, ("ai_query_answers", f"the documented statement ended {statement.state}: "
                                                f"{statement.error}")]
    if not statement.succeeded:
        return [*problems, ("ai_query_answers", "the documented statement SUCCEEDED, but its result cannot be "
                                                "read (manifest.schema.columns, result.data_array)")]
    rows = statement.rows
    if len(rows) != 1:
        return [*problems, ("ai_query_answers", f"one input row gave {len(rows)} result rows: {str(rows)[:200]}")]
    value = rows[0][0] if isinstance(rows[0], list) and rows[0] else None
    if not isinstance(value, str) or not value.strip():
        return [*problems, ("ai_query_answers", f"the summary is empty: $.result.data_array[0][0] = {value!r}")]
    return problems


def judge_refusal(statement: Statement, custom: str) -> list[Problem]:
    """ai_query_refused on a statement the API took: FAILED is the refusal (HTTP 4xx is the other, judged
    where it is caught); an answer is not."""
    problems = form_problems(statement)
    if statement.state == "FAILED":
        return problems
    if statement.state == "SUCCEEDED":
        return [*problems, ("ai_query_refused", f"ai_query on {custom!r}, a model service that is not "
                                                f"Databricks-provided, was answered: {str(statement.rows)[:300]}")]
    return [*problems, ("ai_query_refused", f"unexpected answer: {statement.state}: {statement.error}")]

