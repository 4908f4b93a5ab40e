"""Under `conformance run -n N`, every case of one official client goes to one xdist worker, so each client SDK is
imported once per run, not once per worker (conformance/scheduling.py); every other case goes wherever a worker
is free."""

from __future__ import annotations

import re

from shared_runs import REFERENCE, REFERENCE_ENV

from conformance.scheduling import scope_of

WORKER_LINE = re.compile(r"\[(gw\d+)\].*test_client_case\[(client-[a-z]+)-")


def test_an_official_clients_cases_are_one_unit_and_other_cases_their_own():
    anthropic = [f"test_conformance.py::test_client_case[client-anthropic-stream@{m}]" for m in ("a", "b")]
    assert {scope_of(n) for n in anthropic} == {"client:anthropic"}
    assert scope_of("test_conformance.py::test_client_case[client-genai-stream@x]") == "client:google-genai"
    http = "test_conformance.py::test_case[chat-system-and-user@claude-sonnet-4-5]"
    assert scope_of(http) == http  # an HTTP case, even one whose id looked like a client's, is its own unit
    unknown = "test_conformance.py::test_client_case[client-nobody-stream@x]"
    assert scope_of(unknown) == unknown


def test_each_clients_cases_run_on_one_worker(shared_run):
    """On the whole reference run (two workers, -vv): every official client's cases on one worker each."""
    result = shared_run(*REFERENCE, env=REFERENCE_ENV)
    assert result.code == 0, result.out[-2000:]
    workers: dict[str, set[str]] = {}
    for worker, client in WORKER_LINE.findall(result.out):
        workers.setdefault(client, set()).add(worker)
    clients = [c for c in result.summary["cases"] if c["id"].startswith("client-")]
    assert set(workers) == {"-".join(c["id"].split("-")[:2]) for c in clients}, sorted(workers)
    assert {"client-anthropic", "client-genai", "client-openai", "client-databricks", "client-curl"} <= set(workers)
    assert all(len(names) == 1 for names in workers.values()), workers
    assert len(clients) == sum(1 for _ in WORKER_LINE.finditer(result.out))
