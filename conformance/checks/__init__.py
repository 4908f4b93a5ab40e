"""Every check module is imported here so that CHECKS is complete wherever it is used."""

from conformance.checks import anthropic, chat, common, embeddings, gemini, reasoning, responses  # noqa: F401
from conformance.checks.base import CHECKS, Check, CheckContext

__all__ = ["CHECKS", "Check", "CheckContext"]
