"""The self-test control path of the reference gateway: only a gateway started in self-test mode answers it, it
refuses switches that do not exist, and it reports the switches each answer consulted."""

from __future__ import annotations

import httpx

from conformance.gateway.selftest import CONTROL_PATH
from conformance.gateway.server import ThreadedGateway

TOKEN = "control-token"
CHAT = {"model": "databricks-claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def _chat(url: str, token: str = TOKEN) -> httpx.Response:
    return httpx.post(f"{url}/ai-gateway/mlflow/v1/chat/completions", json=CHAT,
                      headers={"Authorization": f"Bearer {token}"})


def test_a_gateway_a_run_starts_has_no_control_path():
    with ThreadedGateway(TOKEN) as gateway:
        assert httpx.post(gateway.url + CONTROL_PATH, json={"switches": ["usage-missing"]}).status_code == 404
        assert gateway.state.consulted == set()  # and notes nothing
        assert "usage" in _chat(gateway.url).json()


def test_switches_are_set_and_consultations_reported():
    with ThreadedGateway(TOKEN, self_test=True) as gateway:
        control = gateway.url + CONTROL_PATH
        assert httpx.post(control, json={"switches": ["no-such-switch"]}).status_code == 400
        assert httpx.post(control, content=b"not json").status_code == 400
        assert httpx.post(control, json={"switches": ["usage-missing"]}).json() == {"switches": ["usage-missing"]}
        assert "usage" not in _chat(gateway.url).json()
        consulted = set(httpx.get(control).json()["consulted"])
        # with a switch on, the switched-off mutators are not tried (only the baseline's consultations are read)
        assert {"usage-missing", "extra-fields"} <= consulted and "wrong-object-name" not in consulted
        assert httpx.post(control, json={"switches": []}).status_code == 200
        assert "usage" in _chat(gateway.url).json()
        assert {"usage-missing", "wrong-object-name", "extra-fields"} <= set(httpx.get(control).json()["consulted"])
        assert httpx.post(control, json={"switches": ["usage-missing"]}).status_code == 200
        # a refusal asks the auth switches; an accepted request does not (asked where they change the answer)
        assert "auth-not-enforced" not in consulted
        assert _chat(gateway.url, token="wrong").status_code == 401
        assert {"auth-not-enforced", "auth-403"} <= set(httpx.get(control).json()["consulted"])
        assert httpx.get(control).json() == {"switches": ["usage-missing"], "consulted": []}


def test_the_control_takes_switches_only():
    with ThreadedGateway(TOKEN, self_test=True) as gateway:
        control = gateway.url + CONTROL_PATH
        for bad in ({"stream_delay": 0.002}, {"switch": []}, ["usage-missing"], "x"):
            answer = httpx.post(control, json=bad)
            assert answer.status_code == 400 and "switches" in answer.json()["message"], bad
        assert gateway.state.stream_delay_s == 0.0
