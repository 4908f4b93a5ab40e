"""The reference gateway keeps an idle keep-alive connection open longer than the gateways certified against it
keep one in their pools.

Found certifying LiteLLM 1.106.2: with uvicorn's default (5 s), LiteLLM's aiohttp pool (120 s) sent requests on
connections the reference gateway was closing, and cases that pass alone failed at random in full runs with
"OpenAIException - Connection error" (vision-total-bytes-over-limit on four models, different ones each run).
"""

from __future__ import annotations

import http.client
import json
import time

from conformance.gateway.server import KEEP_ALIVE_S, ThreadedGateway

LITELLM_POOL_KEEPALIVE_S = 120  # litellm/constants.py AIOHTTP_KEEPALIVE_TIMEOUT; aiohttp's own default is 15


def test_an_idle_connection_is_still_open_after_the_old_timeout():
    body = json.dumps({"model": "system.ai.llama-4-maverick", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 3})
    headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
    with ThreadedGateway("tok") as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for pause in (0, 6):  # 6 s: past uvicorn's default of 5
                time.sleep(pause)
                conn.request("POST", "/ai-gateway/mlflow/v1/chat/completions", body, headers)
                answer = conn.getresponse()
                answer.read()
                assert answer.status == 200
                assert answer.getheader("connection", "").lower() != "close"
        finally:
            conn.close()


def test_the_keep_alive_outlasts_the_pools_of_certified_gateways():
    assert KEEP_ALIVE_S > LITELLM_POOL_KEEPALIVE_S
