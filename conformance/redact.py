"""Secret redaction in one place: everything the suite writes passes through here."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***REDACTED***"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie"}
)
# Credentials in a header value even when the token itself is unknown to us (a wrong token, a Basic pair).
_AUTH_VALUE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class Redactor:
    """Masks known secret values, their Basic-auth encodings, and credential-bearing headers."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:
            return
        self._secrets.add(secret)
        for user in ("token", "notoken"):
            self._secrets.add(base64.b64encode(f"{user}:{secret}".encode()).decode())

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            k: (MASK if k.lower() in SENSITIVE_HEADERS else self.text(v)) for k, v in headers.items()
        }

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        return map_strings(obj, self.text)


def map_strings(obj: Any, fn: Callable[[str], Any]) -> Any:
    """A copy of a JSON-like value with every string (not keys) replaced by fn(string)."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {k: map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [map_strings(v, fn) for v in obj]
    return obj


REDACTOR = Redactor()
