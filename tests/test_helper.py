"""Read-ahead in helper processes (conformance/helper.py): same verdicts as inline, one budget and one rate for
every process, and a helper that dies leaves infrastructure errors, never failures or a hung run."""

from __future__ import annotations

import os
import signal

from test_secrets import CROSS_SECTION

from conformance import cases as case_data
from conformance.client import RetryPolicy
from conformance.config import TargetOptions, resolve_target
from conformance.gateway.faults import FaultConfig
from conformance.gateway.server import ThreadedGateway
from conformance.helper import Helper
from conformance.pacing import make_store

TOKEN = "helper-test-token-0123456789"


def test_helper_lanes_give_the_inline_verdicts(run_cli, harness):
    # inline: the harness performs every item one at a time in its own process, as a run with --concurrency 1 does;
    # every official client case and each surface's answers, streams and refusals (the whole matrix through the
    # helpers: tests/test_secrets.py and tests/test_faults.py, whole runs with --concurrency 8)
    helped = run_cli("run", "-k", CROSS_SECTION, "--concurrency", "8")
    assert helped.code == 0, helped.out[-2000:]
    inline = harness.baseline([harness.by_id[test] for test in helped.outcomes()])
    assert helped.outcomes() == {test: verdict.outcome for test, verdict in inline.items()}
    assert any(c["id"].startswith("client-") for c in helped.summary["cases"])  # the client lane ran
    assert {c["surface"] for c in helped.summary["cases"]} >= {"chat_completions", "anthropic_messages",
                                                              "gemini_generate_content", "embeddings"}


def test_token_budget_is_one_budget_for_every_lane(run_cli):
    result = run_cli("run", "--token-budget", "150", "--concurrency", "8", "-k", CROSS_SECTION)
    cases = result.summary["cases"]
    skipped = [c for c in cases if c["outcome"] == "skipped"]
    assert any(c["id"].startswith("client-") for c in skipped), "the client lane saw the spent budget"
    assert any(not c["id"].startswith("client-") for c in skipped), "the HTTP lane saw the spent budget"
    assert all("token budget of 150 spent" in c["message"] for c in skipped)
    spent = result.summary["tokens"]["prompt"] + result.summary["tokens"]["completion"]
    assert 150 <= spent < 150 + 8 * 100  # at most the requests in flight when it ran out overshoot it
    assert result.code == 0


def test_a_helper_that_dies_leaves_infrastructure_errors():
    with ThreadedGateway(TOKEN, faults=FaultConfig(latency_s=5.0)) as gateway:
        target = resolve_target(TargetOptions(url=gateway.url, token_env="HELPER_T"), {"HELPER_T": TOKEN})
        items = [i for i in case_data.expand(case_data.load_cases(), target)
                 if i.case.id == "chat-system-and-user"][:2]
        assert items
        helper = Helper(target, RetryPolicy(attempts=1), 4, None, None, make_store(None, shared=True))
        try:
            helper.submit([(f"node-{n}", "case", item) for n, item in enumerate(items)])
            assert helper.pid is not None
            os.kill(helper.pid, signal.SIGKILL)  # while its requests wait on the slow gateway
            performed = [helper.result(f"node-{n}") for n in range(len(items))]
        finally:
            helper.close()
    for p in performed:
        assert p.exchange is None and p.failure is None
        assert p.infra and "helper process exited" in p.infra, p.infra

