"""The reference gateway's SQL warehouse: the Statement Execution API on an embedded DuckDB database.

Databricks' API (POST /api/2.0/sql/statements, GET /api/2.0/sql/statements/{statement_id}; the response form of
databricks-sdk's StatementResponse: statement_id, status.state, manifest.schema, result.data_array with every
value a string or null) over one table, system.ai_gateway.usage, filled from the usage log (usage_log.py), and
one function, ai_query(endpoint, request), which asks the gateway's own chat path. Statements run at once, so
the answer is final (SUCCEEDED or FAILED) unless the statements-pending-first variation answers PENDING and
leaves the result to GET, as a warehouse that takes longer than wait_timeout does. Two more variations answer what
another warehouse may: statements-typed-values gives typed JSON values (numbers, a MAP as an object, timestamps
with a space and no zone) where Databricks gives strings, usage-extra-columns a table with columns beyond (and
before) the published ones.

Only single SELECT statements are run; anything else, and any SQL DuckDB refuses, gets the API's failure form
(status.state FAILED, status.error {error_code, message}, status.sql_state). A few Databricks spellings are
rewritten for DuckDB outside string literals: `system.ai_gateway` (DuckDB reserves the catalog name `system`),
`:name` parameter markers, backquoted identifiers.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import OrderedDict
from datetime import date, datetime, timezone
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.catalog import DEFAULT_CHAT_MODEL, load_catalog
from conformance.gateway.common import ApiError, GatewayState, authenticate, read_json, state_of
from conformance.gateway.mutators import mutate
from conformance.gateway.usage_log import (
    AI_QUERY_HEADER,
    REQUESTER,
    UsageEvent,
    UsageLog,
    captured,
    event_time_of,
    lag_of,
    recorded_tags,
)
from conformance.reference import REFERENCE_WAREHOUSE_ID

STATEMENTS_PATH = "/api/2.0/sql/statements"
CATALOG = "databricks_system"  # what `system` is called inside DuckDB
UNSUPPORTED_ENDPOINT = "AI_FUNCTION_UNSUPPORTED_ENDPOINT"
KEPT_STATEMENTS = 256  # answers GET can still fetch
WAIT_TIMEOUT = re.compile(r"^(\d+)s$")
PARAMETER_TYPES = {"STRING": "VARCHAR", "TIMESTAMP": "TIMESTAMP", "DATE": "DATE", "INT": "INTEGER",
                   "BIGINT": "BIGINT", "LONG": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}
TYPE_NAMES = {"VARCHAR": "STRING", "BIGINT": "LONG", "INTEGER": "INT", "HUGEINT": "DECIMAL", "DOUBLE": "DOUBLE",
              "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP"}
USAGE_COLUMNS = (  # a subset of Databricks' published schema of system.ai_gateway.usage
    ("request_id", "VARCHAR"), ("event_time", "TIMESTAMP"), ("requester", "VARCHAR"),
    ("endpoint_name", "VARCHAR"), ("api_type", "VARCHAR"), ("status_code", "INTEGER"),
    ("request_tags", "MAP(VARCHAR, VARCHAR)"), ("input_tokens", "BIGINT"), ("output_tokens", "BIGINT"),
    ("total_tokens", "BIGINT"),
)
ROWS_TABLE = "usage_rows"  # the rows behind the system.ai_gateway.usage view (see Warehouse._shape)
FLUSH_ROWS = 200  # rows per INSERT statement when logged requests become rows
EXTRA_COLUMNS = (  # the usage-extra-columns variation: a table wider than the published schema, in another order
    ("account_id", "VARCHAR"), ("workspace_id", "VARCHAR"), ("usage_context", "MAP(VARCHAR, VARCHAR)"),
)
# SQL outside literals: a quoted string or identifier, a :name marker, or the `system.ai_gateway` schema
_LEXEME = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(`[^`]*`)|(?<![:\w]):([A-Za-z_]\w*)|"""
                     r"""\b(system)(\s*\.\s*ai_gateway)\b""", re.IGNORECASE)


class SqlFailure(Exception):
    """A statement that fails: answered with status.state FAILED (HTTP 200), as the API does."""

    def __init__(self, message: str, sql_state: str | None = None, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message, self.sql_state, self.code = message, sql_state, code


def provided(endpoint: str) -> bool:
    """A Databricks-provided model service (003: databricks-gpt-5-4, databricks-claude-sonnet-4, ...)."""
    return endpoint.startswith(("databricks-", "system.ai.")) and load_catalog().get(endpoint) is not None


def translate(statement: str, types: dict[str, str]) -> str:
    """Databricks SQL spellings DuckDB does not share, rewritten outside string literals."""

    def swap(match: re.Match[str]) -> str:
        literal, quoted, backquoted, marker, _catalog, rest = match.groups()
        if literal or quoted:
            return match.group(0)
        if backquoted:
            return '"' + backquoted[1:-1].replace('"', '""') + '"'
        if marker:
            kind = types.get(marker)
            return f"CAST(${marker} AS {kind})" if kind else f"${marker}"
        return CATALOG + rest

    return _LEXEME.sub(swap, statement)


def cell(value: Any, typed: bool = False) -> Any:
    """A value as JSON_ARRAY carries it: a string (complex types as JSON), or null. typed (the
    statements-typed-values variation): numbers, booleans and maps as JSON values, timestamps in SQL's form."""
    if value is None:
        return None
    if typed:
        if isinstance(value, bool | int | float | dict | list):
            return value
        if isinstance(value, datetime):
            return (value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value).isoformat(" ")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc) if value.tzinfo else value
        return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def column(index: int, name: str, duck_type: Any) -> dict[str, Any]:
    text = str(duck_type)
    base = text.split("(")[0].strip().upper()
    type_name = TYPE_NAMES.get(text.upper()) or TYPE_NAMES.get(base) or ("MAP" if base == "MAP" else "STRING")
    type_text = {"MAP": "MAP<STRING, STRING>", "LONG": "BIGINT"}.get(type_name, type_name)
    return {"name": name, "position": index, "type_name": type_name, "type_text": type_text}


def succeeded(statement_id: str, description: list[Any], rows: list[tuple[Any, ...]], typed: bool = False,
              ) -> dict[str, Any]:
    data = [[cell(v, typed) for v in row] for row in rows]
    columns = [column(i, d[0], d[1]) for i, d in enumerate(description)]
    return {
        "statement_id": statement_id,
        "status": {"state": "SUCCEEDED"},
        "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": len(columns), "columns": columns},
                     "total_chunk_count": 1, "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": len(data)}],
                     "total_row_count": len(data), "truncated": False},
        "result": {"chunk_index": 0, "row_offset": 0, "row_count": len(data), "data_array": data},
    }


def failed(statement_id: str, failure: SqlFailure) -> dict[str, Any]:
    status: dict[str, Any] = {"state": "FAILED", "error": {"error_code": failure.code, "message": failure.message}}
    if failure.sql_state:
        status["sql_state"] = failure.sql_state
    return {"statement_id": statement_id, "status": status}


def duckdb_failure(exc: Exception) -> SqlFailure:
    """DuckDB's error in the form and with the error classes a Databricks warehouse reports."""
    text = str(exc).replace(CATALOG, "system").split("\n")[0]
    name = type(exc).__name__
    if name == "CatalogException" and "does not exist" in text and "Table" in text:
        return SqlFailure(f"[TABLE_OR_VIEW_NOT_FOUND] {text}", "42P01")
    if name == "BinderException" and "column" in text.lower():
        return SqlFailure(f"[UNRESOLVED_COLUMN] {text}", "42703")
    if name == "ParserException":
        return SqlFailure(f"[PARSE_SYNTAX_ERROR] {text}", "42601")
    return SqlFailure(f"[{name}] {text}")


class Warehouse:
    """One DuckDB connection behind a lock (statements run one at a time, in a worker thread)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.log = UsageLog()
        self.app: Any = None  # the gateway app behind the fault injector: ai_query's chat requests go there
        self.warehouse_id = REFERENCE_WAREHOUSE_ID
        # conditions the self-tests set for bad-input cases: no statements API (404), a token that may not
        # use the warehouse (403), a metastore without the usage table
        self.api_absent = False
        self.forbidden = False
        self.table_missing = False
        self._con: Any = None
        self._extra_columns: bool | None = None  # the table's present form (usage-extra-columns), once made
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._udf_failure: SqlFailure | None = None
        self._token: Any = None

    # --- the database ---------------------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._con is None:
            import duckdb  # only a gateway that is asked SQL pays for the import

            con = duckdb.connect(":memory:", config={"threads": 1})
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"ATTACH ':memory:' AS {CATALOG}")
            con.execute(f"CREATE SCHEMA {CATALOG}.ai_gateway")
            if not self.table_missing:
                columns = ", ".join(f"{name} {kind}" for name, kind in USAGE_COLUMNS)
                con.execute(f"CREATE TABLE {CATALOG}.ai_gateway.{ROWS_TABLE} ({columns})")
            con.execute(f"CREATE MACRO current_user() AS '{REQUESTER}'")
            con.create_function("ai_query", self._ai_query, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=True)
            self._con = con
        return self._con

    def _shape(self) -> None:
        """system.ai_gateway.usage: a view of the rows, with the published columns or (usage-extra-columns) more
        of them, in another order; asked at every statement, as every other switch is asked where it answers."""
        if self.table_missing:
            return
        extra = self.state.on("usage-extra-columns")
        if extra == self._extra_columns:
            return
        names = [name for name, _ in USAGE_COLUMNS]
        if extra:
            nulls = [f"CAST(NULL AS {kind}) AS {name}" for name, kind in EXTRA_COLUMNS]
            names = [*nulls[:2], *names, *nulls[2:]]
        self._connection().execute(f"CREATE OR REPLACE VIEW {CATALOG}.ai_gateway.usage AS SELECT {', '.join(names)} "
                                   f"FROM {CATALOG}.ai_gateway.{ROWS_TABLE}")
        self._extra_columns = extra

    def _flush(self) -> None:
        """The logged events that are readable by now become rows of the usage table, as the switches say."""
        events = self.log.take_visible(lag_of(self.state, self.log))
        rows = [row_of(e, self.state) for e in events if captured(self.state, e)]
        if rows and not self.table_missing:
            # many rows to a statement: duckdb's executemany runs one statement a row (a millisecond each)
            one = f"({', '.join('?' * len(USAGE_COLUMNS))})"
            into = f"INSERT INTO {CATALOG}.ai_gateway.{ROWS_TABLE} ({', '.join(name for name, _ in USAGE_COLUMNS)})"
            for start in range(0, len(rows), FLUSH_ROWS):
                batch = rows[start:start + FLUSH_ROWS]
                self._connection().execute(f"{into} VALUES {', '.join([one] * len(batch))}",
                                           [value for row in batch for value in row])

    # --- statements -----------------------------------------------------------------------------------------

    def run(self, statement: str, parameters: list[dict[str, Any]], token: Any) -> dict[str, Any]:
        statement_id = str(uuid.uuid4())
        types = {p["name"]: PARAMETER_TYPES[p.get("type", "STRING").upper()] for p in parameters if p.get("type")}
        values = {p["name"]: p.get("value") for p in parameters}
        with self._lock:
            con = self._connection()
            self._shape()
            self._flush()
            translated = translate(statement, types)
            try:
                parsed = con.extract_statements(translated)
            except Exception as exc:  # duckdb's own exception classes
                return failed(statement_id, duckdb_failure(exc))
            if len(parsed) != 1 or parsed[0].type.name != "SELECT":
                return failed(statement_id, SqlFailure(
                    "[UNSUPPORTED_STATEMENT] the reference warehouse runs one SELECT statement at a time", "0A000"))
            self._token, self._udf_failure = token, None
            try:
                cursor = con.execute(translated, values)
                answer = succeeded(statement_id, cursor.description or [], cursor.fetchall(),
                                   self.state.on("statements-typed-values"))
            except Exception as exc:
                answer = failed(statement_id, self._udf_failure or duckdb_failure(exc))
            self._answers[statement_id] = answer
            while len(self._answers) > KEPT_STATEMENTS:
                self._answers.popitem(last=False)
        return answer

    def answer(self, statement_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._answers.get(statement_id)

    # --- ai_query -------------------------------------------------------------------------------------------

    def _ai_query(self, endpoint: str, request: str) -> str:
        """003: ai_query on a Databricks-provided model service; model services created in Unity AI Gateway are
        not supported. The request goes to the gateway's own chat path (and so into the usage log)."""
        model = endpoint
        if not provided(endpoint):
            if not self.state.on("ai-query-any-model"):
                self._udf_failure = SqlFailure(
                    f"[{UNSUPPORTED_ENDPOINT}] ai_query supports only Databricks-provided model services;"
                    f" {endpoint!r} is not one", "0A000")
                raise ValueError(self._udf_failure.message)
            model = f"databricks-{DEFAULT_CHAT_MODEL}"  # answered anyway, by a stand-in
        try:
            return anyio.from_thread.run(self._chat, model, request, token=self._token)
        except SqlFailure as exc:
            self._udf_failure = exc
            raise ValueError(exc.message) from None

    async def _chat(self, model: str, prompt: str) -> str:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reference") as client:
            answer = await client.post("/ai-gateway/mlflow/v1/chat/completions",
                                       json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                                       headers={"Authorization": f"Bearer {self.state.token}", AI_QUERY_HEADER: "1"})
        if answer.status_code != 200:
            raise SqlFailure(f"[REMOTE_FUNCTION_HTTP_FAILED_ERROR] the model service answered HTTP "
                             f"{answer.status_code}: {answer.text[:200]}", "39000")
        content = (answer.json().get("choices") or [{}])[0].get("message", {}).get("content")
        if isinstance(content, list):  # typed blocks (001 Reasoning): the text blocks are the answer
            content = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
        return content if isinstance(content, str) else ""


def row_of(event: UsageEvent, state: GatewayState) -> tuple[Any, ...]:
    """A usage table row: the answer is parsed for its model and token counts only now, and the switches that
    change a row are asked (usage_log.py)."""
    from conformance.sse import parse_sse
    from conformance.usage import usage_of_events, usage_of_json

    payload: Any = None
    tokens = None
    text = event.body.decode("utf-8", "replace")
    if "text/event-stream" in event.content_type:
        tokens = usage_of_events(parse_sse(text))
    else:
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        tokens = usage_of_json(payload) if event.status < 400 else None
    endpoint = payload.get("model") if isinstance(payload, dict) and isinstance(payload.get("model"), str) else None
    if endpoint is None:
        found = re.search(r"/models/([^/:]+)|/serving-endpoints/([^/]+)/invocations", event.path)
        endpoint = next((g for g in found.groups() if g), None) if found else None
    api_type = "ai_query" if event.ai_query else event.path.removeprefix("/ai-gateway/").lstrip("/")
    prompt, completion = tokens if tokens else (None, None)
    total = sum(tokens) if tokens else None
    return (event.request_id, event_time_of(state, event).replace(tzinfo=None), event.requester, endpoint, api_type,
            event.status, recorded_tags(state, event.request_tags), prompt, completion, total)


def warehouse_of(state: GatewayState) -> Warehouse:
    if state.warehouse is None:
        state.warehouse = Warehouse(state)
    return state.warehouse


def _warehouse(request: Request) -> Warehouse:
    authenticate(request)
    warehouse = warehouse_of(state_of(request))
    if warehouse.api_absent:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.url.path}'")
    if warehouse.forbidden:
        raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to use this SQL warehouse.")
    return warehouse


async def execute_statement(request: Request) -> Response:
    warehouse = _warehouse(request)
    body = await read_json(request)
    statement, warehouse_id = body.get("statement"), body.get("warehouse_id")
    if not isinstance(statement, str) or not statement.strip():
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'statement' must be a non-empty string.")
    if warehouse_id != warehouse.warehouse_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"SQL warehouse {warehouse_id!r} does not exist.")
    wait = WAIT_TIMEOUT.match(str(body.get("wait_timeout", "10s")))
    if not wait or not (int(wait.group(1)) == 0 or 5 <= int(wait.group(1)) <= 50):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'wait_timeout' must be 0s or between 5s and 50s.")
    if body.get("format", "JSON_ARRAY") != "JSON_ARRAY" or body.get("disposition", "INLINE") != "INLINE":
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "The reference warehouse answers INLINE JSON_ARRAY only.")
    parameters = body.get("parameters", [])
    if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and (p.get("value") is None
                                                                         or isinstance(p.get("value"), str))
            and str(p.get("type", "STRING")).upper() in PARAMETER_TYPES for p in parameters):
        raise ApiError(400, "INVALID_PARAMETER_VALUE",
                       f"'parameters' must be a list of {{name, value, type}}; types: {sorted(PARAMETER_TYPES)}")
    token = anyio.lowlevel.current_token()
    answer = await run_in_threadpool(warehouse.run, statement, parameters, token)
    error = answer["status"].get("error") or {}
    if state_of(request).on("ai-query-refused-by-api") and UNSUPPORTED_ENDPOINT in error.get("message", ""):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", error["message"])  # refused as a request, not a statement
    if state_of(request).on("statements-pending-first"):
        return JSONResponse({"statement_id": answer["statement_id"], "status": {"state": "PENDING"}})
    return JSONResponse(mutate(request, "sql.statement", answer))


async def get_statement(request: Request) -> Response:
    warehouse = _warehouse(request)
    answer = warehouse.answer(request.path_params["statement_id"])
    if answer is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", "The statement does not exist (or has expired).")
    return JSONResponse(answer)


def routes() -> list[Route]:
    return [Route(STATEMENTS_PATH, execute_statement, methods=["POST"]),
            Route(STATEMENTS_PATH + "/{statement_id}", get_statement, methods=["GET"])]
