"""A client of the Databricks SQL Statement Execution API, as databricks-sdk's `statement_execution` calls it.

POST /api/2.0/sql/statements {statement, warehouse_id, parameters, wait_timeout, format JSON_ARRAY, disposition
INLINE}; while status.state is PENDING or RUNNING, GET /api/2.0/sql/statements/{statement_id} until it is not,
within a deadline. The usage features read system.ai_gateway.usage through it, with the run's own token.

Three kinds of trouble are kept apart, because they mean different things to a verdict:
- StatementRefused: the API answered the request with an HTTP error (404 no such API or warehouse, 403 not
  allowed, 400 a request it does not take): the usage cases cannot run, one line says why;
- InfrastructureError: no answer (timeouts, resets, 429/5xx after retries, a statement still running at the
  deadline), as for any request of the suite;
- a statement that ran and FAILED (status.state FAILED with status.error): an answer, judged by the caller.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx

from conformance.client import TRANSIENT_STATUS, GatewayClient, RetryPolicy, parse_retry_after
from conformance.config import Target
from conformance.errors import InfrastructureError
from conformance.redact import REDACTOR
from conformance.schemas import validate

STATEMENTS_PATH = "/api/2.0/sql/statements"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"})
POLL_S = (0.5, 5.0)  # first and longest pause between GETs of a running statement
TABLE_NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "42P01")
COLUMN_NOT_FOUND = ("UNRESOLVED_COLUMN", "42703")


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
    form_errors: list[str] = field(default_factory=list)  # the answer breaks the API's documented form
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return (self.response.get("status") or {}).get("state")

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED" and not self.form_errors

    @property
    def error(self) -> str:
        status = self.response.get("status") or {}
        error = status.get("error") or {}
        text = error.get("message") or "no error message"
        return f"{error.get('error_code', '')}: {text}".strip(": ") + (
            f" (SQLSTATE {status['sql_state']})" if status.get("sql_state") else "")

    def failed_with(self, kind: tuple[str, str]) -> bool:
        """FAILED with this error class (its name in the message, or its SQLSTATE)."""
        status = self.response.get("status") or {}
        return self.state == "FAILED" and (kind[0] in self.error or status.get("sql_state") == kind[1])

    @property
    def columns(self) -> list[str]:
        schema = (self.response.get("manifest") or {}).get("schema") or {}
        return [c.get("name", "") for c in schema.get("columns") or []]

    @property
    def rows(self) -> list[list[str | None]]:
        return list((self.response.get("result") or {}).get("data_array") or [])

    def records(self) -> list[dict[str, str | None]]:
        names = self.columns
        return [dict(zip(names, row, strict=False)) for row in self.rows]


class StatementClient:
    """One connection pool; the target's auth, TLS and timeout; retries as the suite's other requests."""

    def __init__(self, target: Target, warehouse_id: str, retry: RetryPolicy | None = None,
                 deadline_s: float | None = None, auth_headers: dict[str, str] | None = None) -> None:
        assert target.url is not None
        self.url = target.url + STATEMENTS_PATH
        self.warehouse_id = warehouse_id
        self.retry = retry or RetryPolicy()
        self.deadline_s = deadline_s or 5 * target.timeout  # a stopped warehouse takes minutes to start
        self.wait_timeout = f"{int(min(50, max(5, target.timeout - 10)))}s"
        if auth_headers is None:  # the same credentials the model-service requests carry
            helper = GatewayClient(target, self.retry)
            auth_headers = helper.auth_headers("default")
            helper.close()
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **auth_headers}
        self._http = httpx.Client(verify=_tls(target.verify_tls), timeout=httpx.Timeout(target.timeout),
                                  follow_redirects=False)

    def close(self) -> None:
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
        while answer.get("status", {}).get("state") not in TERMINAL and not statement.form_errors:
            if time.monotonic() - started + pause > self.deadline_s:
                raise InfrastructureError(f"SQL statement {answer.get('statement_id')} still "
                                          f"{answer.get('status', {}).get('state')} after {self.deadline_s:.0f}s")
            time.sleep(pause)
            pause = min(POLL_S[1], pause * 2)
            answer = self._send(statement, "GET", f"{self.url}/{answer['statement_id']}", None)
        return statement

    def _send(self, statement: Statement, method: str, url: str, body: Any) -> dict[str, Any]:
        started = time.monotonic()
        cause = "no attempt made"
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                response = self._http.request(method, url, headers=self.headers,
                                              content=json.dumps(body).encode() if body is not None else None)
            except httpx.TimeoutException as exc:
                cause = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                cause = f"connection error ({type(exc).__name__}: {exc})"
            else:
                statement.exchanges.append(REDACTOR.value({
                    "request": {"method": method, "url": url, "body": body},
                    "response": {"status": response.status_code, "body": response.text[:20_000]}}))
                if response.status_code < 300:
                    return self._answer(statement, response)
                if response.status_code not in TRANSIENT_STATUS and response.status_code < 500:
                    raise StatementRefused(response.status_code, REDACTOR.text(_error_text(response)))
                cause = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt + 1 == self.retry.attempts:
                break
            delay = self.retry.delay(attempt, retry_after)
            if time.monotonic() - started + delay > self.retry.deadline_s:
                break
            time.sleep(delay)
        raise InfrastructureError(REDACTOR.text(f"{method} {url}: no answer after {attempt + 1} attempt(s); "
                                                f"last cause: {cause}"))

    @staticmethod
    def _answer(statement: Statement, response: httpx.Response) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError as exc:
            statement.form_errors = [f"the {response.status_code} body is not JSON ({exc}): {response.text[:200]!r}"]
            return {}
        statement.form_errors = validate("sql.statement_response", answer)
        statement.response = answer if isinstance(answer, dict) else {}
        return statement.response


@cache
def _tls(verify: bool) -> ssl.SSLContext | bool:
    """One TLS context per process: making one costs about 0.1 s of CPU, and a run makes several clients."""
    return httpx.create_ssl_context() if verify else False


def _error_text(response: httpx.Response) -> str:
    """`HTTP 404 RESOURCE_DOES_NOT_EXIST: message` from a Databricks error body, or the start of any other."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("error_code")):
        return f"HTTP {response.status_code} {body.get('error_code', '')}: {body.get('message', '')}".strip()
    return f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]!r}"
