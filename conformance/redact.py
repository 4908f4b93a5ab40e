"""Secret redaction in one place: everything the suite writes or prints passes through here.

The exits, each through this Redactor: pytest's reports (failure text, captured output: the console, junit.xml,
summary.json messages, xdist's transfer), every Allure file (allure_lean's writer), summary.json as a whole,
shape snapshots and their drift lines (keys and enumerated values too: a gateway may echo a token anywhere),
and the evidence attached per case. A target's token is registered once per process (`REDACTOR.add`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***REDACTED***"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie"}
)
# Credentials in a header value even when the token itself is unknown to us (a wrong token, a Basic pair). Only a
# value that looks like one is masked: the case data and the spec quoted in every report say "HTTP Basic
# authentication" and "Authorization Bearer next to api_key", which a mask of any word after the scheme turned into
# "HTTP Basic ***REDACTED***" in summary.json and the HTML page (and made every summary take the slow path).
_AUTH_VALUE = re.compile(r"\b(Bearer|Basic)\s+([A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
_MIN_CREDENTIAL = 8  # shorter runs are words ("Bearer token"); a token of the suite's own is masked as a secret
_LONG_WORDLIKE = 24  # a run of letters this long is a credential even without a digit, mark or inner capital
_CREDENTIAL_MARK = re.compile(r"[0-9._~+/=-]|.[A-Z]")  # a digit, a token's punctuation, or a capital inside


def _credential_like(value: str) -> bool:
    """Whether the run after Bearer/Basic is a credential, not a word: tokens, JWTs and Basic pairs (base64) carry
    digits, punctuation or capitals inside; prose does not, but for a capital first letter."""
    if len(value) < _MIN_CREDENTIAL:
        return False
    return len(value) >= _LONG_WORDLIKE or _CREDENTIAL_MARK.search(value) is not None


def _mask_credential(match: re.Match[str]) -> str:
    return f"{match.group(1)} {MASK}" if _credential_like(match.group(2)) else match.group(0)


class Redactor:
    """Masks known secret values, their Basic-auth encodings, and credential-bearing headers."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._longest_first: tuple[str, ...] = ()  # a longer secret first: one that contains another is masked whole
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:
            return
        self._secrets.add(secret)
        for user in ("token", "notoken"):
            self._secrets.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
        self._longest_first = tuple(sorted(self._secrets, key=len, reverse=True))

    def text(self, value: str) -> str:
        for secret in self._longest_first:
            value = value.replace(secret, MASK)
        return _AUTH_VALUE.sub(_mask_credential, value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            self.text(k): (MASK if k.lower() in SENSITIVE_HEADERS else self.text(v)) for k, v in headers.items()
        }

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like value, mapping keys included (a copy only when something is
        masked: one C-speed look at its JSON first)."""
        try:
            dumped = json.dumps(obj, default=str)
        except (TypeError, ValueError, RecursionError):
            dumped = None
        if dumped is not None and self.text(dumped) == dumped:
            return obj
        return map_strings(obj, self.text, keys=self.text)

    def data(self, data: bytes) -> bytes:
        """A file's bytes (UTF-8 text; anything else is written as it is, it was never text from a target)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        redacted = self.text(text)
        return data if redacted == text else redacted.encode("utf-8")


def map_strings(obj: Any, fn: Callable[[str], Any], keys: Callable[[str], str] | None = None) -> Any:
    """A copy of a JSON-like value with every string replaced by fn(string); with `keys`, string mapping keys
    replaced by keys(key) as well."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, Mapping):
        if keys is None:
            return {k: map_strings(v, fn) for k, v in obj.items()}
        return {(keys(k) if isinstance(k, str) else k): map_strings(v, fn, keys) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [map_strings(v, fn, keys) for v in obj]
    return obj


REDACTOR = Redactor()


def redact_report(report: Any, redactor: Redactor = REDACTOR) -> None:
    """A pytest report, in place: its failure text (replaced by the redacted text only when something was
    masked, so pytest keeps its own formatting otherwise), a skip's reason, and the captured sections."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        report.longrepr = tuple(redactor.text(x) if isinstance(x, str) else x for x in longrepr)
    elif longrepr is not None:
        text = report.longreprtext
        redacted = redactor.text(text)
        if redacted != text:
            report.longrepr = redacted
    if report.sections:
        report.sections = [(title, redactor.text(content)) for title, content in report.sections]
