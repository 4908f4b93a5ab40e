"""The official clients the spec documents, each run as its example is written (issue: client options)."""

from __future__ import annotations

from conformance.clients import anthropic_client, curl_client, databricks_client, genai_client, openai_client
from conformance.clients.base import (
    ClientContext,
    ClientFailure,
    ClientInfrastructure,
    Runner,
    package_version,
    read_path,
)

RUNNERS = {
    runner.name: runner
    for runner in (
        Runner("openai", "openai", openai_client.invoke, ("openai",)),
        Runner("anthropic", "anthropic", anthropic_client.invoke, ("anthropic",)),
        Runner("google-genai", "google-genai", genai_client.invoke, ("google.genai",)),
        Runner("databricks-sdk", "databricks-sdk", databricks_client.invoke,
               ("requests", "databricks.sdk", "databricks.sdk.service.serving")),
        Runner("curl", "curl", curl_client.invoke),
    )
}


def unavailable(name: str) -> str | None:
    if name == "curl":
        return curl_client.unavailable()
    return RUNNERS[name].unavailable()


def versions() -> dict[str, str | None]:
    """Client versions for summary.json and the certification report."""
    return {name: (curl_client.version() if name == "curl" else package_version(runner.distribution))
            for name, runner in RUNNERS.items()}


__all__ = ["RUNNERS", "ClientContext", "ClientFailure", "ClientInfrastructure", "read_path", "unavailable",
           "versions"]
