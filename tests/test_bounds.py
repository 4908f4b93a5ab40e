"""The rules of conformance/bounds.py and the retry policy, piece by piece (tests/test_hostile.py runs them whole)."""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from email.utils import formatdate

import pytest

from conformance import bounds
from conformance.bounds import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    Bound,
    Limits,
    OverOwnCap,
    TooDeep,
    decode_text,
    depth_exceeded,
    inspect,
    loads,
    read_body,
)
from conformance.client import Exchange, RetryPolicy, parse_retry_after
from conformance.clients.base import ClientFailure, ClientInfrastructure, classify_unexpected
from conformance.pacing import Pacer
from conformance.redact import MASK, Redactor

SECRET = "bounds-test-secret-0123456789"


def bound(cap: int = DEFAULT_MAX_BODY_BYTES, timeout: float = 10.0) -> Bound:
    return Bound(Limits(timeout_s=timeout, max_body_bytes=cap))


def pieces(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- Retry-After ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    ("0", 0.0), ("2", 2.0), ("1.5", 1.5), ("-5", 0.0), ("86400", 86400.0),
    ("soon", None), ("", None), ("nan", None), ("1e309", None), ("Wed, 99 Foo 2015 07:28:00 GMT", None),
])
def test_retry_after_is_seconds_or_a_date_else_unparseable(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date():
    assert 50 < parse_retry_after(formatdate(time.time() + 60, usegmt=True)) <= 60
    assert parse_retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0


def test_the_retry_plan_honours_retry_after_up_to_its_cap_and_the_budget():
    policy = RetryPolicy(attempts=5, deadline_s=90)
    assert policy.plan(0, "3", remaining=80) == 3.0
    assert "beyond the 30 s the suite waits" in policy.plan(0, "86400", remaining=80)
    assert "neither seconds nor an HTTP date" in policy.plan(0, "soon", remaining=80)
    assert "beyond the request's 90 s budget" in policy.plan(0, "20", remaining=10)
    assert "attempt(s) allowed" in policy.plan(4, None, remaining=80)
    assert 0 < policy.plan(1, None, remaining=80) <= 0.5  # backoff with jitter


def test_pacer_waits_count_in_the_budget():
    pacer = Pacer(max_rps=1.0)
    assert pacer.wait_turn(max_wait=5)  # the first slot is now
    started = time.monotonic()
    assert not pacer.wait_turn(max_wait=0.2)  # the next is a second away: refused at once, not claimed
    assert time.monotonic() - started < 0.1
    assert pacer.wait_turn(max_wait=2)  # the refused slot was not taken


# --- JSON nesting ---------------------------------------------------------------------------------------------


def test_nesting_is_measured_outside_strings_and_without_recursion():
    assert depth_exceeded("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is None
    assert depth_exceeded("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH
    assert depth_exceeded('{"a": "' + "[" * 500 + '\\"[["}') is None  # brackets inside a string do not count
    started = time.monotonic()
    assert depth_exceeded("[" * 100000 + "]" * 100000) is not None
    assert depth_exceeded('"' + "\\\"" * 200000 + '"') is None  # escapes: linear, no backtracking blow-up
    assert time.monotonic() - started < 1.0


def test_loads_refuses_deep_json_as_a_value_error():
    with pytest.raises(TooDeep):
        loads("[" * 600 + "]" * 600)
    with pytest.raises(ValueError):
        loads("[" * 100000 + "]" * 100000)
    assert loads('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


def test_an_exchange_with_deep_json_parses_nothing_deep():
    deep = Exchange("POST", "http://t/x", {}, None, None, 200, {"content-type": "application/json"},
                    "[" * 100000 + "]" * 100000, False)
    assert deep.json is None and "nests deeper" in deep.json_error


# --- bodies ---------------------------------------------------------------------------------------------------


def test_a_gzip_bomb_inflates_to_the_cap_and_no_further():
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in ~64 KB
    cap = DEFAULT_MAX_BODY_BYTES
    body = read_body(pieces(bomb), {"Content-Encoding": "gzip"}, bound(cap))
    assert body.over_cap and body.failure and body.failure.check == "transport.body-size"
    assert len(body.data) <= bounds.EVIDENCE_BYTES
    assert "Content-Encoding gzip: inflated from" in body.failure.message


def test_a_cap_below_the_default_is_the_users_limit_not_a_failure():
    with pytest.raises(OverOwnCap, match="below the default"):
        read_body([b"x" * 5000], {}, bound(cap=4096))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "gzip-members", "identity"])
def test_every_offered_coding_decodes(coding):
    text = b'{"choices": []}' * 100
    if coding == "gzip":
        data, header = gzip.compress(text), "gzip"
    elif coding == "deflate":
        data, header = zlib.compress(text), "deflate"
    elif coding == "raw-deflate":
        raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        data, header = raw.compress(text) + raw.flush(), "deflate"
    elif coding == "gzip-members":
        half = len(text) // 2
        data, header = gzip.compress(text[:half]) + gzip.compress(text[half:]), "gzip"
    else:
        data, header = text, "identity"
    body = read_body(pieces(data, 7), {"content-encoding": header}, bound())
    assert body.failure is None and body.data == text


def test_a_coding_not_offered_or_a_broken_one_is_a_failure():
    assert read_body([b"\x28\xb5\x2f\xfd..."], {"Content-Encoding": "zstd"}, bound()).failure.check == \
        "transport.content-encoding"
    truncated = gzip.compress(b"x" * 1000)[:-12]
    assert "does not decode" in read_body([truncated], {"Content-Encoding": "gzip"}, bound()).failure.message


def test_the_deadline_is_checked_chunk_by_chunk():
    def drip():
        while True:
            time.sleep(0.05)
            yield b"x"

    short = bound(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(bounds.DeadlineExceeded):
        read_body(drip(), {}, short)
    assert short.timed_out and time.monotonic() - started < 1.0


def test_utf8_is_strict_for_json_and_streams_and_a_declared_charset_is_honoured_elsewhere():
    text, failure = decode_text(b'{"a": "caf\xe9"}', {"content-type": "application/json"})
    assert failure.check == "transport.utf-8" and "e9" in failure.message and "\ufffd" in text
    assert decode_text(b"caf\xe9", {"content-type": "text/event-stream"})[1] is not None
    assert decode_text(b"caf\xe9", {"content-type": "text/plain; charset=iso-8859-1"}) == ("caf\xe9", None)
    assert decode_text(b'{"a": "caf\xe9"}', {"content-type": "application/json; charset=iso-8859-1"})[1]


def test_a_redirect_is_a_failure_naming_its_location_and_origin():
    _, failure = inspect(307, {"location": "http://evil.example:8080/v1/x"}, b"", "http://127.0.0.1:5000/v1/x")
    assert failure.check == "transport.redirect"
    assert "Location http://evil.example:8080/v1/x (another origin than http://127.0.0.1:5000)" in failure.message
    _, same = inspect(302, {"location": "/elsewhere"}, b"", "http://127.0.0.1:5000/v1/x")
    assert "another origin" not in same.message


def test_deep_json_in_a_stream_event_is_a_failure():
    stream = b'data: {"a": 1}\n\ndata: ' + b"[" * 70 + b"]" * 70 + b"\n\ndata: [DONE]\n\n"
    _, failure = inspect(200, {"content-type": "text/event-stream"}, stream, "http://t/x")
    assert failure.check == "transport.json-depth" and failure.message.startswith("event[1]")


# --- classification and secrets -----------------------------------------------------------------------------


def test_a_client_sdks_own_retry_timeout_is_infrastructure():
    # the Databricks SDK raises TimeoutError("Timed out after ...") when its retries of 503s run out
    assert isinstance(classify_unexpected("databricks-sdk", "query", TimeoutError("Timed out after 0:00:30")),
                      ClientInfrastructure)
    assert isinstance(classify_unexpected("databricks-sdk", "query", bounds.DeadlineExceeded("x")),
                      ClientInfrastructure)
    assert isinstance(classify_unexpected("openai", "chat", KeyError("choices")), ClientFailure)


def test_an_exchange_never_shows_headers_or_bodies_in_its_repr():
    exchange = Exchange("POST", "http://t/x", {"Authorization": f"Bearer {SECRET}"}, {"k": SECRET}, None, 200,
                        {"x-echo": SECRET}, f'{{"echo": "{SECRET}"}}', False)
    assert SECRET not in repr(exchange) and "Authorization" not in repr(exchange)
    assert "HTTP 200" in repr(exchange)


def test_redaction_covers_keys_header_names_and_files():
    redactor = Redactor([SECRET])
    value = {SECRET: {"object": SECRET, "x": [f"pre-{SECRET}"]}, "ok": 1}
    assert redactor.value(value) == {MASK: {"object": MASK, "x": [f"pre-{MASK}"]}, "ok": 1}
    assert redactor.value({"clean": ["a"]}) == {"clean": ["a"]}
    assert redactor.headers({f"x-echo-{SECRET}": SECRET}) == {f"x-echo-{MASK}": MASK}
    assert redactor.data(f"a {SECRET} b".encode()) == f"a {MASK} b".encode()
    assert redactor.data(b"\xff\xfe binary") == b"\xff\xfe binary"


def test_a_5xx_is_the_gateways_failure_only_when_every_attempt_got_one():
    policy = RetryPolicy(attempts=3)
    assert "HTTP 500, 507 on each of the 2 attempt(s)" in policy.repeated_server_error([500, 507], 2)
    assert policy.repeated_server_error([500], 2) is None  # the other attempt was a timeout or a 503
    assert policy.repeated_server_error([500], 1) is None  # one attempt where more were allowed: not repeated
    assert RetryPolicy(attempts=1).repeated_server_error([500], 1) is not None  # --retries 1: that was all


def test_a_timeout_after_answers_still_names_them():
    """Under load an SDK's retry inside one attempt can time out after 503s: its message keeps the 503s (a CI run
    once reported only the timeout, and nothing said the target had answered 503 before it)."""
    from conformance.clients.databricks_client import _DeadlineClock

    b = bound(timeout=1.0)
    for status in (503, 503, 503, 429):
        b.observe(status, {"Retry-After": "0"})
    b.problem = b.timeout_text()
    with b.active(), pytest.raises(bounds.DeadlineExceeded) as raised:
        _DeadlineClock().sleep(7.8)
    assert "HTTP 503 x3, HTTP 429, then timeout" in str(raised.value)
    assert "beyond the deadline of the exchange" in str(raised.value)
    assert bounds.status_runs([]) == ""


def test_a_deadline_passed_before_the_sdks_next_request_still_names_the_answers():
    """The other way an SDK's retry times out under load: its sleep fit, but the deadline passed before its next
    request was sent (a CI run reported only the timeout of a lane answered 503 every time)."""
    from conformance.clients.databricks_client import _bounded_send

    b = bound(timeout=0.01)
    with b.active(), pytest.raises(bounds.DeadlineExceeded) as raised:
        b.remaining()  # armed by the first request
        b.observe(503, {})
        time.sleep(0.02)
        _bounded_send(object(), object())
    assert str(raised.value).startswith("HTTP 503, then timeout"), str(raised.value)
    fresh = bound(timeout=0.01)
    with fresh.active(), pytest.raises(bounds.DeadlineExceeded) as raised:
        fresh.remaining()
        time.sleep(0.02)
        _bounded_send(object(), object())
    assert str(raised.value).startswith("timeout"), "no answer seen: nothing to name"


def test_a_retried_request_timing_out_while_it_waits_still_names_the_earlier_answers():
    """The third way: the SDK's sleep fit and its next request went out, then the deadline passed while it waited
    for that request's answer: the transport recorded only the timeout (a CI run reported a lane answered 429
    with an unparseable Retry-After as "timeout" alone). The attempt's cause names the answers before it."""
    from conformance.runner import _after_client_attempt, _ClientAttempt

    answered = bound(timeout=0.01)
    answered.remaining()
    answered.observe(429, {"Retry-After": "soon"})
    with pytest.raises(bounds.DeadlineExceeded) as raised:
        time.sleep(0.02)
        answered.check()  # how read_answer ends the retried request
    answered.problem = str(raised.value)  # what the SDK transport records (databricks_client._bounded_send)
    final, cause = _after_client_attempt("databricks-sdk query", answered, _ClientAttempt(problem="Timeout"),
                                         "no attempt made", [], 0)
    assert final is None and cause.startswith("HTTP 429, then timeout: the 0.01 s deadline"), cause
    unanswered = bound(timeout=0.01)
    unanswered.remaining()
    time.sleep(0.02)
    with pytest.raises(bounds.DeadlineExceeded) as raised:
        unanswered.check()
    unanswered.problem = str(raised.value)
    _, cause = _after_client_attempt("databricks-sdk query", unanswered, _ClientAttempt(problem="Timeout"),
                                     "no attempt made", [], 0)
    assert cause == unanswered.timeout_text(), "no answer seen: nothing to name"


def _fake_jwt() -> str:
    """A JWT's shape (three base64url parts), made here: no credential-looking literal in the repository."""
    def part(doc: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return ".".join([part({"alg": "none"}), part({"sub": "fake"}), "c2ln"])


@pytest.mark.parametrize(("text", "masked"), [
    ("Authorization: Bearer dapi" + "0123456789abcdef" * 2, True),  # a workspace token's shape
    ("Authorization: Basic " + base64.b64encode(b"token:fake-value").decode(), True),
    ("bearer sk-proj-abc-def", True),
    ("Bearer " + _fake_jwt(), True),
    ("Bearer DATABRICKSTOKEN", True),
    ("Bearer " + "q" * 30, True),
    # the case data's and the spec's own words, quoted in every report
    ("the spec shows HTTP Basic authentication with user token", False),
    ("default_headers with Authorization Bearer next to api_key", False),
    ("Basic Authentication is refused", False),
    ("an invalid Bearer token", False),
])
def test_an_unknown_credential_is_masked_and_prose_after_the_scheme_is_not(text, masked):
    redacted = Redactor().text(text)
    assert (MASK in redacted) is masked, redacted
    if not masked:
        assert redacted == text
