"""What goes over the wire and back: a request body's JSON is exactly json.dumps's, however its long strings are
encoded (conformance/client.py encode_json), and what a helper hands to pytest keeps every request parameter."""

from __future__ import annotations

import json

import pytest

from conformance.client import LIGHT_LIMIT, Exchange, encode_json

LONG = "A" * (LIGHT_LIMIT + 1)


@pytest.mark.parametrize("body", [
    {"model": "m", "max_tokens": 5},
    {"messages": [{"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + LONG}}] * 3}]},
    {"text": 'quote " backslash \\ newline \n é \u2028 ' * 5000, "n": [1, 2.5, None, True]},
    ["top-level list", LONG, {"nested": [LONG + "B"]}],
    LONG,
])
def test_encoded_body_is_the_json_of_the_body(body):
    assert encode_json(body) == json.dumps(body).encode()
    assert encode_json(body) == json.dumps(body).encode()  # and again, from the per-process cache


def test_a_body_that_looks_like_the_placeholder_is_sent_as_it_is():
    from conformance import client

    body = {"a": LONG, "b": client._MARK + "0", "c": f'"{client._MARK}0"'}
    assert json.loads(encode_json(body)) == body


def test_a_lightened_exchange_keeps_every_parameter_and_cuts_only_long_strings():
    body = {"model": "m", "max_tokens": 7, "input": ["short", "x" * 100],
            "messages": [{"content": [{"image_url": {"url": LONG}}]}]}
    earlier = Exchange("POST", "u", {}, {"image": LONG}, None, 200, {}, "{}", False)
    exchange = Exchange("POST", "u", {}, body, None, 200, {}, "{}", False, previous=[earlier]).lightened()
    sent = exchange.request_body
    assert sent["model"] == "m" and sent["max_tokens"] == 7 and sent["input"] == ["short", "x" * 100]
    url = sent["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("A" * 200) and url.endswith(f"({len(LONG)} characters)") and len(url) < 300
    assert earlier.request_body["image"].endswith(f"({len(LONG)} characters)")
