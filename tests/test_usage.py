"""The usage profile: tagged requests and ai_query read back from system.ai_gateway.usage, pending rows and
`conformance verify-usage`, and every way the warehouse can be unusable (one line, nothing else affected).
The deviations that prove each check fails are in behaviours.yaml (tests/test_deviations.py runs them)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from shared_runs import PLAIN, REFERENCE, REFERENCE_ENV, USAGE

from conformance import usage_checks, usage_tracking
from conformance.cli import main
from conformance.client import RetryPolicy
from conformance.config import REFERENCE_WAREHOUSE_ID, TargetOptions, resolve_target
from conformance.errors import BadInput, InfrastructureError
from conformance.gateway.server import ThreadedGateway
from conformance.gateway.sql import translate, warehouse_of
from conformance.statements import COLUMN_NOT_FOUND, TABLE_NOT_FOUND, Statement, StatementClient, StatementRefused

TOKEN = "usage-test-token-0123456789"
USAGE_IDS = {c.id for c in usage_tracking.load_usage_cases()}
TAGS_IDS = {c.id for c in usage_tracking.load_usage_cases() if c.kind == "tags"}
READING_TABLE = TAGS_IDS | {"usage-ai-query-captured"}


def write_profile(tmp_path: Path, url: str, **sql: object) -> str:
    path = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}.yaml"
    path.write_text(yaml.safe_dump({"name": "reference-sql", "url": url, "token_env": "T",
                                    "sql": {"warehouse_id": REFERENCE_WAREHOUSE_ID, **sql}}))
    return str(path)


def by_id(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {c["id"]: c for c in result.summary["cases"]}


def test_reference_run_passes_the_usage_profile_and_records_what_it_sent(shared_run):
    result = shared_run(*USAGE)
    assert result.code == 0, result.out[-2000:]
    cases = by_id(result)
    assert set(cases) == USAGE_IDS and {c["outcome"] for c in cases.values()} == {"passed"}
    assert all(c["surface"] == "usage" for c in cases.values())
    record = result.summary[usage_tracking.SUMMARY_KEY]
    run_tag = record["run_tag"]
    sent = [c["tags"] for c in record["cases"].values() if c["kind"] == "tags"]
    assert len(sent) == len(TAGS_IDS) and all(t["conformance_run"] == run_tag for t in sent)
    assert {t["conformance_case"].split("@")[0] for t in sent} == TAGS_IDS
    assert record["requester"] and record["ai_query"]["ran"]
    tokens = result.summary["tokens"]["per_surface"]["usage"]
    ai_query = cases["usage-ai-query-result"]["usage"]
    assert ai_query["prompt"] > 0 and ai_query["completion"] > 0  # accounted from its usage row
    assert tokens["completion"] >= ai_query["completion"] + sum(cases[i]["usage"]["completion"] for i in TAGS_IDS)
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    assert report["profiles"]["usage"]["result"] == "success"
    assert report["profiles"]["usage"]["supported_features"] == ["usage.ai_query", "usage.request_tags"]
    evidence = [p for p in (result.run_dir / "allure-results").glob("*-attachment.json")
                if '"verdict"' in p.read_text()]
    assert len(evidence) == len(USAGE_IDS)
    phase = json.loads((result.run_dir / usage_tracking.PHASE_FILE).read_text())
    assert phase["evidence"]["ai_query"][0]["request"]["url"].endswith("/api/2.0/sql/statements")


def test_usage_cases_under_xdist_read_the_controllers_record(shared_run):
    result = shared_run(*REFERENCE, env=REFERENCE_ENV)  # every case, two xdist workers
    assert result.code == 0, result.out[-2000:]
    assert [(c["id"], c["message"]) for c in result.summary["cases"] if c["outcome"] != "passed"] == []
    assert set(by_id(result)) >= USAGE_IDS


def test_a_target_without_a_warehouse_does_not_claim_the_usage_features(run_cli):
    with ThreadedGateway(TOKEN) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "-m", "usage", env={"T": TOKEN})
    assert result.code == 0
    assert {c["outcome"] for c in result.summary["cases"]} == {"skipped"}
    assert all("sql: {warehouse_id" in c["message"] for c in result.summary["cases"])
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    assert report["profiles"]["usage"]["result"] == "not-claimed"


def test_pending_rows_are_errors_until_verify_usage_finds_them(run_cli, tmp_path, capsys):
    with ThreadedGateway(TOKEN) as gateway:
        log = warehouse_of(gateway.state).log
        log.lag_s = 3600  # a live table's lag, longer than the run
        result = run_cli("run", "--target", write_profile(tmp_path, gateway.url, max_lag_s=600), "--usage-wait", "0",
                         "-m", "usage", "--html", "builtin", env={"T": TOKEN})
        assert result.code == 0  # pending is not a failure, and the rest passed
        cases = by_id(result)
        assert {i for i, c in cases.items() if c["outcome"] == "error"} == READING_TABLE
        assert all("verify-usage RUN_DIR" in cases[i]["message"] for i in READING_TABLE)
        report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
        assert report["profiles"]["usage"]["result"] == "partial"
        assert f"{len(READING_TABLE)} case(s) pending" in report["profiles"]["usage"]["reason"]
        assert report["profiles"]["chat_completions"]["result"] == "not-run"  # -k usage: only usage cases ran

        log.release()  # the table catches up
        capsys.readouterr()
        code = main(["verify-usage", str(result.run_dir), "--token-env", "T", "--usage-wait", "5", "--html", "builtin"])
        out = capsys.readouterr().out
        assert code == 0, out
        summary = json.loads((result.run_dir / "summary.json").read_text())
        assert {c["outcome"] for c in summary["cases"]} == {"passed"}
        assert summary["totals"]["errors"] == 0 and summary["totals"]["passed"] == len(USAGE_IDS)
        assert "usage-tags-chat-completions@claude-sonnet-4-5: error -> passed" in out
        assert summary["tokens"]["per_surface"]["usage"]["completion"] > 0
        report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
        assert report["profiles"]["usage"]["result"] == "success"
        assert "| usage | success |" in (result.run_dir / "summary.md").read_text()

        assert main(["verify-usage", str(result.run_dir), "--token-env", "T", "--html", "none"]) == 0
        assert "no usage case" in capsys.readouterr().out


def test_rows_still_missing_after_the_max_lag_fail_when_verified(run_cli, tmp_path, capsys, monkeypatch):
    with ThreadedGateway(TOKEN) as gateway:
        warehouse_of(gateway.state).log.lag_s = 3600
        result = run_cli("run", "--target", write_profile(tmp_path, gateway.url, max_lag_s=600), "--usage-wait", "0",
                         "-k", "usage-tags-chat or usage-tags-embeddings", "--html", "none", env={"T": TOKEN})
        assert {c["outcome"] for c in result.summary["cases"]} == {"error"}
        later = usage_tracking.utc_now() + timedelta(seconds=700)
        monkeypatch.setattr(usage_tracking, "utc_now", lambda: later)
        capsys.readouterr()
        assert main(["verify-usage", str(result.run_dir), "--token-env", "T", "--usage-wait", "0",
                     "--html", "none"]) == 1
    summary = json.loads((result.run_dir / "summary.json").read_text())
    cases = {c["id"]: c for c in summary["cases"]}
    chat, embeddings = cases["usage-tags-chat-completions"], cases["usage-tags-embeddings"]
    assert chat["outcome"] == "failed" and "lags at most 600s" in chat["message"]
    assert chat["findings"] == [{"check": "usage_tags_recorded", "strength": "must",
                                 "message": chat["message"].removeprefix("[usage_tags_recorded] ")}]
    # the same rule is should where 003 shows no tagged request on the API: a warning, not a failure
    assert embeddings["outcome"] == "warned" and embeddings["findings"][0]["strength"] == "should"
    assert summary["failures_by_strength"]["must"] == 1 and summary["warnings_by_strength"]["should"] == 1
    assert summary["totals"]["failed"] == 1 and summary["totals"]["warned"] == 1
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    assert report["profiles"]["usage"]["warned_cases"] == ["usage-tags-embeddings@gte-large-en"]


def test_verify_usage_bad_input_is_one_line(shared_run, tmp_path, capsys):
    reference, plain = shared_run(*USAGE), shared_run(*PLAIN)  # a run with usage cases, one without
    for args, text in ((["verify-usage", str(reference.run_dir)], "reference gateway"),
                       (["verify-usage", str(plain.run_dir), "--url", "http://127.0.0.1:9"], "no usage-tracking"),
                       (["verify-usage", str(tmp_path / "nope")], "does not exist")):
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert text in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("condition, line", [
    ("unknown-warehouse", "HTTP 404 RESOURCE_DOES_NOT_EXIST: SQL warehouse 'feedfacefeedface' does not exist."),
    ("api_absent", "HTTP 404 ENDPOINT_NOT_FOUND"),
    ("forbidden", "HTTP 403 PERMISSION_DENIED"),
    ("table_missing", "TABLE_OR_VIEW_NOT_FOUND"),
])
def test_an_unusable_warehouse_is_one_line_and_nothing_else_is_affected(run_cli, tmp_path, condition, line):
    with ThreadedGateway(TOKEN) as gateway:
        warehouse = warehouse_of(gateway.state)
        sql = {"warehouse_id": "feedfacefeedface"} if condition == "unknown-warehouse" else {}
        if condition != "unknown-warehouse":
            setattr(warehouse, condition, True)
        result = run_cli("run", "--target", write_profile(tmp_path, gateway.url, **sql), "--html", "none",
                         "-k", "usage or chat-system-and-user", env={"T": TOKEN})
        tagged = [e for e in warehouse.log.take_visible() if e.request_tags]
    assert result.code == 0, result.out[-2000:]
    cases = by_id(result)
    assert cases["chat-system-and-user"]["outcome"] == "passed"
    unusable = READING_TABLE if condition == "table_missing" else USAGE_IDS
    assert {i for i, c in cases.items() if c["outcome"] == "error"} == unusable
    assert all(line in cases[i]["message"] for i in unusable)
    assert {c["outcome"] for i, c in cases.items() if i not in unusable} == {"passed"}
    announced = [text for text in result.out.splitlines() if text.startswith("usage: ")]
    assert len(announced) == 1 and line in announced[0], result.out[-2000:]
    assert "Traceback" not in result.out + result.err
    assert tagged == []  # no tagged request was sent (nor paid for) when the table cannot be read


def test_bad_usage_options_are_bad_input(run_cli, tmp_path):
    result = run_cli("run", "--usage-wait", "-1")
    assert result.code == 2 and "--usage-wait" in result.err
    profile = tmp_path / "p.yaml"
    profile.write_text("name: x\nurl: http://127.0.0.1:9\nsql: {max_lag_s: 5}\n")
    result = run_cli("run", "--target", str(profile))
    assert result.code == 2 and "warehouse_id" in result.err and len(result.err.strip().splitlines()) == 1


# --- units --------------------------------------------------------------------------------------------------

def test_databricks_spellings_are_translated_outside_literals_only():
    sql = ("SELECT `request_tags`['a:b'], x::int FROM system.ai_gateway.usage "
           "WHERE request_tags['k'] = :run AND event_time >= :since AND note = ':not_a_marker'")
    assert translate(sql, {"since": "TIMESTAMP"}) == (
        "SELECT \"request_tags\"['a:b'], x::int FROM databricks_system.ai_gateway.usage "
        "WHERE request_tags['k'] = $run AND event_time >= CAST($since AS TIMESTAMP) AND note = ':not_a_marker'")


@pytest.mark.parametrize("text", ["2026-12-01T10:00:00.5Z", "2026-12-01 10:00:00.500",
                                  "2026-12-01T10:00:00.500000+00:00", "2026-12-01T11:00:00.5+01:00"])
def test_warehouse_timestamps_parse_as_utc(text):
    assert usage_tracking.iso(usage_tracking.parse_time(text)) == "2026-12-01T10:00:00.500Z"


def test_tag_judgement_allows_extra_tags_and_catches_lost_or_changed_ones():
    sent = {"conformance_run": "r1", "conformance_case": "c1", "project": "chatbot", "team": "ml-platform"}
    record = {"run_tag": "r1", "cases": {"c1": {"tags": sent}, "c2": {"tags": {**sent, "conformance_case": "c2"}}}}

    def judge(rows):  # type: ignore[no-untyped-def]
        return usage_checks.judge_tags("c1", sent, rows, record, "conformance_case")

    assert judge([{**sent, "added_by_gateway": "x"}]) == []
    (changed,) = judge([{**sent, "team": "ML-PLATFORM"}])
    assert changed[0] == "usage_tags_recorded" and "team='ml-platform' (recorded 'ML-PLATFORM')" in changed[1]
    (lost,) = judge([sent, {k: v for k, v in sent.items() if k != "project"}])
    assert "project='chatbot' (missing)" in lost[1]
    (stray,) = judge([{"conformance_run": "r1", "conformance_case": "c?"}])
    assert "other tags" in stray[1]
    assert judge([{**sent, "conformance_case": "c2"}, None]) is None


def test_capture_judgement_needs_the_runs_identity_outside_its_tagged_rows():
    record = {"run_tag": "r1", "requester": "me", "max_lag_s": 60}
    mine = {"requester": "me", "request_tags": None}
    tagged = {"requester": "me", "request_tags": json.dumps({"conformance_run": "r1"})}
    typed = {"requester": "me", "request_tags": {"conformance_run": "r1"}}  # a MAP as an object, not a string
    other = {"requester": "someone", "request_tags": None}
    assert usage_checks.judge_capture([mine], record, "conformance_run", 0) == []
    assert usage_checks.judge_capture([tagged, typed], record, "conformance_run", 120) is None
    assert usage_checks.judge_capture([other], record, "conformance_run", 10) is None
    with pytest.raises(usage_checks.CannotJudge, match="cannot tell"):
        usage_checks.judge_capture([other], record, "conformance_run", 120)


def test_a_verdict_takes_the_strength_of_the_broken_rule_in_its_case():
    """usage_tags_recorded is must where 003 shows the tagged request, should where it only describes tags."""
    cases = {c.id: c for c in usage_tracking.load_usage_cases()}
    problem = [("usage_tags_recorded", "no row carries the tags")]
    must = usage_checks.judged(cases["usage-tags-chat-completions"], problem)
    should = usage_checks.judged(cases["usage-tags-gemini-generate-content"], problem)
    assert (must.outcome, must.findings[0].strength) == ("failed", "must")
    assert (should.outcome, should.findings[0].strength) == ("warned", "should")
    assert should.message == "[usage_tags_recorded] no row carries the tags"
    assert should.with_strict(True).outcome == "failed" and should.with_strict(False).outcome == "warned"
    form = usage_checks.judged(cases["usage-ai-query-result"], [("sql.statement_response", "no statement_id")])
    assert form.outcome == "warned"
    passed = usage_checks.judged(cases["usage-ai-query-refused-custom-model"], [], message="refused: x")
    assert (passed.outcome, passed.message, passed.findings) == ("passed", "refused: x", [])
    assert usage_checks.Verdict.from_record(must.as_record()) == must


def _statement(response: dict) -> Statement:
    from conformance.schemas import validate

    return Statement("SELECT", {}, response, validate("sql.statement_response", response))


@pytest.mark.parametrize("response, outcome, text", [
    ({"statement_id": "s", "status": {"state": "SUCCEEDED"}, "manifest": {"schema": {"columns": [{"name": "s"}]}},
      "result": {"data_array": [["Databricks is a platform."]]}}, "passed", ""),
    ({"status": {"state": "SUCCEEDED"}, "manifest": {"schema": {"columns": [{"name": "s"}]}},
      "result": {"data_array": [["a summary"]], "extra": 1}, "more": True}, "warned", "statement_id"),
    ({"statement_id": "s", "status": {"state": "SUCCEEDED"}, "manifest": {"schema": {"columns": [{"name": "s"}]}},
      "result": {"data_array": [[""]]}}, "failed", "the summary is empty"),
    ({"statement_id": "s", "status": {"state": "SUCCEEDED"}, "manifest": {"schema": {"columns": [{"name": "s"}]}},
      "result": {"data_array": [["a"], ["b"]]}}, "failed", "gave 2 result rows"),
    ({"statement_id": "s", "status": {"state": "SUCCEEDED"}}, "failed", "cannot be read"),
    ({"statement_id": "s", "status": {"state": "FAILED", "error": {"message": "boom"}}}, "failed", "ended FAILED"),
    ({"statement_id": "s", "status": "done"}, "failed", "cannot be read"),
])
def test_the_documented_ai_query_answer_is_judged_by_the_strength_of_each_rule(response, outcome, text):
    case = next(c for c in usage_tracking.load_usage_cases() if c.id == "usage-ai-query-result")
    verdict = usage_checks.judged(case, usage_checks.judge_ai_query_result(_statement(response)))
    assert verdict.outcome == outcome and text in verdict.message, verdict


def test_a_refusal_is_a_failed_statement_or_a_4xx_and_an_answer_is_a_warning():
    case = next(c for c in usage_tracking.load_usage_cases() if c.kind == "ai_query_refused")
    failed = {"statement_id": "s", "status": {"state": "FAILED", "error": {"message": "not supported"}}}
    answered = {"statement_id": "s", "status": {"state": "SUCCEEDED"},
                "manifest": {"schema": {"columns": [{"name": "summary"}]}}, "result": {"data_array": [["a"]]}}
    assert usage_checks.judged(case, usage_checks.judge_refusal(_statement(failed), "m")).outcome == "passed"
    warned = usage_checks.judged(case, usage_checks.judge_refusal(_statement(answered), "m"))
    assert warned.outcome == "warned" and warned.findings[0].check == "ai_query_refused"


def test_a_statement_still_running_at_the_deadline_is_infrastructure(monkeypatch):
    target = resolve_target(TargetOptions(url="http://127.0.0.1:9"), environ={})
    client = StatementClient(target, "w", RetryPolicy(attempts=1), deadline_s=0.3)
    monkeypatch.setattr(client, "_send", lambda statement, method, url, body: {
        "statement_id": "s1", "status": {"state": "RUNNING"}})
    monkeypatch.setattr("conformance.statements.POLL_S", (0.05, 0.05))
    with pytest.raises(InfrastructureError, match="still RUNNING after"):
        client.execute("SELECT 1")
    client.close()


def test_the_statement_client_polls_a_pending_statement():
    with ThreadedGateway(TOKEN, ["statements-pending-first"]) as gateway:
        target = resolve_target(TargetOptions(url=gateway.url, token_env="T"), environ={"T": TOKEN})
        client = StatementClient(target, REFERENCE_WAREHOUSE_ID)
        statement: Statement = client.execute("SELECT :a AS a, 2 AS b", {"a": "x"})
        client.close()
    assert statement.succeeded and statement.records() == [{"a": "x", "b": "2"}]
    assert [e["request"]["method"] for e in statement.exchanges] == ["POST", "GET"]
    assert TOKEN not in json.dumps(statement.exchanges)


def test_the_reference_warehouse_answers_unsupported_sql_in_the_apis_failure_form():
    with ThreadedGateway(TOKEN) as gateway:
        target = resolve_target(TargetOptions(url=gateway.url, token_env="T"), environ={"T": TOKEN})
        client = StatementClient(target, REFERENCE_WAREHOUSE_ID, RetryPolicy(attempts=1))
        answers = {sql: client.execute(sql) for sql in (
            "DROP TABLE system.ai_gateway.usage", "SELECT 1; SELECT 2", "SELEC 1",
            "SELECT nope FROM system.ai_gateway.usage", "SELECT * FROM system.ai_gateway.nope")}
        with pytest.raises(StatementRefused) as refused:
            client.execute("SELECT :a", {"a": ("1", "ARRAY<INT>")})  # a type the API does not take
        client.close()
        wrong_warehouse = StatementClient(target, "feedfacefeedface", RetryPolicy(attempts=1))
        with pytest.raises(StatementRefused) as missing:
            wrong_warehouse.execute("SELECT 1")
        wrong_warehouse.close()
    for sql, statement in answers.items():
        assert statement.form_errors == [] and statement.state == "FAILED", sql
        assert statement.response["status"]["error"]["error_code"] == "BAD_REQUEST", sql
    assert answers["SELECT nope FROM system.ai_gateway.usage"].failed_with(COLUMN_NOT_FOUND)
    assert answers["SELECT * FROM system.ai_gateway.nope"].failed_with(TABLE_NOT_FOUND)
    assert "databricks_system" not in json.dumps([s.response for s in answers.values()])
    assert refused.value.status == 400 and "INVALID_PARAMETER_VALUE" in refused.value.message
    assert missing.value.status == 404 and "does not exist" in missing.value.message


def test_every_answered_model_service_request_is_a_usage_row():
    with ThreadedGateway(TOKEN, ["usage-chunk"]) as gateway:  # its streams end with a usage chunk
        headers = {"Authorization": f"Bearer {TOKEN}", "Databricks-Ai-Gateway-Request-Tags": '{"k": "v"}'}
        body = {"model": "system.ai.claude-sonnet-4-5", "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gateway.url) as http:
            assert http.post("/ai-gateway/mlflow/v1/chat/completions", json=body, headers=headers).status_code == 200
            stream = http.post("/ai-gateway/mlflow/v1/chat/completions", json={**body, "stream": True}, headers=headers)
            assert stream.status_code == 200
            refused = http.post("/ai-gateway/mlflow/v1/chat/completions", json=body)  # no token
            assert refused.status_code == 401
        target = resolve_target(TargetOptions(url=gateway.url, token_env="T"), environ={"T": TOKEN})
        client = StatementClient(target, REFERENCE_WAREHOUSE_ID)
        rows = client.execute("SELECT requester, status_code, request_tags, input_tokens, output_tokens, api_type "
                              "FROM system.ai_gateway.usage ORDER BY event_time").records()
        client.close()
    assert [(r["status_code"], r["request_tags"]) for r in rows] == [("200", '{"k":"v"}'), ("200", '{"k":"v"}'),
                                                                      ("401", None)]
    assert rows[0]["requester"] == rows[1]["requester"] and rows[2]["requester"] is None
    assert int(rows[0]["output_tokens"]) > 0 and int(rows[1]["output_tokens"]) > 0  # the stream's usage too
    assert rows[0]["api_type"] == "mlflow/v1/chat/completions"


def test_transport_faults_on_the_warehouse_never_become_failures(run_cli, tmp_path):
    from conformance.gateway.faults import FaultConfig

    with ThreadedGateway(TOKEN, faults=FaultConfig(fault_rate=0.25, seed=11)) as gateway:
        result = run_cli("run", "--target", write_profile(tmp_path, gateway.url), "-m", "usage", "--html", "none",
                         env={"T": TOKEN})
        stats = httpx.get(gateway.url + "/_reference/stats").json()
    assert sum(stats["faults"].values()) > 0
    outcomes = {c["id"]: c["outcome"] for c in result.summary["cases"]}
    assert set(outcomes) == USAGE_IDS and "failed" not in outcomes.values(), result.summary["cases"]


# --- strengths, certificate, variations ----------------------------------------------------------------------

def test_every_usage_check_judges_a_case_and_every_case_is_judged_by_a_check():
    cases = usage_tracking.load_usage_cases()
    kinds = {c.kind for c in cases}
    for check in usage_checks.USAGE_CHECKS.values():
        assert set(check.kinds) <= kinds and check.kinds, check.name
    for kind in kinds:
        assert any(kind in c.kinds for c in usage_checks.USAGE_CHECKS.values()), kind
    for case in cases:
        assert case.features and all(f.startswith("usage.") for f in case.features), case.id
        # where 003 shows no tagged request on the API, the tags rule is should in the case, as the case is
        if case.kind == "tags":
            assert usage_checks.strength_of(case, "usage_tags_recorded") == case.strength, case.id


def test_a_usage_case_naming_a_check_it_does_not_have_is_bad_input(tmp_path):
    data = yaml.safe_load((usage_tracking.USAGE_CASES_DIR / "usage.yaml").read_text())
    case = next(c for c in data["cases"] if c["kind"] == "ai_query_refused")
    case["check_strengths"] = {"usage_tags_recorded": {"strength": "advisory", "reason": "not a check of this kind"}}
    (tmp_path / "usage.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BadInput, match="check_strengths names 'usage_tags_recorded', no check of a ai_query_refused"):
        usage_tracking.load_usage_data(tmp_path)


def _record(case_id: str, outcome: str, message: str = "", findings: list | None = None) -> dict:
    case = next(c for c in usage_tracking.load_usage_cases() if c.id == case_id)
    return {"id": case.id, "surface": "usage", "model": None, "model_type": case.model_type,
            "features": list(case.features), "strength": case.strength, "strength_reason": case.strength_reason,
            "outcome": outcome, "message": message, "findings": findings or []}


def test_the_usage_profile_follows_the_certificates_result_rules():
    from conformance.certify import profiles

    passed = [_record(c.id, "passed") for c in usage_tracking.load_usage_cases()]
    chat = {"id": "chat-system-and-user", "surface": "chat_completions", "model": "m", "model_type": "chat",
            "features": ["chat_completions", "auth.bearer"], "outcome": "passed", "message": "", "findings": []}

    def usage_profile(records: list[dict]) -> dict:
        result = profiles({"cases": [chat, *records]})
        assert result["chat_completions"]["result"] == "success"  # usage cases are not counted there
        return result["usage"]

    assert usage_profile(passed)["result"] == "success"
    warning = {"check": "usage_tags_recorded", "strength": "should", "message": "no row"}
    warned = usage_profile([*passed[1:], _record("usage-tags-embeddings", "warned", "[x]", [warning])])
    assert warned["result"] == "success" and warned["warned_cases"] == ["usage-tags-embeddings"]
    failure = {**warning, "strength": "must"}
    failed = usage_profile([*passed[1:], _record("usage-tags-chat-completions", "failed", "[x]", [failure])])
    assert failed["result"] == "partial" and "extended features failed (usage.request_tags)" in failed["reason"]
    waiting = usage_profile([*passed[1:], _record("usage-tags-chat-completions", "error", "pending: no row yet")])
    assert waiting["result"] == "partial" and "1 case(s) pending" in waiting["reason"]
    assert "infrastructure" not in waiting["reason"]
    everything_waits = usage_profile([_record(c.id, "error", "pending: no row yet")
                                      for c in usage_tracking.load_usage_cases()])
    assert everything_waits["result"] == "not-run"
    assert "0 infrastructure error(s), 9 pending" in everything_waits["reason"]


def test_the_usage_variations_really_answer_differently():
    """statements-typed-values, usage-extra-columns and usage-clock-behind change what the warehouse answers
    (the deviation tests prove the suite still passes them)."""
    switches = ["statements-typed-values", "usage-extra-columns", "usage-clock-behind"]
    with ThreadedGateway(TOKEN, switches) as gateway:
        headers = {"Authorization": f"Bearer {TOKEN}", "Databricks-Ai-Gateway-Request-Tags": '{"k": "v"}'}
        body = {"model": "system.ai.claude-sonnet-4-5", "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(gateway.url + "/ai-gateway/mlflow/v1/chat/completions", json=body, headers=headers,
                          ).status_code == 200
        target = resolve_target(TargetOptions(url=gateway.url, token_env="T"), environ={"T": TOKEN})
        client = StatementClient(target, REFERENCE_WAREHOUSE_ID)
        rows = client.execute("SELECT *, now() AS now FROM system.ai_gateway.usage")
        client.close()
    assert rows.form_errors == [] and rows.succeeded
    assert rows.columns[:2] == ["account_id", "workspace_id"] and "usage_context" in rows.columns
    (row,) = rows.records()
    assert row["request_tags"] == {"k": "v"} and isinstance(row["output_tokens"], int)
    assert " " in row["now"] and "Z" not in row["now"]
    behind = usage_tracking.parse_time(row["now"]) - usage_tracking.parse_time(row["event_time"])
    assert behind.total_seconds() >= 1.0


def test_a_usage_warning_is_a_failure_under_strict(run_cli):
    result = run_cli("run", "--deviation", "ai-query-any-model", "-k", "usage-ai-query", lean=True)
    assert result.code == 0 and result.with_outcome("warned") == {"usage-ai-query-refused-custom-model"}
    strict = run_cli("run", "--strict", "--deviation", "ai-query-any-model", "-k", "usage-ai-query", lean=True)
    assert strict.code == 1 and strict.with_outcome("failed") == {"usage-ai-query-refused-custom-model"}
    assert strict.summary["failures_by_strength"]["should"] == 1


def test_deselected_usage_cases_make_the_usage_profile_not_run_with_the_reason(run_cli):
    result = run_cli("run", "-k", "chat-system-and-user", lean=True)
    assert result.summary["incomplete"] is True
    deselected = {c["id"] for c in result.summary["not_run"]["deselected_cases"]}
    assert deselected >= USAGE_IDS
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    usage = report["profiles"]["usage"]
    assert usage["result"] == "not-run" and f"{len(USAGE_IDS)} case(s) deselected" in usage["reason"]


# --- the preflight and the usage cases ------------------------------------------------------------------------

def test_the_preflight_skips_usage_cases_of_missing_routes_and_unserved_models_and_leaves_the_rest(run_cli, tmp_path):
    """A route the preflight finds missing and a model the target does not serve skip the usage cases that need
    them, with the preflight's reason; the SQL statement API is not the preflight's: the other usage cases run."""
    with ThreadedGateway(TOKEN, not_serving={"gpt-5-4"}) as gateway:
        profile = tmp_path / "p.yaml"
        profile.write_text(yaml.safe_dump({
            "name": "reference-sql", "url": gateway.url, "token_env": "T",
            "routes": {"anthropic_messages": "/no/such/messages"},
            "sql": {"warehouse_id": REFERENCE_WAREHOUSE_ID}}))
        result = run_cli("run", "--target", str(profile), "-m", "usage", "--html", "none", env={"T": TOKEN})
    assert result.code == 0, result.out[-3000:]
    cases = by_id(result)
    skipped = {i: c["message"] for i, c in cases.items() if c["outcome"] == "skipped"}
    assert set(skipped) == {"usage-tags-anthropic-messages", "usage-ai-query-result", "usage-ai-query-captured"}
    assert "HTTP 404 on POST /no/such/messages (preflight)" in skipped["usage-tags-anthropic-messages"]
    assert skipped["usage-ai-query-result"].startswith("model not served: gpt-5-4 (")
    assert {c["outcome"] for i, c in cases.items() if i not in skipped} == {"passed"}
    assert "sql" not in json.dumps(result.summary["preflight"]["routes_missing"])


def test_ai_query_waits_out_its_windows_slack_after_the_runs_last_request(tmp_path):
    """ai_query's captured row is looked for in a window that opens clock_slack_s before the statement: a request
    of the run just before it (the preflight's) must not fall in it, or a gateway that does not capture ai_query
    would pass. usage_tracking.Begin waits that out; told the run's last request was long ago, it does not wait,
    and a request a moment before does pass for ai_query's row (what the wait prevents)."""
    import time

    from conformance.pacing import Pacer, TokenBudget, make_store
    from conformance.runner import Runtime

    with ThreadedGateway(TOKEN, ["ai-query-not-captured"]) as gateway:
        profile = write_profile(tmp_path, gateway.url, max_lag_s=0)  # judged at the first lookup
        target = resolve_target(TargetOptions(target_file=profile), environ={"T": TOKEN})
        items = [i for i in usage_tracking.expand_usage(target) if i.kind == "ai_query_captured"]
        assert items and items[0].skip is None
        store = make_store(None, shared=False)
        runtime = Runtime(target, Pacer(None, store), TokenBudget(None, store), RetryPolicy(attempts=2))
        outcomes = {}
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

        try:
            for waits in (True, False):
                httpx.post(gateway.url + "/ai-gateway/mlflow/v1/chat/completions",
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "system.ai.claude-sonnet-4-5", "max_tokens": 4,
                                 "messages": [{"role": "user", "content": "hi"}]})
                slept.clear()
                quiet_since = time.monotonic() if waits else time.monotonic() - 60
                begin = usage_tracking.Begin(target, runtime, lambda line: None, quiet_since, sleep=sleep)
                record = begin.run(items)
                client = StatementClient(target, REFERENCE_WAREHOUSE_ID, http=runtime.client)
                verdict = usage_tracking.settle(record, client, 0)[items[0].test_id]
                outcomes[waits] = verdict.outcome
                assert (len(slept) == 1 and 0 < slept[0] <= 2.1) if waits else slept == [], slept
                time.sleep(2.1)  # the next round's window does not reach this one's requests
        finally:
            runtime.close()
    assert outcomes == {True: "failed", False: "passed"}


def test_the_html_report_shows_a_usage_case_with_its_spec_and_requests(run_cli):
    result = run_cli("run", "-k", "usage-ai-query-result or usage-tags-chat", "--html", "builtin")
    assert result.code == 0, result.out[-2000:]
    text = (result.run_dir / "report.html").read_text()
    start = text.index("data-case='usage-ai-query-result@gpt-5-4'")
    end = min(i for i in (text.find("<details class='case'", start + 1), text.index("</main>", start)) if i > 0)
    case = text[start:end]
    assert "Query model services with ai_query" in case and "cf-spec-quote" in case
    assert "/api/2.0/sql/statements" in case and "ai_query(" in case  # the statement it sent, and the answer
    assert "data-case='usage-tags-chat-completions@claude-sonnet-4-5'" in text
