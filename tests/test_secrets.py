"""The token never appears in any report, snapshot, log, attachment or exception text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from leaks import leaks_under

from conformance.gateway.faults import FaultConfig
from conformance.gateway.server import ThreadedGateway

TOKEN = "conformance-distinctive-secret-0123456789abcdef"
FORMS = [TOKEN, base64.b64encode(f"token:{TOKEN}".encode()).decode(),
         base64.b64encode(f"notoken:{TOKEN}".encode()).decode()]

# A cross-section of the case data (-k): every official client case, and on each surface a plain answer, a stream
# and a refusal (an error body), one model per family; a should and a must rule that quote bodies when broken
# (usage, the thinking budget). What a run writes for a case depends on its surface, its lane and its outcome,
# not on which of a surface's cases it is: a whole run with a token is scanned once (bearer, below), and runs
# whose difference is how the token reaches the run (basic auth, the reference gateway's token) are scanned on
# this selection, which still writes every kind of output on every lane. tests/test_helper.py uses it too.
_CROSS_CASES = ("client", "chat-system-and-user", "chat-stream-system-and-user", "chat-unknown-model",
                "chat-malformed-json", "chat-truncated-max-tokens", "anthropic-multi-turn",
                "anthropic-stream-multi-turn", "anthropic-unknown-model", "anthropic-thinking-stream",
                "gemini-multi-turn", "gemini-stream-multi-turn", "gemini-unknown-model", "embeddings-list-input",
                "embeddings-empty-list", "openai-responses-multi-turn", "openai-responses-stream-multi-turn",
                "serving-responses-system-and-user", "serving-responses-stream", "supervisor-system-and-user",
                "supervisor-stream-user-message", "supervisor-input-missing", "invocations-sdk-query",
                "tags-valid-documented", "tags-not-json", "auth-basic-chat", "auth-wrong-token-chat",
                "auth-missing-token-chat", "reasoning-hybrid-thinking",
                "reasoning-hybrid-budget-above-max-tokens-rejected")
_CROSS_MODELS = ("claude-sonnet-4-5", "gpt-oss-120b", "gemini-3-1-pro", "gte-large-en")
_UNMODELLED = ("chat-unknown-model", "chat-malformed-json", "anthropic-unknown-model", "gemini-unknown-model")
CROSS_SECTION = (f"(({' or '.join(_CROSS_CASES)}) and ({' or '.join(_CROSS_MODELS)})) "
                 f"or {' or '.join(_UNMODELLED)}")


def leaks_in(path: Path) -> list[str]:
    """Every form of the token in a file under `path`, as written or base64-encoded (tests/leaks.py)."""
    return leaks_under(FORMS, path)


# Allure's HTML is made on the cross-section (basic, every lane and surface): it is made from the allure-results,
# which the whole run (bearer) writes and which are scanned there too
@pytest.mark.parametrize(("auth", "select", "html"), [("bearer", (), "builtin"),
                                                      ("basic", ("-k", CROSS_SECTION), "auto")],
                         ids=["bearer", "basic"])
def test_token_is_nowhere_in_run_outputs(run_cli, auth, select, html):
    # The gateway reflects the credentials into every body and error message, and some checks fail so
    # that failure messages quote bodies: every path by which a token could be written is exercised, on every
    # case (bearer) and on a cross-section of every lane and surface with the other form of the credential.
    switches = ["echo-credentials", "error-body-unstructured", "usage-sum-wrong", "thinking-budget-not-validated"]
    faults = FaultConfig(fault_rate=0.2, seed=3)  # retries and infrastructure messages must not leak either
    with ThreadedGateway(TOKEN, switches, faults) as gateway:
        # the default read-ahead: requests go from helper processes (conformance/helper.py)
        result = run_cli("run", "--url", gateway.url, "--token-env", "SECRET_TOKEN", "--auth", auth,
                         "--concurrency", "8", *select, env={"SECRET_TOKEN": TOKEN}, html=html)
    assert result.code == 1  # the deviations fail and warn cases, so bodies are quoted in their messages
    assert result.summary["totals"]["failed"] > 0
    assert any("x_echo" in c["message"] or "***" in c["message"] for c in result.summary["cases"])
    assert leaks_in(result.reports) == []
    assert not any(form in result.out + result.err for form in FORMS)


def test_reference_run_token_is_nowhere(run_cli, monkeypatch):
    # the embedded gateway's token, given in its variable, echoed into every body (inline: --concurrency 1)
    monkeypatch.setenv("CONFORMANCE_REFERENCE_TOKEN", TOKEN)
    result = run_cli("run", "--deviation", "echo-credentials", "-k", CROSS_SECTION, html="auto")
    assert result.code == 0
    assert any(c["id"].startswith("client-") for c in result.summary["cases"])
    assert leaks_in(result.reports) == []
    assert not any(form in result.out + result.err for form in FORMS)


def test_the_scan_finds_a_token_the_single_file_report_holds_base64_encoded(tmp_path):
    """Allure's single-file report keeps every attachment base64-encoded: the scan decodes what it reads, or a
    report that leaks would pass. A token at each of the three offsets a base64 encoder can put it is found."""
    for offset in range(3):
        attachment = f"{'x' * offset}request headers: Authorization: Bearer {TOKEN}\n".encode()
        blob = base64.b64encode(attachment).decode()
        page = tmp_path / f"report-{offset}" / "index.html"
        page.parent.mkdir()
        page.write_text(f'<script src="data:text/javascript;base64,{blob}"></script>'
                        f'<script>d("widgets/statistic.json","eyJ0b3RhbCI6NjZ9"),d("data/attachments/a.txt","{blob}")'
                        "</script>")
        assert TOKEN not in page.read_text()
        assert leaks_in(page.parent) == [f"{page}: {TOKEN[:12]}..."]
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "index.html").write_text(f'd("a","{base64.b64encode(b"no secret here, only words " * 4).decode()}")')
    assert leaks_in(clean) == []
