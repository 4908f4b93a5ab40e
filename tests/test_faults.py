"""Under rate limits and injected transport faults the verdict is still about the gateway: 0 failed."""

from __future__ import annotations

import httpx
from test_secrets import CROSS_SECTION

from conformance.gateway.faults import FaultConfig
from conformance.gateway.server import ThreadedGateway

TOKEN = "fault-test-token-0123456789"


def test_faults_and_rate_limit_never_become_failures(run_cli):
    # a cross-section (every surface, stream and client, and refusals), under a limit 8 lanes always meet
    faults = FaultConfig(rate_limit=10, fault_rate=0.25, seed=7)
    with ThreadedGateway(TOKEN, faults=faults) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "--concurrency", "8", "-k", CROSS_SECTION,
                         env={"T": TOKEN})
        stats = httpx.get(gateway.url + "/_reference/stats").json()
    totals = result.summary["totals"]
    assert totals["failed"] == 0, [c["message"] for c in result.summary["cases"] if c["outcome"] == "failed"][:3]
    unclaimed = [c for c in result.summary["cases"] if c["outcome"] == "skipped"]
    assert all(c["surface"] == "usage" and "SQL warehouse" in c["message"] for c in unclaimed)  # no sql: in --url
    assert totals["passed"] + totals["errors"] + len(unclaimed) == len(result.summary["cases"])
    assert sum(stats["faults"].values()) > 20, stats  # the faults really happened, and were retried
    assert stats["throttled"] > 0, stats  # and the rate limit was met (16 to 19 of about 120 requests, idle)
    for case in result.summary["cases"]:
        if case["outcome"] == "error":
            assert "no answer after 5 attempt(s)" in case["message"], case


def test_rate_limit_is_learnt_from_429s(run_cli):
    with ThreadedGateway(TOKEN, faults=FaultConfig(rate_limit=12)) as gateway:  # under a loaded machine's rate
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "-m", "chat_completions",
                         "-k", "not client and claude-sonnet-4-5", env={"T": TOKEN})
        stats = httpx.get(gateway.url + "/_reference/stats").json()
    assert result.code == 0
    assert stats["throttled"] > 0, "the run must have met the limit"
    assert stats["throttled"] < 0.25 * stats["requests"], f"the pacer did not adapt: {stats}"


def test_max_rps_is_a_global_ceiling(run_cli):
    import time

    with ThreadedGateway(TOKEN) as gateway:
        started = time.monotonic()
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "--max-rps", "40", "-n", "2",
                         "-k", "chat-system-and-user", env={"T": TOKEN})
        elapsed = time.monotonic() - started
        stats = httpx.get(gateway.url + "/_reference/stats").json()
    assert result.code == 0
    assert elapsed >= (stats["requests"] - 1) / 40, f"{stats['requests']} requests in {elapsed:.2f}s exceed 40 rps"


def test_token_budget_skips_model_calls_once_spent(run_cli):
    result = run_cli("run", "--token-budget", "150", "-k", CROSS_SECTION)  # every surface and client, refusals
    cases = result.summary["cases"]
    skipped = [c for c in cases if c["outcome"] == "skipped"]
    assert skipped and all("token budget of 150 spent" in c["message"] for c in skipped)
    negatives = {"chat-unknown-model", "chat-malformed-json", "auth-missing-token-chat", "auth-wrong-token-chat"}
    assert all(c["outcome"] == "passed" for c in cases if c["id"] in negatives), "negative cases spend nothing"
    spent = result.summary["tokens"]["prompt"] + result.summary["tokens"]["completion"]
    assert 150 <= spent < 150 + 100
    assert result.code == 0
