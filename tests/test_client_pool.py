"""The suite's connection pool keeps few idle connections: a case of N concurrent requests opens N at once, and
with httpcore's default every one of them stayed open and was walked and polled twice by every later request (the
self-tests' harness measured ~9 % of its own CPU per item). Any number may still be open at once."""

from __future__ import annotations

import json
import threading

from conformance.client import KEEP_ALIVE_CONNECTIONS, GatewayClient
from conformance.config import REFERENCE_TOKEN_ENV, TargetOptions, resolve_target
from conformance.gateway.server import ThreadedGateway

TOKEN = "pool-token-0123456789"
BURST = 3 * KEEP_ALIVE_CONNECTIONS
STREAM = json.dumps({"model": "system.ai.llama-4-maverick", "messages": [{"role": "user", "content": "hi"}],
                     "max_tokens": 8, "stream": True}).encode()


def test_a_burst_of_concurrent_requests_leaves_only_the_kept_connections_open():
    # paced streams (50 ms a token): the burst's requests are in flight together
    with ThreadedGateway(TOKEN, stream_delay_s=0.05) as gateway:
        target = resolve_target(TargetOptions(), environ={REFERENCE_TOKEN_ENV: TOKEN})
        target.url = gateway.url
        client = GatewayClient(target)
        try:
            pool = client._http._transport._pool
            barrier = threading.Barrier(BURST)
            opened: list[int] = []

            def ask() -> None:
                barrier.wait()
                answer = client.request("POST", f"{gateway.url}/ai-gateway/mlflow/v1/chat/completions",
                                        headers={**client.auth_headers("default"),
                                                 "Content-Type": "application/json"}, content=STREAM)
                assert answer.status == 200
                opened.append(len(pool.connections))

            threads = [threading.Thread(target=ask) for _ in range(BURST)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert len(opened) == BURST
            assert max(opened) > KEEP_ALIVE_CONNECTIONS  # they were open at once: no ceiling on connections
            assert len(pool.connections) <= KEEP_ALIVE_CONNECTIONS
            kept = set(map(id, pool.connections))
            client.request("GET", f"{gateway.url}/api/2.0/serving-endpoints", headers=client.auth_headers("default"))
            assert set(map(id, pool.connections)) <= kept  # the next request reuses one of them
        finally:
            client.close()
