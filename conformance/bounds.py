"""Bounds on what a target can make the suite do, and what crossing one of them means.

A gateway under certification is not trusted: an endless stream, a body sent a byte a second, a 300 MB or
gzip-bomb answer, JSON nested 100000 deep or bytes that are not UTF-8 must end one case with a clear outcome,
never hang the run, exhaust its memory or crash it. Every lane that talks to a target (the suite's own httpx
client, the httpx-based SDKs, the Databricks SDK's `requests`, curl) reads answers through the functions here,
so one rule decides everywhere:

| what the target did | outcome |
| --- | --- |
| the attempt's deadline passed (`--timeout`: connect, headers and the whole body, every read clamped) | error |
| a 3xx: the suite follows no redirect (another origin's answer must never pass a case) | failed |
| more decoded body bytes than the cap (`--max-body-bytes`, default 32 MiB) | failed |
| the same, with the cap set below the default by the user (the user's own limit) | error |
| a Content-Encoding the client did not offer, or one that does not decode | failed |
| a JSON or SSE body that is not UTF-8 (RFC 8259 8.1, the WHATWG event-stream format) | failed |
| JSON nested deeper than MAX_JSON_DEPTH (64; real answers nest about 8 deep) | failed |

No answer to a case of the suite comes near the default cap (the largest conformant one is a few hundred KB:
a handful of embedding vectors, max_tokens of at most a few thousand): an answer beyond it is the gateway's.
Decompression is done here, never by an HTTP library, and stops at the cap: a gzip bomb inflates to at most
cap + 1 bytes. A body over the cap is not kept: the evidence is its first EVIDENCE_BYTES.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # there at run time, not in the stubs
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
EVIDENCE_BYTES = 2000
ACCEPT_ENCODING = "gzip, deflate"  # what every lane offers: the codings decoded here, within the cap
DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "identity"})


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0  # one attempt: connect, headers and the whole body
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def of(cls, target: Any) -> Limits:
        return cls(float(target.timeout), int(getattr(target, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)))


@dataclass(frozen=True)
class TransportFailure:
    """The target broke the contract before any rule about the body applies (judged `failed`)."""

    check: str  # transport.redirect | transport.body-size | transport.content-encoding | transport.utf-8 | ...
    message: str

    def finding(self) -> str:
        return f"[{self.check}] {self.message}"


class DeadlineExceeded(Exception):
    """The attempt's deadline passed (an infrastructure error, like any timeout)."""


class OverOwnCap(Exception):
    """An answer exceeded a body cap the user set below the default: the user's limit, not the gateway's fault."""


class TransportRuleBroken(Exception):
    """Raised into an SDK when the answer broke a transport rule (recorded on the bound): the SDK never parses
    it, and the runner judges the recorded failure, whatever the SDK makes of this exception."""


def size_text(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n} bytes"


def status_runs(statuses: list[int]) -> str:
    """"HTTP 503 x3, HTTP 429": the answers a request got, in order."""
    runs: list[list[int]] = []
    for status in statuses:
        if runs and runs[-1][0] == status:
            runs[-1][1] += 1
        else:
            runs.append([status, 1])
    return ", ".join(f"HTTP {s}" + (f" x{n}" if n > 1 else "") for s, n in runs)


# --- one attempt's bounds (thread-local while active) ------------------------------------------------------

_local = threading.local()


@dataclass
class Bound:
    """One attempt: its deadline and caps, and what the target did during it. While active (`with
    bound.active():`) every read and write of this thread's lanes is clamped to what is left of the deadline."""

    limits: Limits
    deadline: float = 0.0  # time.monotonic(); 0: armed by the first look at it (the first network step)
    latest: float = math.inf  # the deadline never passes this (the end of the request's budget)
    failure: TransportFailure | None = None
    timed_out: bool = False
    problem: str | None = None  # an infrastructure cause seen by the transport (a timeout, the user's own cap)
    status: int | None = None  # of the last answer seen
    retry_after: str | None = None  # its Retry-After header, as sent
    statuses: list[int] = field(default_factory=list)
    headers_at: float | None = None  # time.monotonic() when the last answer's status line and headers were in
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # (decoded body bytes, monotonic) per read

    def remaining(self) -> float:
        now = time.monotonic()
        if not self.deadline:  # armed now: an SDK's import or set-up before its first request is not counted
            self.deadline = min(now + self.limits.timeout_s, self.latest)
        return self.deadline - now

    def check(self) -> None:
        if self.remaining() <= 0:
            self.timed_out = True
            raise DeadlineExceeded(self.timeout_text())

    def timeout_text(self) -> str:
        return f"timeout: the {self.limits.timeout_s:g} s deadline of the exchange passed (headers and body)"

    def timeout_after_answers(self) -> str:
        """The timeout, after what this attempt was answered before it: an SDK retrying a 503 inside one attempt
        can run out of deadline before its next request, and the 503s are the cause a person needs."""
        if self.statuses:
            return f"{self.answers_seen()}, then {self.timeout_text()}"
        return self.timeout_text()

    def answers_seen(self) -> str:
        """This attempt's answers so far, so that a later timeout's message still says what the target had
        answered before it (an SDK retries inside one attempt)."""
        return status_runs(self.statuses)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        self.problem = None  # an answer came: an earlier request's trouble (an SDK retried it) is over
        self.status = status
        self.statuses.append(status)
        self.headers_at = time.monotonic()
        self.arrivals = []
        self.retry_after = _header(headers, "retry-after")

    @contextmanager
    def active(self) -> Iterator[Bound]:
        previous = getattr(_local, "bound", None)
        _local.bound = self
        try:
            yield self
        finally:
            _local.bound = previous


def current() -> Bound | None:
    return getattr(_local, "bound", None)


def clamp(timeout: float | None) -> float | None:
    """A socket operation's timeout, cut to what is left of the active bound's deadline (DeadlineExceeded when
    nothing is left)."""
    bound = current()
    if bound is None:
        return timeout
    left = bound.remaining()
    if left <= 0:
        bound.timed_out = True
        raise DeadlineExceeded(bound.timeout_text())
    return left if timeout is None else min(timeout, left)


# --- bodies: capped decoding -------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class _Inflater:
    """gzip (also several members) or deflate (zlib-wrapped or raw, as browsers accept it), at most `room` bytes
    of output per call."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._d = self._new()
        self._first = True

    def _new(self) -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self.coding in ("gzip", "x-gzip") else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> bytes:
        out = []
        while data and room > 0:
            try:
                chunk = self._d.decompress(data, room)
            except zlib.error:
                if self.coding == "deflate" and self._first:  # raw deflate without the zlib wrapper
                    self._d, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise
            self._first = False
            out.append(chunk)
            room -= len(chunk)
            if self._d.eof and self._d.unused_data and self.coding != "deflate":
                data = self._d.unused_data  # another gzip member
                self._d = self._new()
            else:
                data = self._d.unconsumed_tail
        return b"".join(out)

    def finish(self) -> None:
        if not self._d.eof:
            raise zlib.error(f"the {self.coding} stream ends before its end marker")


@dataclass
class Body:
    data: bytes  # decoded; only the first EVIDENCE_BYTES when `over_cap`
    over_cap: bool = False
    failure: TransportFailure | None = None


BIG_BODY = 1 << 20  # past this, a body is read by one thread of the process at a time (_BIG_BODY_LOCK)
_BIG_BODY_LOCK = threading.Lock()


def read_body(chunks: Iterable[bytes], headers: Mapping[str, str], bound: Bound) -> Body:
    """Read and decode a body within the bound: the deadline is checked after every chunk (and every socket read
    of the httpx lanes is clamped to it), decoded bytes stop at the cap, an unknown coding is not decoded.

    Memory: answers of the contract are small, so a body that grows past BIG_BODY waits for the process's one
    big-body slot (within its deadline): a process holds at most `threads x BIG_BODY` plus one body up to the
    cap, however many huge answers come in at once."""
    cap = bound.limits.max_body_bytes
    codings = [c.strip().lower() for c in (_header(headers, "content-encoding") or "").split(",") if c.strip()]
    unknown = [c for c in codings if c not in DECODABLE]
    inflaters = [_Inflater(c) for c in reversed(codings) if c != "identity"]
    parts: list[bytes] = []
    size = raw = 0
    big = False
    try:
        for chunk in chunks:
            raw += len(chunk)
            data = chunk
            if not unknown:
                for inflater in inflaters:
                    data = inflater.feed(data, cap + 1 - size)
            size += len(data)
            bound.arrivals.append((size, time.monotonic()))  # when the body had that much (conformance/timing.py)
            if size > cap or raw > cap:
                return over_cap(_prefix(parts, data), size, raw, codings, headers, bound)
            parts.append(data)
            if not big and size > BIG_BODY:
                big = _BIG_BODY_LOCK.acquire(timeout=max(0.0, bound.remaining()))
                if not big:
                    bound.timed_out = True
                    raise DeadlineExceeded(bound.timeout_text())
            bound.check()
        if not unknown:
            for inflater in inflaters:
                inflater.finish()
        body = Body(b"".join(parts))
    except zlib.error as exc:
        return Body(_prefix(parts, b""), failure=TransportFailure(
            "transport.content-encoding", f"the Content-Encoding {', '.join(codings)} body does not decode: {exc}"))
    finally:
        if big:
            _BIG_BODY_LOCK.release()
    if unknown:
        body.failure = TransportFailure(
            "transport.content-encoding",
            f"the answer's Content-Encoding {', '.join(unknown)} was not offered (Accept-Encoding: "
            f"{ACCEPT_ENCODING}), so it cannot be read")
    return body


def _prefix(parts: list[bytes], last: bytes) -> bytes:
    """The first EVIDENCE_BYTES of what was read (the rest is never joined: it may be the cap's worth)."""
    out = b""
    for part in [*parts, last]:
        out += part[: EVIDENCE_BYTES - len(out)]
        if len(out) >= EVIDENCE_BYTES:
            break
    return out


def over_cap(prefix: bytes, size: int, raw: int, codings: list[str], headers: Mapping[str, str],
              bound: Bound) -> Body:
    """What an answer over the cap is: a `transport.body-size` failure, or (below the default cap) OverOwnCap."""
    cap = bound.limits.max_body_bytes
    length = _header(headers, "content-length")
    inflated = f" (Content-Encoding {', '.join(codings)}: inflated from {raw} bytes received)" if codings else ""
    announced = f"; Content-Length {length}" if length else ""
    what = (f"the answer has more than {size_text(cap)} of body{inflated}{announced}; reading stopped at the cap "
            f"(--max-body-bytes)")
    if cap < DEFAULT_MAX_BODY_BYTES:
        raise OverOwnCap(f"{what}, which this run set below the default {size_text(DEFAULT_MAX_BODY_BYTES)}: "
                         f"not a verdict about the gateway")
    return Body(prefix[:EVIDENCE_BYTES], over_cap=True, failure=TransportFailure(
        "transport.body-size",
        f"{what}; no answer to a case of this suite comes near {size_text(DEFAULT_MAX_BODY_BYTES)} (the largest "
        f"conformant one is a few hundred KB)"))


# --- what a complete answer must be ------------------------------------------------------------------------


def media_type(headers: Mapping[str, str]) -> str:
    return (_header(headers, "content-type") or "").split(";")[0].strip().lower()


def _declared_charset(headers: Mapping[str, str]) -> str | None:
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", _header(headers, "content-type") or "", re.IGNORECASE)
    return match.group(1).lower() if match else None


def decode_text(data: bytes, headers: Mapping[str, str]) -> tuple[str, TransportFailure | None]:
    """Strict UTF-8 for what the suite judges (JSON and event streams are UTF-8 by definition); another text type
    that declares another charset is read in it."""
    media = media_type(headers)
    charset = _declared_charset(headers)
    if charset and charset not in ("utf-8", "utf8") and "json" not in media and media != "text/event-stream":
        return data.decode(charset if _known_codec(charset) else "latin-1", errors="replace"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 4]
        return data.decode("utf-8", errors="replace"), TransportFailure(
            "transport.utf-8",
            f"the {media or 'untyped'} body is not valid UTF-8 (byte(s) {bad.hex(' ')} at offset {exc.start}: "
            f"{exc.reason}); JSON and event streams must be UTF-8")


def _known_codec(name: str) -> bool:
    import codecs

    try:
        codecs.lookup(name)
        return True
    except LookupError:
        return False


_STRUCTURE = re.compile(r'["\[\]{}]')


def depth_exceeded(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The offset where JSON text nests deeper than `limit`, or None. Linear in the text and never recursive:
    strings are skipped with the json module's own scanner; text that is not JSON is left to the parser."""
    if _openings(text) <= limit:  # the common case, at C speed: not enough brackets to nest that deep
        return None
    depth = pos = 0
    search = _STRUCTURE.search
    while True:
        match = search(text, pos)
        if match is None:
            return None
        char, at = match.group(), match.start()
        if char == '"':
            try:
                pos = scanstring(text, at + 1, True)[1]
            except ValueError:
                return None
            continue
        if char in "[{":
            depth += 1
            if depth > limit:
                return at
        else:
            depth -= 1
        pos = at + 1


def _openings(text: str) -> int:
    return text.count("[") + text.count("{")


class TooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH: never parsed (the parser, a schema or pickle would recurse)."""


def loads(text: str) -> Any:
    """json.loads, refusing (ValueError) what nests deeper than MAX_JSON_DEPTH before parsing it."""
    at = depth_exceeded(text)
    if at is not None:
        raise TooDeep(f"JSON nests deeper than {MAX_JSON_DEPTH} levels (at character {at})")
    return json.loads(text)


def _looks_like_json(media: str, text: str) -> bool:
    return "json" in media or text.lstrip()[:1] in ("{", "[")


def inspect(status: int, headers: Mapping[str, str], data: bytes, url: str) -> tuple[str, TransportFailure | None]:
    """The text of a complete answer and the first transport-level rule it breaks (redirect, UTF-8, nesting)."""
    text, failure = decode_text(data, headers)
    if 300 <= status < 400:
        return text, redirect_failure(status, _header(headers, "location"), url)
    if failure is not None:
        return text, failure
    media = media_type(headers)
    if _openings(text) <= MAX_JSON_DEPTH:
        return text, None  # nothing in it can nest that deep
    if media == "text/event-stream":
        from conformance.sse import parse_sse

        for index, event in enumerate(parse_sse(text)):
            at = depth_exceeded(event.data)
            if at is not None:
                return text, TransportFailure(
                    "transport.json-depth",
                    f"event[{index}] data nests deeper than {MAX_JSON_DEPTH} levels (at character {at}); no "
                    f"answer of the contract nests more than about 8")
    elif _looks_like_json(media, text):
        at = depth_exceeded(text)
        if at is not None:
            return text, TransportFailure(
                "transport.json-depth",
                f"the {status} body is JSON nested deeper than {MAX_JSON_DEPTH} levels (at character {at} of "
                f"{len(text)}); no answer of the contract nests more than about 8")
    return text, None


def redirect_failure(status: int, location: str | None, url: str) -> TransportFailure:
    where = "no Location"
    if location:
        here, there = urlsplit(url), urlsplit(location)
        other = bool(there.netloc) and (there.scheme, there.netloc) != (here.scheme, here.netloc)
        where = f"Location {location}" + (f" (another origin than {here.scheme}://{here.netloc})" if other else "")
    return TransportFailure(
        "transport.redirect",
        f"HTTP {status} redirect, {where}: the suite follows no redirect; the documented route must answer itself")
