"""Every check module is imported here so that CHECKS is complete wherever it is used."""

from conformance.checks import chat, common, embeddings, responses  # noqa: F401
from conformance.checks.base import CHECKS, Check, CheckContext

__all__ = ["CHECKS", "Check", "CheckContext"]
