"""How `conformance run -n N` hands the cases to its xdist workers: every case on its own, whichever worker is free
(xdist's `load`), except the cases of one official client, which all go to one worker. A client SDK costs one to
three seconds of CPU to import (anthropic, databricks-sdk), and with its cases spread over every worker each
worker imported every SDK. xdist's own `loadgroup` cannot say this: it reads a group from the text after the
node id's last "@", and every case id here is `case@model`."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _client_of_case() -> dict[str, str]:
    from conformance.clientcases import load_client_cases

    return {case.id: case.client.name for case in load_client_cases()}


def scope_of(nodeid: str) -> str:
    """The unit a worker receives: `client:<client>` for an official client's case, else the node id itself."""
    param = nodeid.partition("[")[2].rstrip("]")
    client = _client_of_case().get(param.partition("@")[0]) if param.startswith("client-") else None
    return f"client:{client}" if client is not None else nodeid


def make_scheduler(config: Any, log: Any) -> Any:
    """The scheduler for xdist's default distribution; None (xdist's own) when --dist names another one."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ClientCasesTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ClientCasesTogether(config, log)
