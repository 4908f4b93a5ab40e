"""The reference gateway's output deviations are named mutators of conformant answers (gateway/mutators.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conformance.gateway import mutators
from conformance.gateway.app import create_app
from conformance.gateway.behaviours import switches
from conformance.gateway.common import GatewayState

GATEWAY = Path(mutators.__file__).parent
TOKEN = "mutator-test-token"


def _switches_read_in_code() -> set[str]:
    """The switches the gateway's modules decide on where they read a request (`on("name")`)."""
    names: set[str] = set()
    for path in GATEWAY.glob("*.py"):
        names |= set(re.findall(r'on\("([a-z0-9-]+)"\)', path.read_text(encoding="utf-8")))
    return names


def test_every_mutator_is_a_declared_deviation_or_drift_switch():
    declared = switches()
    for entry in mutators.MUTATORS:
        assert entry.name in declared, f"mutator {entry.name} is no switch of behaviours.yaml"
        switch = declared[entry.name]
        assert not switch.conformant or switch.drifts, f"{entry.name}: a variation is no mutator"


def test_every_switch_is_implemented_once():
    """A switch nothing implements would prove nothing; one that is both a mutator and a decision in the code
    would break two rules."""
    read = _switches_read_in_code()
    for name in switches():
        how = "twice" if name in read else "nowhere"
        assert (name in read) != (name in mutators.names()), f"{name}: implemented {how}"


def _client(*names: str) -> TestClient:
    return TestClient(create_app(GatewayState(TOKEN, frozenset(names))), raise_server_exceptions=False)


CHAT = ("/ai-gateway/mlflow/v1/chat/completions",
        {"model": "system.ai.claude-sonnet-4-5", "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]})
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _answer(client: TestClient, stream: bool = False) -> str:
    path, body = CHAT
    return client.post(path, json={**body, "stream": stream}, headers=HEADERS).text


@pytest.mark.parametrize("name", sorted({m.name for m in mutators.MUTATORS if m.target.startswith("chat.")}))
def test_each_chat_mutator_changes_the_truncated_answer_or_its_stream(name):
    """With its switch on, a chat mutator changes the conformant answer to a short request or its stream (a
    reasoning mutator changes a reasoning answer: there, the hybrid model with thinking). The stream asks for its
    usage (stream_options.include_usage, as OpenAI-compatible clients do), so a usage chunk's mutators show."""
    path, body = CHAT
    if name.startswith("reasoning-"):
        body = {**body, "max_tokens": 1100, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    if name == "stream-empty-deltas":  # a cut stream may have no text: the mutator leaves it as it is
        body = {**body, "max_tokens": 64}
    plain, changed = _client(), _client(name)

    def both(stream: bool) -> tuple[str, str]:
        sent = {**body, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}
        return (re.sub(r'"created": \d+', "", plain.post(path, json=sent, headers=HEADERS).text),
                re.sub(r'"created": \d+', "", changed.post(path, json=sent, headers=HEADERS).text))

    assert any(a != b for a, b in (both(False), both(True))), f"{name} changed neither answer"


def test_mutate_applies_only_the_switches_that_are_on_in_definition_order():
    client = _client("usage-sum-wrong", "usage-missing")
    body = json.loads(_answer(client))
    assert "usage" not in body  # usage-sum-wrong ran first (defined first), then usage-missing removed it
    body = json.loads(_answer(_client("usage-sum-wrong")))
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] + 1
    body = json.loads(_answer(_client()))
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["choices"][0]["finish_reason"] == "length"


def _consulted(state: GatewayState, path: str, body: dict) -> set[str]:
    """The switches a self-test gateway notes as consulted while answering one request (selftest.py)."""
    client = TestClient(create_app(state), raise_server_exceptions=False)
    state.consulted.clear()
    assert client.post(path, json=body, headers=HEADERS).status_code == 200
    return set(state.consulted)


EMBEDDINGS = "/ai-gateway/mlflow/v1/embeddings"


def test_a_switched_off_mutator_is_consulted_exactly_where_it_would_change_the_answer():
    """The harness performs an item under a switch only where its baseline answer (no switch on) consulted it:
    a mutator that would change the answer must be noted with its switch off, one that would not must not be."""
    state = GatewayState(TOKEN, self_test=True)
    path, body = CHAT
    chat = _consulted(state, path, body)
    assert {"usage-sum-wrong", "usage-missing", "wrong-object-name", "finish-reason-stop-when-truncated"} <= chat
    assert not chat & {"reasoning-summary-empty", "wrong-chunk-object", "stream-not-sse"}  # not this answer
    stream = _consulted(state, path, {**body, "stream": True})
    assert {"stream-not-sse", "wrong-chunk-object", "stream-no-done"} <= stream
    # building the completion a stream-not-sse stream would send is a trial, not a question of that answer
    assert "wrong-object-name" not in stream
    one = _consulted(state, EMBEDDINGS, {"model": "system.ai.gte-large-en", "input": ["one"]})
    two = _consulted(state, EMBEDDINGS, {"model": "system.ai.gte-large-en", "input": ["one", "two"]})
    assert "embeddings-order-reversed" not in one and "embeddings-vector-lengths-differ" not in one
    assert {"embeddings-order-reversed", "embeddings-vector-lengths-differ", "embeddings-index-wrong"} <= two


def test_a_gateway_not_in_self_test_mode_notes_nothing():
    state = GatewayState(TOKEN)
    path, body = CHAT
    TestClient(create_app(state)).post(path, json=body, headers=HEADERS)
    assert state.consulted == set()
