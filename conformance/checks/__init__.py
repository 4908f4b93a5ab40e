"""Every check module is imported here so that CHECKS is complete wherever it is used."""

from conformance.checks import (  # noqa: F401
    anthropic,
    behaviour,
    chat,
    common,
    embeddings,
    gemini,
    reasoning,
    responses,
)
from conformance.checks.base import CHECKS, Check, CheckContext

__all__ = ["CHECKS", "Check", "CheckContext"]
