"""Usage tracking cases (conformance/usage_cases/): what requests leave in system.ai_gateway.usage.

They need two moments. First, while nothing else of the run is sending (before the first test, on the process
that owns the run: `begin`), the requests that should leave rows: the documented ai_query statement between two
readings of the warehouse's clock, the tagged requests (one per surface that accepts tags, with tags unique to
the run), the ai_query that must be refused. Then, as late as possible (the usage cases are the run's last tests:
`settle`), the lookups: usage tables are not instant on a live workspace, and the whole run's duration passes
before the first lookup, which then polls within --usage-wait.

A row that is not there is not yet a finding: until the target's stated maximum lag (sql.max_lag_s) has passed
since the request, the case is pending, reported as an error naming `conformance verify-usage RUN_DIR`, which
looks again later from what the run recorded (summary.json `usage_tracking`) and updates its summary and
certificate. A row that is there with other tags is a finding at once. What a case judges, and how strongly, is
conformance/usage_checks.py: every finding carries the strength of its rule in the case, so a broken `must` fails
the case and a broken `should` (the tags of a surface 003 shows no example for, ai_query's refusal) warns.

The ai_query row cannot carry tags, so it is found by time and identity: rows of the statement's window
(event_time, by the warehouse's clock read before and after it) whose requester is the run's own identity
(current_user()), other than the run's tagged rows. Nobody else of the run sends in that window: the requests
before it (the preflight's) are older than the window's slack (Begin waits for that when they are not yet), and
the tagged requests and the other tests send after its end.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from conformance.casemodel import Case, UsageCase
from conformance.cases import CaseItem, select_models
from conformance.catalog import Model
from conformance.config import Target, features
from conformance.errors import BadInput, InfrastructureError
from conformance.evaluate import evaluate_steps
from conformance.findings import CASE_RULES, RULES, Finding
from conformance.known_valid import validate_known
from conformance.redact import REDACTOR
from conformance.resources import PACKAGE_DIR
from conformance.statements import COLUMN_NOT_FOUND, TABLE_NOT_FOUND, Statement, StatementClient, StatementRefused
from conformance.summary import PENDING
from conformance.usage_checks import (
    USAGE_CHECKS,
    CannotJudge,
    Problem,
    Verdict,
    judge_ai_query_result,
    judge_capture,
    judge_refusal,
    judge_tags,
    judged,
    not_recorded,
    not_run_tagged,
    tags_of,
)
from conformance.vocabulary import surfaces
from conformance.yamlio import load_yaml

__all__ = ["Verdict", "judge_capture", "judge_tags"]  # the judges live in usage_checks.py

USAGE_CASES_DIR = PACKAGE_DIR / "usage_cases"
TAGS_HEADER = "Databricks-Ai-Gateway-Request-Tags"
SUMMARY_KEY = "usage_tracking"  # the run's record in summary.json, read by `conformance verify-usage`
PHASE_FILE = "usage-phase.json"  # the same with the evidence, for xdist workers and the reports
KINDS_READING_TABLE = ("tags", "ai_query_captured")
HINTS = {401: "the token was not accepted", 403: "the token may not use this warehouse or read the usage table",
         404: "no SQL statement API at this URL, or no such warehouse"}
TAG_SENDERS = 8
MODEL_NOT_SERVED = "model not served"  # as the session says it of the other cases (session.MODEL_NOT_SERVED)


# --- case data ------------------------------------------------------------------------------------------------

@cache
def load_usage_data(directory: Path = USAGE_CASES_DIR) -> dict[str, Any]:
    """The one usage case file, validated (schema, then the names it refers to)."""
    path = directory / "usage.yaml"
    data = load_yaml(path)
    errors = validate_known("usage-case-file", data)
    if errors:
        raise BadInput(f"usage case file {path.name} is invalid: {errors[0]}")
    seen: set[str] = set()
    for raw in data["cases"]:
        where = f"{path.name}: case {raw['id']}"
        if raw["id"] in seen:
            raise BadInput(f"{where}: duplicate id")
        seen.add(raw["id"])
        for feature in [*raw["features"], *raw.get("requires", [])]:
            if feature not in features():
                raise BadInput(f"{where}: unknown feature {feature!r}")
        if not any(f.startswith("usage.") for f in raw["features"]):
            raise BadInput(f"{where}: a usage case lists a usage.* feature (the surfaces it needs go in requires)")
        _check_strength_names(raw, where)
        surface = surfaces().get(raw.get("route", ""))
        if raw["kind"] == "tags" and (surface is None or surface.route is None):
            raise BadInput(f"{where}: surface {raw['route']!r} has no route")
        if raw["kind"] != "tags" and raw["statement"] not in data["statements"]:
            raise BadInput(f"{where}: no statement named {raw['statement']!r}")
    return data


def _check_strength_names(raw: dict[str, Any], where: str) -> None:
    """check_strengths names a usage check of the case's kind, or (tags cases) a rule of the tagged request."""
    from conformance.checks import CHECKS

    for name in raw.get("check_strengths") or {}:
        usage = USAGE_CHECKS.get(name)
        if usage is not None and raw["kind"] in usage.kinds:
            continue
        if raw["kind"] == "tags" and (name in CHECKS or name in RULES or name in CASE_RULES):
            continue
        raise BadInput(f"{where}: check_strengths names {name!r}, no check of a {raw['kind']} case")


@cache
def load_usage_cases() -> tuple[UsageCase, ...]:
    return tuple(UsageCase.from_record(raw, "usage.yaml") for raw in load_usage_data()["cases"])


@dataclass(frozen=True)
class UsageItem:
    """One usage test: a case on one model (or none), and why it is skipped on this target, if it is."""

    case: UsageCase
    model: Model | None
    served_model: str | None  # tags: the name the target serves; ai_query: the endpoint name of the statement
    skip: str | None = None

    @property
    def test_id(self) -> str:
        return f"{self.case.id}@{self.model.name}" if self.model else self.case.id

    @property
    def kind(self) -> str:
        return self.case.kind


def usage_case(test_id: str) -> UsageCase:
    """The case of a usage test id (`case@model` or a bare case id)."""
    case_id = test_id.split("@")[0]
    return next(c for c in load_usage_cases() if c.id == case_id)


def expand_usage(target: Target) -> list[UsageItem]:
    items = []
    for case in load_usage_cases():
        missing = [f for f in [*case.features, *case.requires] if not target.claims(f)]
        skip = None
        if missing:
            skip = f"target does not claim feature(s): {', '.join(missing)}"
            if any(f.startswith("usage.") for f in missing) and not target.sql:
                skip += " (a target profile claims them by naming a SQL warehouse: sql: {warehouse_id: ...})"
        elif case.kind == "tags" and target.route(case.route_surface) is None:
            skip = f"target has no route for {case.route_surface}"
        elif case.kind == "tags" and case.route_surface in target.routes_missing:  # the preflight found none
            skip = target.routes_missing[case.route_surface]
        if case.models.none:
            items.append(UsageItem(case, None, None, skip))
            continue
        for model in select_models(case, target):
            if case.kind == "tags" or target.models is not None:  # a profile's own names are the names
                served = target.served_name(model.name)
            else:  # ai_query names Databricks-provided model services as endpoints (003: databricks-gpt-5-4)
                served = model.endpoint_name
            unserved = target.unserved.get(model.name)  # the preflight: the target does not serve it
            reason = skip or (f"{MODEL_NOT_SERVED}: {model.name} ({unserved})" if unserved else None)
            items.append(UsageItem(case, model, served, reason))
    return items


def request_item(item: UsageItem, tags: dict[str, str]) -> CaseItem[Case]:
    """The tagged request of a tags case, as an ordinary case of its route (performed and judged as one)."""
    return CaseItem(item.case.tagged_request({TAGS_HEADER: json.dumps(tags)}), item.model, item.served_model)


# --- time -----------------------------------------------------------------------------------------------------

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


_FRACTION = re.compile(r"\.(\d+)")


def parse_time(text: str) -> datetime:
    """A timestamp as a warehouse writes it (ISO 8601, `T` or space, Z or an offset or none: UTC)."""
    value = text.strip().replace(" ", "T", 1).replace("Z", "+00:00")
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- what cannot be judged -------------------------------------------------------------------------------------

def _statement_problem(statement: Statement, what: str) -> str:
    if statement.form_errors:
        return f"{what}: the statement API answered in an unexpected form: {statement.form_errors[0]}"
    return f"{what}: {statement.state}: {REDACTOR.text(statement.error)}"


def _refusal_text(exc: StatementRefused) -> str:
    hint = HINTS.get(exc.status)
    return f"the SQL statement API answered {exc.message}" + (f" ({hint})" if hint else "")


# --- begin: the requests that leave rows ------------------------------------------------------------------------

class Begin:
    """Runs the usage cases' requests once per run; `record` is what later lookups and verify-usage need."""

    def __init__(self, target: Target, runtime: Any, say: Callable[[str], None], quiet_since: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self.runtime = runtime
        self.say = say
        self.quiet_since = quiet_since  # time.monotonic() of the run's last request before these (the preflight's)
        self.sleep = sleep
        self.data = load_usage_data()
        self.queries = self.data["table"]["queries"]
        sql = target.sql or {}
        self.record: dict[str, Any] = {
            "table": self.data["table"]["name"], "warehouse_id": sql.get("warehouse_id"),
            "max_lag_s": float(sql.get("max_lag_s", self.data["table"]["default_max_lag_s"])),
            "clock_slack_s": float(self.data["table"]["clock_slack_s"]),
            "run_tag": f"conformance-{utc_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
            "requester": None, "since": None, "problem": None, "table_problem": None, "ai_query": None, "cases": {},
        }
        self.evidence: dict[str, list[Any]] = {}

    def run(self, items: list[UsageItem]) -> dict[str, Any]:
        items = [i for i in items if i.skip is None]
        if not items:
            return self.record
        client = StatementClient(self.target, self.record["warehouse_id"], self.runtime.retry,
                                 auth_headers=self.runtime.client.auth_headers("default"), http=self.runtime.client)
        try:
            self._run(items, client)
        finally:
            client.close()
        return self.record

    def _decide(self, item: UsageItem, verdict: Verdict, **extra: Any) -> None:
        self.record["cases"][item.test_id] = {"kind": item.kind, **verdict.as_record(), **extra}

    def _execute(self, client: StatementClient, sql: str, params: dict[str, Any] | None, evidence: str,
                 ) -> Statement:
        statement = client.execute(sql, params)
        self.evidence.setdefault(evidence, []).extend(statement.exchanges)
        return statement

    def _run(self, items: list[UsageItem], client: StatementClient) -> None:
        by_kind: dict[str, list[UsageItem]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item)
        problem = None
        try:  # the warehouse, the API and the table, before anything costs tokens
            if any(k in by_kind for k in KINDS_READING_TABLE):
                table = self._execute(client, self.queries["table_exists"], None, "probe")
                if not table.succeeded:
                    self.record["table_problem"] = _statement_problem(table, f"{self.record['table']} cannot be read")
                    self.say(f"usage: {self.record['table_problem']}")
            identity = self._execute(client, self.queries["identity"], None, "probe")
            if identity.succeeded and identity.records():
                self.record["requester"] = identity.records()[0].get("requester")
                since = parse_time(identity.records()[0].get("now") or "")
                self.record["since"] = iso(since - timedelta(seconds=self.record["clock_slack_s"]))
            else:
                problem = _statement_problem(identity, f"the warehouse could not run {self.queries['identity']!r}")
        except StatementRefused as exc:
            problem = _refusal_text(exc)
        except (InfrastructureError, ValueError) as exc:
            problem = f"the SQL warehouse could not be used: {exc}"
        if problem:
            self.record["problem"] = REDACTOR.text(f"{problem} (warehouse {self.record['warehouse_id']})")
            self.say(f"usage: {self.record['problem']}; the usage cases are not run")
            for item in items:
                self._decide(item, Verdict("error", self.record["problem"]))
            return
        ai_query = by_kind.get("ai_query_result", []) + by_kind.get("ai_query_captured", [])
        if ai_query:
            if "ai_query_captured" in by_kind:
                since = self._quiet(client, since)
            self._ai_query(client, ai_query, since)
        with ThreadPoolExecutor(2, thread_name_prefix="usage") as pool:  # after the window: side by side
            refusals = [pool.submit(self._refused, client, item) for item in by_kind.get("ai_query_refused", [])]
            self._tags(by_kind.get("tags", []))
            for refusal in refusals:
                refusal.result()

    def _quiet(self, client: StatementClient, since: datetime) -> datetime:
        """ai_query's window opens clock_slack_s before the warehouse's clock `since`: a request of the run made
        less than that before (the preflight's, a moment ago) would fall in it and pass for ai_query's. Wait it
        out, then read the clock again (seconds at most; usually the collection of the tests took longer)."""
        if self.quiet_since is None:
            return since
        left = self.quiet_since + self.record["clock_slack_s"] - time.monotonic()
        if left <= 0:
            return since
        self.sleep(left + 0.05)
        try:
            clock = self._execute(client, self.queries["clock"], None, "probe")
        except (StatementRefused, InfrastructureError):
            return since + timedelta(seconds=left + 0.05)
        records = clock.records() if clock.succeeded else []
        return parse_time(records[0].get("now") or "") if records else since + timedelta(seconds=left + 0.05)

    def _ai_query(self, client: StatementClient, items: list[UsageItem], since: datetime) -> None:
        endpoint = items[0].served_model
        sql = self.data["statements"][items[0].case.statement].replace("{endpoint}", endpoint or "")
        if self.runtime.budget.exhausted():
            for item in items:
                self._decide(item, Verdict("skipped", f"token budget of {self.runtime.budget.limit} spent"))
            return
        try:
            statement, problems, until = self._documented_statement(client, sql)
        except InfrastructureError as exc:
            for item in items:
                self._decide(item, Verdict("error", REDACTOR.text(f"infrastructure: {exc}")))
            return
        # the request was made when the statement succeeded, whatever its answer is worth: capture is judged apart
        succeeded = statement is not None and statement.state == "SUCCEEDED"
        ran = succeeded and until is not None
        self.record["ai_query"] = {"endpoint": endpoint, "since": iso(since), "until": iso(until) if until else None,
                                   "ran": ran, "sent_at": iso(utc_now()), "usage": None}
        spent = None
        if ran:  # on a table without lag the row is there already; else the lookup at the end accounts for it
            spent = ai_query_tokens(client, self.record, self.queries)
            if spent:
                self.record["ai_query"]["usage"] = spent
                self.runtime.budget.spend(spent["prompt"] + spent["completion"])
        for item in items:
            if item.kind == "ai_query_result":
                self._decide(item, judged(item.case, problems, spent))
            else:
                self._decide_capture(item, ran, unclocked=succeeded and until is None)

    def _documented_statement(self, client: StatementClient, sql: str,
                              ) -> tuple[Statement | None, list[Problem], datetime | None]:
        """The documented ai_query statement's answer (None: refused as a request), what is wrong with it, and the
        warehouse's clock read right after it, which closes its window (None: unread, no window to look in)."""
        try:
            statement = self._execute(client, sql, None, "ai_query")
        except StatementRefused as exc:
            return None, [("ai_query_answers", f"the documented statement was refused: {_refusal_text(exc)}")], None
        problems = judge_ai_query_result(statement)
        try:
            clock = self._execute(client, self.queries["clock"], None, "ai_query")
            if clock.succeeded and clock.records():
                return statement, problems, parse_time(clock.records()[0].get("now") or "")
        except (StatementRefused, InfrastructureError, ValueError):
            pass
        return statement, problems, None

    def _decide_capture(self, item: UsageItem, ran: bool, unclocked: bool) -> None:
        """ai_query_captured once the statement ran: pending its row, or why there is nothing to look for."""
        if self.record["table_problem"]:
            self._decide(item, Verdict("error", self.record["table_problem"]))
        elif ran:
            self._decide(item, Verdict("pending"), sent_at=self.record["ai_query"]["sent_at"])
        elif unclocked:
            self._decide(item, Verdict("error", "the warehouse's clock could not be read after the ai_query "
                                                "statement: no window to look in"))
        else:
            self._decide(item, Verdict("skipped", "the documented ai_query statement did not succeed "
                                                  "(usage-ai-query-result): there is no request to look for"))

    def _tags(self, items: list[UsageItem]) -> None:
        if not items:
            return
        if self.record["table_problem"]:  # nothing could be looked up: do not spend the tokens
            for item in items:
                self._decide(item, Verdict("error", self.record["table_problem"]))
            return
        first, second = self.data["run_tags"]

        def send(item: UsageItem) -> tuple[UsageItem, dict[str, str], Verdict, str]:
            tags = {first: self.record["run_tag"], second: item.test_id, **item.case.tags}
            case_item = request_item(item, tags)
            sent_at = iso(utc_now())
            performed = self.runtime.perform_case(case_item)
            if performed.skip:
                return item, tags, Verdict("skipped", performed.skip), sent_at
            if performed.infra:
                return item, tags, Verdict("error", performed.infra), sent_at
            exchange = performed.exchange
            self.evidence[item.test_id] = [_exchange_evidence(exchange)]
            usage = {"prompt": performed.usage[0], "completion": performed.usage[1]} if performed.usage else None
            findings = [Finding(f.check, f.strength, f"the tagged request: {f.message}")
                        for f in evaluate_steps(case_item, exchange)]
            if findings:  # judged as the ordinary case it is; its row is not looked for
                return item, tags, judged(item.case, findings, usage), sent_at
            return item, tags, Verdict("pending", usage=usage), sent_at

        with ThreadPoolExecutor(min(TAG_SENDERS, len(items)), thread_name_prefix="usage-tags") as pool:
            for item, tags, verdict, sent_at in pool.map(send, items):
                self._decide(item, verdict, tags=tags, sent_at=sent_at)

    def _refused(self, client: StatementClient, item: UsageItem) -> None:
        custom = (self.target.sql or {}).get("custom_model_service") or self.data["custom_model_default"]
        sql = self.data["statements"][item.case.statement].replace("{custom_model}", custom)
        try:
            statement = self._execute(client, sql, None, item.test_id)
        except StatementRefused as exc:  # refused as a request (HTTP 4xx): a refusal too
            self._decide(item, judged(item.case, [], message=f"refused: {exc.message}"))
            return
        except InfrastructureError as exc:
            self._decide(item, Verdict("error", REDACTOR.text(f"infrastructure: {exc}")))
            return
        self._decide(item, judged(item.case, judge_refusal(statement, custom),
                                  message=REDACTOR.text(f"refused: {statement.error}")))


def _exchange_evidence(exchange: Any) -> dict[str, Any]:
    from conformance.client import shorten

    return REDACTOR.value({"request": {"method": exchange.method, "url": exchange.url,
                                       "headers": REDACTOR.headers(exchange.request_headers),
                                       "body": shorten(exchange.request_body, 2000)},
                           "response": {"status": exchange.status, "body": exchange.text[:20_000]}})


# --- settle: the lookups ----------------------------------------------------------------------------------------

def _window(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The ai_query statement's window. It opens a little early (the gateway's clock is another machine's, and
    nothing of the run sends before it), and closes when the warehouse's clock was read after the statement:
    right after it, the tagged requests and then the other tests send."""
    window = record["ai_query"]
    slack = timedelta(seconds=record["clock_slack_s"])
    return {"since": (iso(parse_time(window["since"]) - slack), "TIMESTAMP"),
            "until": (iso(parse_time(window["until"])), "TIMESTAMP")}


def _since(record: dict[str, Any]) -> str:
    """When the run's requests began, by the warehouse's clock (else the run's own, less an hour of slack)."""
    if record.get("since"):
        return str(record["since"])
    sent = [parse_time(c["sent_at"]) for c in record["cases"].values() if c.get("sent_at")]
    return iso(min(sent) - timedelta(hours=1))


def ai_query_tokens(client: StatementClient, record: dict[str, Any], queries: dict[str, str]
                    ) -> dict[str, int] | None:
    """What the ai_query request spent, from its row (the statement API reports no tokens): accounting only,
    so a table without these columns loses the figure, not the verdict."""
    run_key = load_usage_data()["run_tags"][0]
    try:
        statement = client.execute(queries["window_tokens"],
                                   {**_window(record), "requester": record["requester"]})
    except (StatementRefused, InfrastructureError):
        return None
    if not statement.succeeded:
        return None
    prompt = completion = 0
    found = False
    for row in statement.records():
        if not_run_tagged(tags_of(row.get("request_tags")), record, run_key):
            try:
                prompt += int(row.get("input_tokens") or 0)
                completion += int(row.get("output_tokens") or 0)
            except ValueError:
                return None
            found = True
    return {"prompt": prompt, "completion": completion} if found else None


def _rows(record: dict[str, Any], client: StatementClient, queries: dict[str, str], kinds: set[str],
          ) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
    """One lookup of what the pending kinds wait for: the request_tags of the run's tagged rows, and the rows of
    ai_query's window (each empty when no pending case waits for it)."""
    tag_rows: list[dict[str, Any] | None] = []
    if "tags" in kinds:
        rows = client.execute(queries["run_rows"], {"run": record["run_tag"], "since": (_since(record), "TIMESTAMP")})
        if not rows.succeeded:
            raise _TableTrouble(rows, record["table"], ())
        tag_rows = [tags_of(r.get("request_tags")) for r in rows.records()]
    window_rows: list[dict[str, Any]] = []
    if "ai_query_captured" in kinds:
        window = client.execute(queries["window_rows"], {**_window(record), "requester": record["requester"]})
        if not window.succeeded:
            raise _TableTrouble(window, record["table"], ("event_time", "requester"))
        window_rows = window.records()
    return tag_rows, window_rows


def settle(record: dict[str, Any], client: StatementClient, wait_s: float, only: set[str] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Verdict]:
    """Look the pending cases up, polling for at most wait_s; every pending case gets a verdict (still-pending
    ones an error that says so)."""
    data = load_usage_data()
    run_key, case_key = data["run_tags"]
    queries = data["table"]["queries"]
    pending = {tid: c for tid, c in record["cases"].items()
               if c["outcome"] == "pending" and (only is None or tid in only)}
    verdicts: dict[str, Verdict] = {}
    started = time.monotonic()
    pause = 1.0
    while pending:
        try:
            tag_rows, window_rows = _rows(record, client, queries, {c["kind"] for c in pending.values()})
        except (_TableTrouble, StatementRefused, InfrastructureError) as exc:
            reason = exc.reason if isinstance(exc, _TableTrouble) else (
                _refusal_text(exc) if isinstance(exc, StatementRefused) else f"infrastructure: {exc}")
            for tid in pending:
                verdicts[tid] = Verdict("error", REDACTOR.text(f"reading {record['table']}: {reason}"))
            return verdicts
        now = utc_now()
        for tid, case in list(pending.items()):
            elapsed = (now - parse_time(case["sent_at"])).total_seconds()
            try:
                if case["kind"] == "tags":
                    problems = judge_tags(tid, case["tags"], tag_rows, record, case_key)
                else:
                    problems = judge_capture(window_rows, record, run_key, elapsed)
            except CannotJudge as exc:
                verdicts[tid] = Verdict("error", str(exc), case.get("usage"))
                del pending[tid]
                continue
            if problems is None and elapsed >= record["max_lag_s"]:
                problems = [not_recorded(case["kind"], record, elapsed)]
            if problems is None:
                continue
            verdict = judged(usage_case(tid), problems, case.get("usage"))
            if case["kind"] == "ai_query_captured" and verdict.outcome == "passed" and not (
                    record["ai_query"].get("usage")):  # ai_query's tokens, now that its row is there
                record["ai_query"]["usage"] = verdict.usage = ai_query_tokens(client, record, queries)
            verdicts[tid] = verdict
            del pending[tid]
            record["cases"][tid].update(verdict.as_record())  # final: verify-usage has nothing to look for
        waited = time.monotonic() - started
        if not pending or waited + pause > wait_s:
            break
        sleep(pause)
        pause = min(10.0, pause * 2)
    waited = time.monotonic() - started
    for tid, case in pending.items():
        verdicts[tid] = Verdict("error", (
            f"{PENDING}no row of {record['table']} for this request yet (waited {waited:.0f}s; rows may take up to "
            f"{record['max_lag_s']:.0f}s to appear): re-check later with `conformance verify-usage RUN_DIR`"),
            case.get("usage"))
    return verdicts


class _TableTrouble(Exception):
    def __init__(self, statement: Statement, table: str, columns: tuple[str, ...]) -> None:
        if statement.failed_with(TABLE_NOT_FOUND):
            reason = f"the table is missing: {statement.error}"
        elif statement.failed_with(COLUMN_NOT_FOUND):
            reason = (f"a column the check reads ({', '.join(('request_tags', *columns))}, from Databricks' "
                      f"published schema) is missing: {statement.error}")
        else:
            reason = _statement_problem(statement, "the lookup failed")
        super().__init__(reason)
        self.reason = reason


# --- after the run ----------------------------------------------------------------------------------------------

def verdict_of(record: dict[str, Any], test_id: str, settled: dict[str, Verdict]) -> Verdict:
    """A usage test's verdict: settled by a lookup, or decided when its requests were made."""
    if test_id in settled:
        return settled[test_id]
    case = record["cases"].get(test_id)
    if case is None:
        return Verdict("error", record.get("problem") or "the usage phase did not run this case")
    return Verdict.from_record(case)


def verify_usage(run_dir: Path, target: Target, wait_s: float, say: Callable[[str], None] = print,
                 ) -> dict[str, Any]:
    """`conformance verify-usage`: look again for the rows a finished run's pending cases wait for, and update
    its summary.json (records, totals); the caller re-renders the reports."""
    from conformance.certify import case_name
    from conformance.reporting import load_run
    from conformance.summary import write_json

    summary = load_run(run_dir)
    record = summary.get(SUMMARY_KEY)
    if not record or not record.get("cases"):
        raise BadInput(f"{run_dir}: the run recorded no usage-tracking cases (summary.json has no {SUMMARY_KEY})")
    waiting = {case_name(r) for r in summary["cases"] if r["outcome"] == "error"} & {
        tid for tid, c in record["cases"].items() if c.get("sent_at") and c["outcome"] == "pending"}
    if not waiting:
        say(f"verify-usage: no usage case of {run_dir} is pending")
        return summary
    client = StatementClient(target, record["warehouse_id"])
    try:
        verdicts = settle(record, client, wait_s, only=waiting)
    finally:
        client.close()
    for case in summary["cases"]:
        verdict = verdicts.get(case_name(case))
        if verdict is None:
            continue
        verdict = verdict.with_strict(bool(summary.get("strict")))  # the run's own --strict
        say(f"verify-usage: {case_name(case)}: {case['outcome']} -> {verdict.outcome}"
            + (f" ({verdict.message.splitlines()[0][:160]})" if verdict.outcome != "passed" else ""))
        case.update(outcome=verdict.outcome, message=verdict.message,
                    findings=[f.as_dict() for f in verdict.findings])
        if verdict.usage:
            case["usage"] = verdict.usage
    record["verified_at"] = iso(utc_now())
    refresh_totals(summary)
    write_json(run_dir / "summary.json", summary)
    return summary


def refresh_totals(summary: dict[str, Any]) -> None:
    """totals, failures and warnings by strength and tokens recomputed from the records, by the collector's
    own rules."""
    from conformance.summary import SummaryCollector

    collector = SummaryCollector(strict=bool(summary.get("strict")))
    collector.cases = {str(i): record for i, record in enumerate(summary["cases"])}
    summary["totals"] = collector.totals()
    summary["failures_by_strength"] = collector.failures_by_strength()
    summary["warnings_by_strength"] = collector.warnings_by_strength()
    summary["tokens"] = collector.tokens()
