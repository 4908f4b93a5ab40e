"""Every check on small answers, broken and not, as data (tests/check_cases/*.yaml), in the manner of
JSON-Schema-Test-Suite: a group names a check; each test gives an answer (a JSON body, or a list of SSE events),
optionally the request it answers and the check's arguments, and the messages the check must give (substrings, in
order; [] for none). One runner judges them through the judge's own wrapper (evaluate.run_check), and every
registered check has at least one table test it fails and one it passes. Checks that look beyond one answer get
it from the table too: `previous` (earlier steps' answers, each {answer} or {events}), `nonce` and `others`
(a concurrent case: this answer's nonce, and the other answers sent with it, each {nonce, answer}), and
`event_times` (seconds from the request at which each event arrived: the answer is timed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import CHECKS, CheckContext
from conformance.client import Exchange
from conformance.evaluate import run_check
from conformance.timing import Timing, event_ends
from conformance.yamlio import load_yaml

TABLES = Path(__file__).with_name("check_cases")
GROUP_KEYS = {"check", "description", "request", "args", "tests"}
TEST_KEYS = {"description", "request", "args", "answer", "events", "content_type", "expected", "previous", "nonce",
             "others", "event_times"}


def tables() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, group, test) of every table test."""
    for path in sorted(TABLES.glob("*.yaml")):
        for group in load_yaml(path):
            for test in group.get("tests", []):
                yield f"{path.stem}:{group.get('check')}:{test.get('description')}", group, test


TESTS = list(tables())


def sse_text(events: list[Any]) -> str:
    """An event is a payload (sent as `data: <JSON>`), a string (sent as it is: "[DONE]", or data that is not
    JSON), or {sse_event: NAME, data: payload} (an event with an SSE event name, as Anthropic's)."""
    out = []
    for event in events:
        head = ""
        if isinstance(event, dict) and set(event) == {"sse_event", "data"}:
            head, event = f"event: {event['sse_event']}\n", event["data"]
        data = event if isinstance(event, str) else json.dumps(event)
        out.append(f"{head}data: {data}\n\n")
    return "".join(out)


def answer(test: dict[str, Any], request: Any) -> Exchange:
    """One answer of a table: a JSON body (`answer`) or SSE events (`events`), as the HTTP lane reads them."""
    if "events" in test:
        text, content_type, stream = sse_text(test["events"]), "text/event-stream", True
    else:
        text, content_type = json.dumps(test["answer"]), "application/json"
        stream = isinstance(request, dict) and request.get("stream") is True
    headers = {"content-type": test.get("content_type", content_type)}
    exchange = Exchange("POST", "http://table.invalid", {}, request, None, 200, headers, text, stream)
    exchange.nonce = test.get("nonce")
    if "event_times" in test:  # each event's end arrives at its time (timing.event_ends frames them)
        ends = event_ends(text)
        exchange.timing = Timing(test["event_times"][0], test["event_times"][-1],
                                 tuple(zip(ends, test["event_times"], strict=True)))
    return exchange


def context(group: dict[str, Any], test: dict[str, Any]) -> CheckContext:
    request = test.get("request", group.get("request"))
    exchange = answer(test, request)
    exchange.previous = [answer(p, None) for p in test.get("previous", [])]
    concurrent = [exchange, *(answer(o, request) for o in test.get("others", []))] if "others" in test else []
    return CheckContext(request, exchange, None, dict(test.get("args", group.get("args")) or {}), group=concurrent)


@pytest.mark.parametrize(("group", "test"), [(g, t) for _, g, t in TESTS], ids=[i for i, _, _ in TESTS])
def test_check_table(group: dict[str, Any], test: dict[str, Any]) -> None:
    messages = run_check(group["check"], context(group, test))
    expected = test["expected"]
    assert len(messages) == len(expected) and all(e in m for e, m in zip(expected, messages, strict=True)), (
        f"{group['check']}: {test['description']}:\n expected {expected}\n got      {messages}")


def test_tables_are_well_formed() -> None:
    assert TESTS, f"no table tests under {TABLES}"
    for name, group, test in TESTS:
        assert group.get("check") in CHECKS, f"{name}: {group.get('check')!r} is not a registered check"
        assert set(group) <= GROUP_KEYS and group.get("description"), f"{name}: group keys {sorted(group)}"
        assert set(test) <= TEST_KEYS and test.get("description"), f"{name}: test keys {sorted(test)}"
        assert ("answer" in test) != ("events" in test), f"{name}: exactly one of answer and events"
        assert isinstance(test.get("expected"), list), f"{name}: expected is a list of substrings ([]: none)"


def test_every_registered_check_has_a_table_test_it_fails_and_one_it_passes() -> None:
    failing = {g["check"] for _, g, t in TESTS if t["expected"]}
    passing = {g["check"] for _, g, t in TESTS if not t["expected"]}
    assert sorted(set(CHECKS) - failing) == [], "checks without a broken answer in tests/check_cases/"
    assert sorted(set(CHECKS) - passing) == [], "checks without a conformant answer in tests/check_cases/"
