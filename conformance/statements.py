"""A client of the Databricks SQL Statement Execution API, as databricks-sdk's `statement_execution` calls it.

POST /api/2.0/sql/statements {statement, warehouse_id, parameters, wait_timeout, format JSON_ARRAY, disposition
INLINE}; while status.state is PENDING or RUNNING, GET /api/2.0/sql/statements/{statement_id} until it is not,
within a deadline. The usage features read system.ai_gateway.usage through it, with the run's own token.

Every attempt is one bounded exchange of the suite's own client (conformance/client.py, bounds.py: deadline,
body cap, capped decoding, strict UTF-8, JSON depth, no redirect), retried as every request of the suite is.
Three kinds of trouble are kept apart, because they mean different things to a verdict:
- StatementRefused: the API answered the request with an HTTP 4xx (404 no such API or warehouse, 403 not
  allowed, 400 a request it does not take): the usage cases cannot run, one line says why;
- InfrastructureError: no answer (timeouts, resets, 429/502/503/504 after retries, a statement still running at
  the deadline), as for any request of the suite;
- an answer: a statement that ran (SUCCEEDED, or FAILED with status.error), judged by the caller; an answer that
  breaks a transport rule (a redirect, a body over the cap, not UTF-8) or a 5xx on every attempt (501 at once)
  is an answer out of form, with that as its form error.

An answer that breaks the API's form (schemas/sql.statement_response.schema.json) keeps its `form_errors`; it is
still used when its result can be read (`succeeded`: SUCCEEDED, named columns, rows that are lists), since the
values and the fields beyond those are the warehouse's business (conformance/usage_checks.py judges the form of
the documented statements' answers as a `should`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from conformance.bounds import Bound, loads
from conformance.client import NOT_IMPLEMENTED, TRANSIENT_STATUS, Answer, GatewayClient, RetryPolicy, Unanswered
from conformance.config import Target
from conformance.errors import InfrastructureError
from conformance.redact import REDACTOR
from conformance.schemas import validate

STATEMENTS_PATH = "/api/2.0/sql/statements"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"})
POLL_S = (0.5, 5.0)  # first and longest pause between GETs of a running statement
TABLE_NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "42P01")
COLUMN_NOT_FOUND = ("UNRESOLVED_COLUMN", "42703")


def _obj(value: Any) -> dict[str, Any]:
    """A member of an answer that should be an object (an answer out of form must not crash its reader)."""
    return value if isinstance(value, dict) else {}


class StatementRefused(Exception):
    """The API answered HTTP 4xx: the statement was not taken at all."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Statement:
    """A statement and what became of it; `exchanges` is the evidence (every POST and GET, redacted)."""

    sql: str
    parameters: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)
    form_errors: list[str] = field(default_factory=list)  # the answer breaks the API's published form
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return _obj(self.response.get("status")).get("state")

    @property
    def succeeded(self) -> bool:
        """SUCCEEDED with a result that can be read, whatever else of the API's form the answer breaks."""
        if self.state != "SUCCEEDED":
            return False
        schema = _obj(self.response.get("manifest")).get("schema")
        columns = schema.get("columns") if isinstance(schema, dict) else None
        data = _obj(self.response.get("result")).get("data_array", [])
        return (isinstance(columns, list) and all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                   for c in columns)
                and isinstance(data, list | None) and all(isinstance(row, list) for row in data or []))

    @property
    def error(self) -> str:
        status = _obj(self.response.get("status"))
        error = _obj(status.get("error"))
        text = error.get("message") or "no error message"
        return f"{error.get('error_code', '')}: {text}".strip(": ") + (
            f" (SQLSTATE {status['sql_state']})" if status.get("sql_state") else "")

    def failed_with(self, kind: tuple[str, str]) -> bool:
        """FAILED with this error class (its name in the message, or its SQLSTATE)."""
        status = _obj(self.response.get("status"))
        return self.state == "FAILED" and (kind[0] in self.error or status.get("sql_state") == kind[1])

    @property
    def columns(self) -> list[str]:
        columns = _obj(_obj(self.response.get("manifest")).get("schema")).get("columns")
        return [str(c.get("name", "")) if isinstance(c, dict) else "" for c in columns or []]

    @property
    def rows(self) -> list[list[Any]]:
        """JSON_ARRAY rows: every value a string or null as Databricks answers, or typed JSON values."""
        data = _obj(self.response.get("result")).get("data_array") or []
        return list(data) if isinstance(data, list) else []

    def records(self) -> list[dict[str, Any]]:
        names = self.columns
        return [dict(zip(names, row, strict=False)) for row in self.rows]


class StatementClient:
    """The target's auth, TLS, timeout and bounds; retries as the suite's other requests. `http`: the run's own
    client (its connection pool), else one of its own."""

    def __init__(self, target: Target, warehouse_id: str, retry: RetryPolicy | None = None,
                 deadline_s: float | None = None, auth_headers: dict[str, str] | None = None,
                 http: GatewayClient | None = None) -> None:
        assert target.url is not None
        self.url = target.url + STATEMENTS_PATH
        self.warehouse_id = warehouse_id
        self.retry = retry or RetryPolicy.for_timeout(target.timeout, 5)
        self.deadline_s = deadline_s or 5 * target.timeout  # a stopped warehouse takes minutes to start
        self.wait_timeout = f"{int(min(50, max(5, target.timeout - 10)))}s"
        self._own = http is None
        self._http = http or GatewayClient(target, self.retry)
        if auth_headers is None:  # the same credentials the model-service requests carry
            auth_headers = self._http.auth_headers("default")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **auth_headers}

    def close(self) -> None:
        if self._own:
            self._http.close()

    def execute(self, sql: str, parameters: dict[str, Any] | None = None) -> Statement:
        """Run one statement to its end. parameters: name -> value, or name -> (value, type)."""
        params = parameters or {}
        body: dict[str, Any] = {"statement": sql, "warehouse_id": self.warehouse_id,
                                "wait_timeout": self.wait_timeout, "on_wait_timeout": "CONTINUE",
                                "format": "JSON_ARRAY", "disposition": "INLINE"}
        if params:
            body["parameters"] = [{"name": k, "value": v[0], "type": v[1]} if isinstance(v, tuple)
                                  else {"name": k, "value": v} for k, v in params.items()]
        statement = Statement(sql, params)
        started = time.monotonic()
        answer = self._send(statement, "POST", self.url, body)
        pause = POLL_S[0]
        while statement.state not in TERMINAL and not statement.form_errors:
            if time.monotonic() - started + pause > self.deadline_s:
                raise InfrastructureError(f"SQL statement {answer.get('statement_id')} still "
                                          f"{answer.get('status', {}).get('state')} after {self.deadline_s:.0f}s")
            time.sleep(pause)
            pause = min(POLL_S[1], pause * 2)
            answer = self._send(statement, "GET", f"{self.url}/{answer['statement_id']}", None)
        return statement

    def _send(self, statement: Statement, method: str, url: str, body: Any) -> dict[str, Any]:
        content = json.dumps(body).encode() if body is not None else None
        started = time.monotonic()
        budget_end = started + self.retry.deadline_s
        cause, stop, made = "no attempt made", "", 0
        server_errors: list[int] = []  # a 5xx other than 501-504 on every attempt: an answer, out of form
        for attempt in range(self.retry.attempts):
            made = attempt + 1
            bound = Bound(self._http.limits, deadline=min(time.monotonic() + self._http.limits.timeout_s, budget_end))
            retry_after = None
            try:
                answer = self._http.request(method, url, headers=self.headers, content=content, bound=bound)
            except Unanswered as exc:
                cause = str(exc)
                server_errors.clear()
            else:
                statement.exchanges.append(REDACTOR.value({
                    "request": {"method": method, "url": url, "body": body},
                    "response": {"status": answer.status, "body": answer.text[:20_000]}}))
                if answer.failure is not None:  # a redirect, a body over the cap, not UTF-8, nested too deep
                    return self._out_of_form(statement, f"[{answer.failure.check}] {answer.failure.message}")
                if answer.status < 300:
                    return self._answer(statement, answer)
                if answer.status == NOT_IMPLEMENTED:
                    return self._out_of_form(statement, f"HTTP 501: {_error_text(answer)}")
                if answer.status < 500 and answer.status not in TRANSIENT_STATUS:
                    raise StatementRefused(answer.status, REDACTOR.text(_error_text(answer)))
                if answer.status not in TRANSIENT_STATUS and len(server_errors) == attempt:
                    server_errors.append(answer.status)
                else:
                    server_errors.clear()
                cause = f"HTTP {answer.status}: {answer.text[:200]}"
                retry_after = answer.headers.get("retry-after")
            plan = self.retry.plan(attempt, retry_after, budget_end - time.monotonic())
            if isinstance(plan, str):
                stop = plan
                break
            time.sleep(plan)
        repeated = self.retry.repeated_server_error(server_errors, made)
        if repeated:
            return self._out_of_form(statement, f"[transport.server-error] {repeated}: {cause}")
        raise InfrastructureError(REDACTOR.text(f"{method} {url}: no answer after {made} attempt(s); "
                                                f"last cause: {cause}{self.retry.why_stopped(stop)}"))

    @staticmethod
    def _out_of_form(statement: Statement, problem: str) -> dict[str, Any]:
        statement.form_errors = [REDACTOR.text(problem)]
        statement.response = {}
        return {}

    @staticmethod
    def _answer(statement: Statement, answer: Answer) -> dict[str, Any]:
        try:
            document = loads(answer.text)
        except ValueError as exc:
            return StatementClient._out_of_form(
                statement, f"the {answer.status} body is not JSON ({exc}): {answer.text[:200]!r}")
        statement.form_errors = validate("sql.statement_response", document)
        statement.response = document if isinstance(document, dict) else {}
        return statement.response


def _error_text(answer: Answer) -> str:
    """`HTTP 404 RESOURCE_DOES_NOT_EXIST: message` from a Databricks error body, or the start of any other."""
    try:
        body = loads(answer.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("error_code")):
        return f"HTTP {answer.status} {body.get('error_code', '')}: {body.get('message', '')}".strip()
    return f"HTTP {answer.status}: {' '.join(answer.text.split())[:200]!r}"
