"""Verdicts true to the contract: outcomes from the strength of each broken rule, warnings apart from failures,
the certificate's profile rules, incomplete runs, and one line per root cause."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from shared_runs import ROLE_NOT_ASSISTANT, USAGE_SUM_WRONG

from conformance.cases import CaseItem, load_cases
from conformance.certify import conformance_report, profiles
from conformance.client import Exchange
from conformance.errors import BadInput
from conformance.evaluate import evaluate_steps
from conformance.findings import Finding, group, normalise, ordered, outcome_of
from conformance.summary import exit_status

# --- outcome rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("strengths", "strict", "outcome"), [
    ([], False, "passed"),
    (["must"], False, "failed"),
    (["should"], False, "warned"),
    (["advisory"], False, "warned"),
    (["advisory", "should"], False, "warned"),
    (["should", "must"], False, "failed"),
    (["should"], True, "failed"),
    (["advisory"], True, "failed"),
    ([], True, "passed"),
])
def test_a_must_finding_fails_and_only_should_or_advisory_findings_warn(strengths, strict, outcome):
    findings = [Finding("some_check", s, "broken") for s in strengths]
    assert outcome_of(findings, strict) == outcome


def _totals(**counts: int) -> dict[str, Any]:
    return {"totals": {"passed": 0, "failed": 0, "warned": 0, "skipped": 0, "errors": 0, **counts}}


@pytest.mark.parametrize(("totals", "code"), [
    (_totals(passed=3), 0),
    (_totals(passed=3, warned=5), 0),
    (_totals(warned=5), 0),
    (_totals(warned=5, errors=1), 0),
    (_totals(passed=1, failed=1, warned=5), 1),
    (_totals(errors=2), 3),
    (_totals(errors=2, skipped=1), 3),
])
def test_exit_status_is_1_only_for_failures(totals, code):
    assert exit_status(totals) == code


def test_findings_come_most_specific_first():
    found = [Finding("schema", "must", "chat.completion.chunk event[3] $.choices[0].delta.role: None"),
             Finding("error_form", "should", "the error body has none of the accepted forms"),
             Finding("usage_total_is_sum", "should", "$.usage.total_tokens: 9 != 4 + 4"),
             Finding("stream_done_terminator", "should", "stream: no data: [DONE] terminator"),
             Finding("json", "must", "event[5] data is not JSON"),
             Finding("stream_text_non_empty", "must", "stream: the concatenated delta contents are empty"),
             Finding("status", "advisory", "HTTP 400, [401, 403] preferred")]
    assert [f.check for f in ordered(found)] == [
        "stream_text_non_empty", "json", "schema",  # must first: a named check, then JSON, then the schema
        "usage_total_is_sum", "stream_done_terminator", "error_form",  # should, in the order found
        "status"]


# --- the strength of each finding, as evaluate.py gives it --------------------------------------------------


def _judge(case_id: str, status: int, body: str, model: Any = None) -> list[Finding]:
    case = next(c for c in load_cases() if c.id == case_id)
    exchange = Exchange("POST", "http://x/", {}, {"model": "m", "max_tokens": 8}, None, status,
                        {"content-type": "application/json"}, body, False)
    return evaluate_steps(CaseItem(case, model, "m"), exchange)


def test_a_refused_token_answered_400_warns_advisory_and_answered_200_fails():
    error = '{"error": {"message": "No connected db.", "type": "auth_error", "code": "400"}}'
    findings = _judge("auth-wrong-token-chat", 400, error)
    assert [(f.check, f.strength) for f in findings] == [("status", "advisory")]
    assert outcome_of(findings) == "warned" and "HTTP 400, [401, 403] preferred" in findings[0].message
    assert _judge("auth-wrong-token-chat", 403, error) == []
    served = _judge("auth-wrong-token-chat", 200, '{"choices": [{"message": {"content": "hi"}}]}')
    assert [(f.check, f.strength) for f in served] == [("status", "must")]


def test_an_error_body_that_is_json_in_no_known_form_warns_and_one_that_is_not_json_fails():
    other_form = _judge("chat-unknown-model", 404, '{"detail": "model not found"}')
    assert [(f.check, f.strength) for f in other_form] == [("error_form", "should")]
    not_json = _judge("chat-unknown-model", 404, "<html>not found</html>")
    assert [(f.check, f.strength) for f in not_json] == [("error_body", "must")]
    assert outcome_of(not_json) == "failed"


def test_an_unstated_rejection_answered_200_warns_and_a_stated_one_fails():
    answer = '{"object": "chat.completion", "choices": [], "usage": {}}'
    (unstated,) = [f for f in _judge("chat-malformed-json", 200, answer) if f.check == "status"]
    assert unstated.strength == "should"  # the spec says nothing of a body that is not JSON
    (stated,) = [f for f in _judge("reasoning-hybrid-budget-equal-max-tokens-rejected", 200, answer)
                 if f.check == "status"]
    assert stated.strength == "must"  # "budget_tokens must be less than max_tokens"


def test_a_case_overrides_a_rule_s_strength_for_itself():
    stream = next(c for c in load_cases() if c.id == "anthropic-stream-multi-turn")
    assert stream.check_strengths["schema"].strength == "should"  # the spec shows no Anthropic stream
    plain = next(c for c in load_cases() if c.id == "anthropic-multi-turn")
    from conformance.findings import strength_of

    assert strength_of(stream, "schema") == "should" and strength_of(plain, "schema") == "must"
    assert strength_of(plain, "status") == plain.strength == "must"


def test_check_strengths_must_name_a_check_or_a_rule(tmp_path):
    source = next(p for p in (load_cases.__wrapped__.__defaults__[0]).glob("chat_completions.yaml"))
    text = source.read_text().replace("    strength_reason:", "    check_strengths: {no_such_rule: {strength: should, "
                                      "reason: a reason long enough to pass}}\n    strength_reason:", 1)
    (tmp_path / "cases.yaml").write_text(text)
    with pytest.raises(BadInput, match="check_strengths names 'no_such_rule'"):
        load_cases.__wrapped__(tmp_path)


# --- one root cause, one line ---------------------------------------------------------------------------------


def _record(case: str, model: str | None, outcome: str, *findings: tuple[str, str, str], **extra: Any
            ) -> dict[str, Any]:
    listed = [{"check": c, "strength": s, "message": m} for c, s, m in findings]
    first = ordered(Finding.from_dict(f) for f in listed)[0].text() if listed else ""
    return {"id": case, "model": model, "surface": extra.pop("surface", "chat_completions"),
            "model_type": "chat", "features": extra.pop("features", ["chat_completions"]), "strength": "must",
            "outcome": outcome, "message": extra.pop("message", first), "findings": listed, **extra}


def test_one_root_cause_on_eight_surfaces_is_one_line_with_eight_cases():
    body = "'{\"error\": {\"message\": \"No connected db.\", \"type\": \"auth_error\", \"code\": \"400\"}}'"
    surfaces = ["chat", "embeddings", "supervisor", "openai-responses", "serving-responses", "invocations",
                "anthropic", "gemini"]
    models = ["claude-sonnet-4-5", "gte-large-en", "gpt-5", "gpt-5-mini", "gpt-5-nano", "llama-4-maverick",
              "claude-opus-4-1", "gemini-3-1-pro"]
    records = [_record(f"auth-bearer-{s}", m, "failed",
                       ("status", "must", f"HTTP 400, expected 200; body: {body.replace('db.', 'db.')}"),
                       ("schema", "must", f"chat.completion $.model: 'system.ai.{m}' req_{i}a9f3 is wrong"))
               for i, (s, m) in enumerate(zip(surfaces, models, strict=True))]
    records.append(_record("chat-system-and-user", "gpt-5", "failed",
                           ("assistant_role", "must", "$.choices[0].message.role: 'user', expected 'assistant'")))
    records.append(_record("chat-multi-turn", "gpt-5", "warned",
                           ("usage_total_is_sum", "should", "$.usage.total_tokens: 19 != 4 + 14")))
    groups = group(records, "failed")
    assert [len(g.cases) for g in groups] == [8, 1]
    first = groups[0]
    assert first.check == "status" and first.strength == "must"
    assert "No connected db." in first.example and "HTTP 400" in first.key
    assert sorted(first.cases) == sorted(f"auth-bearer-{s}@{m}" for s, m in zip(surfaces, models, strict=True))
    assert "8 cases" in first.line()
    warned = group(records, "warned")
    assert [(g.check, g.cases) for g in warned] == [("usage_total_is_sum", ["chat-multi-turn@gpt-5"])]


def test_a_failed_case_groups_under_its_must_finding_not_schema_noise_nor_a_warning():
    record = _record("chat-stream-system-and-user", "gpt-5", "failed",
                     ("schema", "must", "chat.completion.chunk event[2] $.choices[0].delta.role: None is not "
                                        "of type 'string'"),
                     ("stream_first_delta_role", "should", "event[0].choices[0].delta.role: None"),
                     ("stream_text_non_empty", "must", "stream: the concatenated delta contents are empty"))
    (entry,) = group([record], "failed")
    assert entry.check == "stream_text_non_empty"


def test_normalise_masks_numbers_ids_and_model_names_but_keeps_the_status():
    a = normalise("[step 1] HTTP 400, expected 200; model system.ai.claude-sonnet-4-5 id chatcmpl-9f8e7d6c event[3]")
    b = normalise("HTTP 400, expected 200; model databricks-gpt-5-mini id chatcmpl-0a1b2c3d event[11]")
    assert a == b and "HTTP 400" in a
    assert normalise("HTTP 401") != normalise("HTTP 403")


def test_infrastructure_errors_group_by_message():
    records = [_record(f"c{i}", None, "error", message=f"infrastructure: ReadTimeout after {i + 2} attempt(s)")
               for i in range(3)]
    (entry,) = group(records, "error")
    assert len(entry.cases) == 3 and entry.check == "error"


# --- the certificate's profile rules (small synthetic summaries) ---------------------------------------------

CHAT = ["chat_completions"]
CHAT_AUTH = ["chat_completions", "auth.bearer", "errors.json"]


def _summary(records: list[dict[str, Any]], claims: Any = "all", unsupported: tuple[str, ...] = (),
             deselected: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"target": {"name": "t", "version": None, "url": "http://x"}, "totals": {},
            "claims": {"features": claims, "unsupported_features": list(unsupported)},
            "cases": records, "not_run": {"deselected": len(deselected or []), "budget_skipped": 0,
                                          "deselected_cases": deselected or []}, **extra}


def _chat_profile(records: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    return profiles(_summary(records, **kwargs))["chat_completions"]


def _passing() -> list[dict[str, Any]]:
    return [_record("chat-system-and-user", "gpt-5", "passed"),
            _record("auth-missing-token-chat", "gpt-5", "passed", features=CHAT_AUTH, surface="auth")]


def test_success_needs_every_core_feature_claimed_and_passed_and_allows_warnings():
    warned = _record("chat-multi-turn", "gpt-5", "warned", ("usage_total_is_sum", "should", "9 != 8"))
    chat = _chat_profile([*_passing(), warned])
    assert chat["result"] == "success" and "reason" not in chat
    assert chat["warned_cases"] == ["chat-multi-turn@gpt-5"] and chat["statistics"]["warned"] == 1
    assert "auth.bearer" in chat["core_features"]


def test_a_profile_not_claiming_bearer_auth_does_not_certify_an_anonymous_gateway():
    # the gateway answers without a key: the auth cases were not run because bearer auth is not claimed
    records = [_record("chat-system-and-user", "gpt-5", "passed"),
               _record("auth-missing-token-chat", "gpt-5", "skipped", features=CHAT_AUTH, surface="auth",
                       message="target does not claim feature(s): auth.bearer")]
    chat = _chat_profile(records, claims=["chat_completions", "errors.json"])
    assert chat["result"] == "partial"
    assert "core feature(s) not claimed: auth.bearer" in chat["reason"]
    assert "auth.bearer" in chat["unsupported_features"]


def test_a_claimed_bearer_auth_that_an_anonymous_gateway_breaks_is_a_failure():
    records = [_record("chat-system-and-user", "gpt-5", "passed"),
               _record("auth-missing-token-chat", "gpt-5", "failed", ("status", "must", "HTTP 200, expected 4xx"),
                       features=CHAT_AUTH, surface="auth")]
    chat = _chat_profile(records)
    assert chat["result"] == "failure" and "core features failed" in chat["reason"]
    assert chat["failed_cases"] == ["auth-missing-token-chat@gpt-5"]


def test_a_failed_extended_feature_is_partial():
    stream = _record("chat-stream-multi-turn", "gpt-5", "failed", ("stream_is_sse", "must", "not a stream"),
                     features=["chat_completions", "chat_completions.streaming"])
    chat = _chat_profile([*_passing(), stream])
    assert chat["result"] == "partial" and "chat_completions.streaming" in chat["reason"]


def test_an_infrastructure_error_or_a_claimed_skip_is_partial():
    error = _record("chat-multi-turn", "gpt-5", "error", message="infrastructure: ReadTimeout")
    assert _chat_profile([*_passing(), error])["result"] == "partial"
    skipped = _record("chat-av-video-url", "gemini-3-1-pro", "skipped", message="media URL (not reachable)",
                      features=["chat_completions", "audio_video.url"])
    chat = _chat_profile([*_passing(), skipped])
    assert chat["result"] == "partial" and "skipped" in chat["reason"]


def test_a_skip_for_an_unclaimed_extended_feature_keeps_success():
    skipped = _record("chat-stream-multi-turn", "gpt-5", "skipped", features=["chat_completions",
                                                                            "chat_completions.streaming"],
                      message="target does not claim feature(s): chat_completions.streaming")
    chat = _chat_profile([*_passing(), skipped], claims=["chat_completions", "auth.bearer", "errors.json"])
    assert chat["result"] == "success"
    assert "chat_completions.streaming" in chat["unsupported_features"]


def test_a_profile_with_nothing_judged_is_not_run():
    records = [_record("chat-system-and-user", "gpt-5", "skipped", message="token budget of 10 spent"),
               _record("chat-multi-turn", "gpt-5", "error", message="infrastructure: reset")]
    chat = _chat_profile(records)
    assert chat["result"] == "not-run" and "nothing judged" in chat["reason"]
    deselected = [{k: v for k, v in r.items() if k not in ("outcome", "message", "findings")} for r in _passing()]
    assert _chat_profile([], deselected=deselected)["result"] == "not-run"


def test_a_profile_none_of_whose_features_is_claimed_is_not_claimed():
    profile = profiles(_summary(_passing(), claims=["auth.bearer"]))["embeddings"]
    assert profile["result"] == "not-claimed"


def test_deselected_or_budget_skipped_cases_make_a_profile_partial_and_the_run_incomplete():
    deselected = [{"id": "chat-multi-turn", "model": "gpt-5", "surface": "chat_completions", "features": CHAT}]
    chat = _chat_profile(_passing(), deselected=deselected)
    assert chat["result"] == "partial" and "incomplete: 1 case(s) deselected" in chat["reason"]
    budget = _record("chat-multi-turn", "gpt-5", "skipped", message="token budget of 100 spent")
    chat = _chat_profile([*_passing(), budget])
    assert chat["result"] == "partial" and "1 skipped for the token budget" in chat["reason"]
    report = conformance_report(_summary(_passing(), deselected=deselected, incomplete=True))
    assert report["incomplete"] is True and report["not_run"] == {"deselected": 1, "budget_skipped": 0}


# --- end to end: warned, --strict, incomplete, in every output -------------------------------------------------


def test_a_should_deviation_warns_with_its_evidence_everywhere_and_exits_0(shared_run):
    result = shared_run(*USAGE_SUM_WRONG)
    assert result.code == 0, result.out[-2000:]
    summary = result.summary
    warned = [c for c in summary["cases"] if c["outcome"] == "warned"]
    assert warned and summary["totals"]["warned"] == len(warned) and summary["totals"]["failed"] == 0
    assert summary["warnings_by_strength"] == {"should": len(warned), "advisory": 0}
    assert summary["failures_by_strength"]["must"] == 0
    for case in warned:
        assert case["message"].startswith("[usage_total_is_sum] $.usage.total_tokens")
        assert case["findings"][0] == {"check": "usage_total_is_sum", "strength": "should",
                                       "message": case["message"].removeprefix("[usage_total_is_sum] ")}
    assert re.search(r"warned, 0 skipped.*\(0 must failures; \d+ should, 0 advisory warnings\)", result.out)
    assert re.search(r"warnings: \d+ case\(s\), 1 root cause\(s\)", result.out)
    md = (result.run_dir / "summary.md").read_text()
    assert "### Failures (0 cases, 0 root causes)" in md
    assert re.search(rf"### Warnings \({len(warned)} cases, 1 root cause\)", md)
    assert re.search(r"^- \[usage_total_is_sum\] \(should\) \$\.usage\.total_tokens: \d+ != ", md, re.M)
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    chat = report["profiles"]["chat_completions"]
    assert chat["statistics"]["warned"] > 0 and chat["warned_cases"] and chat["failed_cases"] == []
    assert chat["result"] == "partial" and chat["reason"].startswith("incomplete")  # -k: an incomplete run
    page = (result.run_dir / "report.html").read_text()
    assert "data-outcome='warned'" in page and '<li class="cf-finding" data-strength="should">' in page


def test_strict_counts_warnings_as_failures(run_cli):
    result = run_cli("run", "--strict", "--deviation", "usage-sum-wrong", "-k", "chat-system-and-user",
                     "--html", "none")
    assert result.code == 1
    summary = result.summary
    assert summary["strict"] is True and summary["totals"]["warned"] == 0
    failed = [c for c in summary["cases"] if c["outcome"] == "failed"]
    assert failed and summary["failures_by_strength"]["should"] == len(failed)
    assert all(c["findings"][0]["strength"] == "should" for c in failed)


def test_a_must_deviation_fails_and_exits_1(shared_run):
    result = shared_run(*ROLE_NOT_ASSISTANT)
    assert result.code == 1
    failed = [c for c in result.summary["cases"] if c["outcome"] == "failed"]
    assert failed and all(c["message"].startswith("[assistant_role]") for c in failed)
    assert result.summary["failures_by_strength"]["must"] == len(failed)


def test_xdist_workers_forward_findings_and_deselections(run_cli):
    result = run_cli("run", "-n", "2", "--deviation", "usage-sum-wrong", "-k", "chat-system-and-user and not client",
                     "--html", "none")
    assert result.code == 0
    summary = result.summary
    assert {c["outcome"] for c in summary["cases"]} == {"warned"}
    assert all(c["findings"] for c in summary["cases"])
    assert summary["incomplete"] is True and summary["not_run"]["deselected"] > 500


def test_a_spent_token_budget_makes_the_run_incomplete(run_cli):
    budget = run_cli("run", "-k", "chat-system-and-user or chat-multi-turn", "--concurrency", "1",
                     "--token-budget", "1", "--html", "none")
    summary = budget.summary
    assert summary["not_run"]["budget_skipped"] > 0 and summary["incomplete"] is True
    md = (budget.run_dir / "summary.md").read_text()
    assert "**Incomplete run**" in md and "skipped for the token budget" in md
    report = yaml.safe_load((budget.run_dir / "conformance-report.yaml").read_text())
    assert report["incomplete"] is True and report["not_run"]["budget_skipped"] > 0
