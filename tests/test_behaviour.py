"""Issue 21's behaviour: answers that never cross (concurrent cases), streams that stream, usage that adds up,
latency in the reports. The deviation matrix (test_deviations.py) proves each check fails under its deviation and
passes under every variation; this file proves what the matrix cannot see: that concurrent requests really are
in flight together, that answers are timed event by event, that a stream paced like a model's is *measured* and
passes (not merely too fast to judge), that a buffered one is caught at that pace, and the latency figures."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_reports import _Page

from conformance import cases as case_data
from conformance import concurrency, latency
from conformance.client import GatewayClient, RetryPolicy
from conformance.config import TargetOptions, resolve_target
from conformance.evaluate import evaluate_steps
from conformance.findings import outcome_of
from conformance.gateway.server import ThreadedGateway
from conformance.pacing import Pacer, TokenBudget, make_store
from conformance.runner import Runtime
from conformance.schemas import validate
from conformance.sse import parse_sse
from conformance.timing import Timing, event_ends, stream_profile

TOKEN = "behaviour-test-token-0123456789"
PACE_S = 0.008  # the realistic-delay mode's pace in these tests: 160 words in about 1.3 s


def runtime_for(url: str, concurrency: int = 8) -> Runtime:
    target = resolve_target(TargetOptions(url=url, token_env="T", concurrency=concurrency), {"T": TOKEN})
    store = make_store(None, shared=False)
    return Runtime(target, Pacer(None, store), TokenBudget(None, store), RetryPolicy(attempts=2))


def items_of(runtime: Runtime, prefix: str) -> list[case_data.CaseItem]:
    items = [i for i in case_data.expand(case_data.load_cases(), runtime.target) if i.case.id.startswith(prefix)]
    assert items, prefix
    return items


# --- timing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "data: a\n\ndata: b\n\n",
    "data: a\r\n\r\ndata: b\r\n\r\n",
    "data: a\r\rdata: b\r\r",
    "\ufeff: comment\n\nevent: x\ndata: {\ndata: 1}\n\nid: 3\n\ndata: é✓\n\ndata: last without a blank line",
    "event: only a name\n\ndata: [DONE]\n\n",
])
def test_event_ends_frame_a_body_as_the_sse_parser_does(text):
    ends, events = event_ends(text), parse_sse(text)
    assert len(ends) == len(events)
    data = text.encode()
    assert ends == sorted(ends) and ends[-1] <= len(data)
    for end, event in zip(ends, events, strict=True):  # each event's last data line lies before its end
        assert event.data.split("\n")[-1].encode() in data[:end]


def test_an_event_arrives_with_the_read_that_completes_it():
    timing = Timing(0.01, 0.5, ((10, 0.01), (25, 0.2), (40, 0.5)))
    assert [timing.at_byte(b) for b in (5, 10, 11, 25, 40, 99)] == [0.01, 0.01, 0.2, 0.2, 0.5, 0.5]


def test_answers_are_timed_event_by_event_when_the_gateway_paces_them():
    with ThreadedGateway(TOKEN, stream_delay_s=PACE_S) as gateway:
        client = GatewayClient(runtime_for(gateway.url).target)
        try:
            body = {"model": "system.ai.claude-sonnet-4-5", "stream": True, "max_tokens": 64,
                    "messages": [{"role": "user", "content": "Say something, in 40 words."}]}
            streamed = client.send("/ai-gateway/mlflow/v1/chat/completions", model=None, body=body, stream=True)
            whole = client.send("/ai-gateway/mlflow/v1/chat/completions", model=None, body={**body, "stream": False})
        finally:
            client.close()
    profile = stream_profile(streamed)
    assert profile is not None and profile.content_events == 40
    assert streamed.timing.ttfb_s < profile.first_content_s < profile.last_content_s <= streamed.timing.total_s
    assert profile.last_content_s - profile.first_content_s >= 39 * PACE_S * 0.9
    assert profile.ratio < 0.8  # the content came as it was made (a loaded machine may delay the first a little)
    assert whole.timing is not None and 0 < whole.timing.ttfb_s <= whole.timing.total_s
    assert stream_profile(whole) is None  # not a stream


# --- concurrency ----------------------------------------------------------------------------------------------


def test_concurrent_requests_are_all_in_flight_before_any_body_is_sent(monkeypatch):
    """Every write the client puts on the wire, in order: each request's headers (one write starting with the
    request line), then its body. All N requests' headers go out before any body does, so a gateway has all N in
    flight at once (on loopback, a write is in the peer's receive buffer when it returns)."""
    import httpcore._backends.sync as sync

    writes: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    original = sync.SyncStream.write

    def recording(self, buffer, timeout=None):  # type: ignore[no-untyped-def]
        with lock:
            writes.append((id(self), bytes(buffer[:5])))
        return original(self, buffer, timeout)

    monkeypatch.setattr(sync.SyncStream, "write", recording)
    with ThreadedGateway(TOKEN) as gateway:
        runtime = runtime_for(gateway.url, concurrency=6)
        try:
            item = items_of(runtime, "concurrent-isolation-chat")[0]
            performed = runtime.perform_case(item)
        finally:
            runtime.close()
    heads = [i for i, (_, start) in enumerate(writes) if start.startswith(b"POST ")]
    bodies = [i for i, (_, start) in enumerate(writes) if start.startswith(b"{")]
    assert len(heads) == len(bodies) == 6 and len({conn for conn, _ in writes}) == 6, writes
    assert max(heads) < min(bodies), f"a body went out before every request's headers: {writes}"
    group = [*performed.exchange.previous, performed.exchange]
    nonces = [e.nonce for e in group]
    assert len(set(nonces)) == 6 and all(len(n) == concurrency.NONCE_LENGTH for n in nonces)
    for exchange, nonce in zip(group, nonces, strict=True):  # each request carried its own nonce, and got it back
        assert nonce in json.dumps(exchange.request_body) and concurrency.NONCE not in json.dumps(exchange.request_body)
        assert nonce in exchange.text


def test_concurrent_cases_on_the_reference_gateway_pass_with_n_from_concurrency():
    with ThreadedGateway(TOKEN) as gateway:
        for setting, sent in ((4, 4), (1, 2), (64, concurrency.MAX_REQUESTS)):  # 1: still two at once
            runtime = runtime_for(gateway.url, concurrency=setting)
            try:
                for item in items_of(runtime, "concurrent-isolation-"):
                    performed = runtime.perform_case(item)
                    group = [*performed.exchange.previous, performed.exchange]
                    assert len(group) == sent, item.test_id
                    assert evaluate_steps(item, performed.exchange) == [], item.test_id
                    assert performed.usage and performed.usage[0] > 0  # every answer's tokens are spent
            finally:
                runtime.close()


# --- streams in time ------------------------------------------------------------------------------------------


def judge_streams(switches: tuple[str, ...] = (), stream_delay_s: float = 0.0) -> dict[str, tuple[str, object]]:
    """The incremental-stream cases against a reference gateway: test id -> (outcome, stream profile)."""
    out = {}
    with ThreadedGateway(TOKEN, switches, stream_delay_s=stream_delay_s) as gateway:
        runtime = runtime_for(gateway.url)
        try:
            for item in items_of(runtime, "stream-incremental-"):
                performed = runtime.perform_case(item)
                findings = evaluate_steps(item, performed.exchange)
                out[item.test_id] = (outcome_of(findings), stream_profile(performed.exchange), findings)
        finally:
            runtime.close()
    assert len(out) == 4
    return out


def test_a_stream_paced_like_a_model_is_measured_and_passes():
    for test, (outcome, profile, findings) in judge_streams(stream_delay_s=PACE_S).items():
        assert outcome == "passed", (test, findings)
        assert profile.last_content_s >= 1.0, f"{test}: too short to be judged ({profile})"  # min_duration_s
        assert profile.ratio < 0.5, (test, profile)


def test_a_stream_buffered_at_a_model_s_pace_is_caught():
    for test, (outcome, profile, findings) in judge_streams(("stream-buffered",), stream_delay_s=PACE_S).items():
        assert outcome == "warned", (test, findings)  # streaming_incremental is should: the spec implies streams
        assert [f.check for f in findings] == ["streaming_incremental"]
        assert profile.ratio > 0.95, (test, profile)


def test_the_fast_default_is_too_fast_to_judge_and_so_is_not_judged():
    """Sent as fast as it is made, a stream cannot be told from a buffered one: below min_duration_s (1 s: more
    than a loaded machine's stall) it is not judged, and passes."""
    for test, (outcome, profile, findings) in judge_streams().items():
        assert outcome == "passed", (test, findings, profile)
        assert profile.content_events >= 54, test


def test_a_role_chunk_then_a_late_first_token_is_measured_and_passes():
    judged = judge_streams(("stream-role-chunk-first",))
    outcome, profile, findings = judged["stream-incremental-chat@claude-sonnet-4-5"]
    assert outcome == "passed", findings
    assert profile.first_content_s >= 0.1 and profile.last_content_s >= 1.0  # measured, not too fast to judge


# --- latency in the reports -----------------------------------------------------------------------------------


def test_percentiles_interpolate():
    assert latency.percentile([1.0], 95) == 1.0
    assert latency.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert latency.percentile([float(n) for n in range(1, 101)], 95) == pytest.approx(95.05)


def test_latency_is_aggregated_per_surface_and_model():
    cases = [{"surface": "chat_completions", "model": "m", "latency": {"ttfb_s": t, "total_s": 2 * t, "stream": False}}
             for t in (0.1, 0.2, 0.3)]
    cases += [{"surface": "chat_completions", "model": "m",
               "latency": {"ttfb_s": 0.05, "total_s": 1.0, "stream": True, "first_content_s": 0.4}},
              {"surface": "auth", "model": None, "outcome": "passed"}]  # no latency record: not counted
    table = latency.aggregate(cases)
    entry = table["chat_completions"]["m"]
    assert entry["answers"] == 4 and entry["streams"] == 1
    assert entry["ttfb_s"] == {"p50": 0.15, "p95": pytest.approx(0.285)}
    assert entry["first_content_s"] == {"p50": 0.4, "p95": 0.4}
    assert "auth" not in table
    summary = {"latency": table, "cases": cases}
    md = "\n".join(latency.markdown(summary))
    assert "### Latency" in md and "| chat_completions | m | 4 (1 stream) | 150 ms / 285 ms |" in md


def test_latency_goes_into_the_allure_environment_beside_other_keys(tmp_path):
    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "environment.properties").write_text("target=reference\nlatency\\ old=x\n")
    summary = {"latency": {"chat_completions": {"m": {"answers": 1, "streams": 0, "ttfb_s": {"p50": 0.1, "p95": 0.1},
                                                      "total_s": {"p50": 0.2, "p95": 0.3}}}}}
    latency.allure_environment(tmp_path, summary)
    lines = (results / "environment.properties").read_text().splitlines()
    assert lines[0] == "target=reference" and not any("old" in line for line in lines)
    assert lines[1] == ("latency\\ chat_completions\\ m=p50 / p95: TTFB 100 ms / 100 ms; total 200 ms / 300 ms "
                        "(1 answers)")


def test_a_run_reports_latency_in_summary_json_summary_md_and_html(run_cli):
    result = run_cli("run", "-k", "concurrent-isolation-chat or stream-incremental or usage-stream-consistent-gemini",
                     "--concurrency", "4", "--html", "builtin")
    assert result.code == 0, result.out[-2000:]
    summary = result.summary
    assert validate("summary", summary) == []
    assert {c["outcome"] for c in summary["cases"]} == {"passed"}
    by_id = {c["id"]: c for c in summary["cases"]}
    assert by_id["concurrent-isolation-chat"]["latency"]["requests"] == 4
    stream = by_id["stream-incremental-gemini"]["latency"]
    assert stream["stream"] and stream["content_events"] >= 20 and 0 < stream["first_last_ratio"] <= 1
    table = summary["latency"]
    assert set(table) == {"chat_completions", "responses_supervisor", "anthropic_messages", "gemini_generate_content"}
    assert table["gemini_generate_content"]["gemini-3-1-pro"]["streams"] == 2
    md = (result.run_dir / "summary.md").read_text()
    assert "### Latency" in md and "| gemini_generate_content | gemini-3-1-pro |" in md
    page = _Page()
    page.feed((result.run_dir / "report.html").read_text())
    assert "latency" in page.ids


def test_stream_delay_is_for_the_reference_gateway_only(run_cli):
    result = run_cli("run", "--url", "http://127.0.0.1:9", "--stream-delay", "0.01")
    assert result.code == 2 and "--stream-delay applies to the reference gateway only" in result.err
    assert "Traceback" not in result.err


def test_a_nonce_placeholder_needs_a_concurrent_case(tmp_path: Path):
    from conformance.errors import BadInput

    source = (case_data.CASES_DIR / "behaviour.yaml").read_text()
    broken = tmp_path / "cases"
    broken.mkdir()
    (broken / "behaviour.yaml").write_text(source.replace("    concurrent: {}\n", "", 1))
    with pytest.raises(BadInput, match="a concurrent case has one request, with \\{nonce\\} in its body"):
        case_data.load_cases(broken)


def test_diff_lists_what_got_slower_without_calling_it_a_regression(tmp_path, capsys):
    from conformance.cli import main

    def run(name: str, ttfb: float) -> Path:
        cases = [{"id": "c", "model": "m", "surface": "chat_completions", "outcome": "passed",
                  "latency": {"ttfb_s": ttfb, "total_s": ttfb + 0.01, "stream": False}}]
        folder = tmp_path / name
        folder.mkdir()
        summary = {"cases": cases, "totals": {"passed": 1}, "latency": latency.aggregate(cases)}
        (folder / "summary.json").write_text(json.dumps(summary))
        return folder

    fast, noisy, slow = run("fast", 0.10), run("noisy", 0.13), run("slow", 0.40)
    capsys.readouterr()
    assert main(["diff", str(fast), str(slow)]) == 0
    out = capsys.readouterr().out
    assert "slower: 2" in out and "chat_completions m: time to first byte p95 100 ms -> 400 ms" in out
    assert main(["diff", str(fast), str(noisy)]) == 0  # 30 ms more is noise, not slower
    assert "slower: 0" in capsys.readouterr().out
