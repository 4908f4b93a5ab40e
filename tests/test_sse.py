"""The SSE parser reads every framing the event-stream format allows (WHATWG HTML, "Interpreting an event
stream"), and the reference gateway's sse-split / gzip variations really put their bytes on the wire that way."""

from __future__ import annotations

import gzip
import json
import socket

import anyio
import pytest

from conformance.gateway.server import ThreadedGateway
from conformance.sse import parse_sse

PLAIN = 'event: a\ndata: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'


def events(text: str) -> list[tuple[str | None, str]]:
    return [(e.event, e.data) for e in parse_sse(text)]


EXPECTED = [("a", '{"n": 1}'), (None, '{"n": 2}'), (None, "[DONE]")]


@pytest.mark.parametrize("text", [
    PLAIN,
    PLAIN.replace("\n", "\r\n"),                                   # CRLF
    PLAIN.replace("\n", "\r"),                                     # lone CR
    'event: a\r\ndata: {"n": 1}\n\rdata: {"n": 2}\r\n\ndata: [DONE]\r\r',  # mixed line ends
    PLAIN.replace("data: ", "data:").replace("event: ", "event:"),  # no space after the colon
    ": keep-alive\n\n" + PLAIN.replace('data: {"n": 2}', ': a comment\ndata: {"n": 2}'),  # comments
    "\ufeff" + PLAIN,                                              # a byte-order mark at the start
    PLAIN.replace('data: {"n": 1}', 'id: 7\nretry: 3000\nfoo: bar\ndata: {"n": 1}'),  # fields that are ignored
    PLAIN.replace('data: {"n": 2}', "event:\ndata: {\"n\": 2}"),  # an empty event name: no name
])
def test_every_allowed_framing_reads_the_same(text):
    assert events(text) == EXPECTED


def test_data_lines_join_with_newlines_and_only_one_space_is_removed():
    assert events('data: {"n":\ndata:  1}\n\n') == [(None, '{"n":\n 1}')]
    assert json.loads(parse_sse('data: {"n":\ndata:  1}\n\n')[0].data) == {"n": 1}
    assert events("data\n\n") == [(None, "")], "a field name without a colon has an empty value"
    assert events("event: x\n\n") == [], "no data: no event"


def _raw_request(url: str, path: str, body: dict, accept_gzip: bool = False) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n"
            + ("Accept-Encoding: gzip\r\n" if accept_gzip else "") + "\r\n").encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + payload)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def _chunks(raw: bytes) -> tuple[bytes, list[bytes]]:
    """(headers, the chunks of a chunked body, as the server framed them)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    out = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out.append(rest[:size])
        body = rest[size + 2:]
    return head, out


STREAM = {"model": "system.ai.claude-sonnet-4-5", "stream": True, "max_tokens": 32,
          "messages": [{"role": "user", "content": "What is Databricks?"}]}


def test_sse_split_sends_a_stream_in_pieces_cut_anywhere_even_inside_characters():
    with ThreadedGateway("t", ["sse-split"]) as gateway:
        head, pieces = _chunks(_raw_request(gateway.url, "/ai-gateway/mlflow/v1/chat/completions", STREAM))
    assert b"text/event-stream" in head
    assert len(pieces) > 50 and max(map(len, pieces)) <= 13
    body = b"".join(pieces)
    assert "naïve".encode() in body
    torn = [p for p in pieces if not _decodes(p)]
    assert torn, "some piece ends inside a multi-byte UTF-8 character"
    assert not all(p.endswith(b"\n\n") for p in pieces)
    texts = [json.loads(e.data) for e in parse_sse(body.decode()) if not e.is_done]
    assert texts and all(t["object"] == "chat.completion.chunk" for t in texts)


def _decodes(piece: bytes) -> bool:
    try:
        piece.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_gzip_compresses_when_asked_and_keeps_a_stream_a_stream():
    with ThreadedGateway("t", ["gzip"]) as gateway:
        plain = _raw_request(gateway.url, "/ai-gateway/mlflow/v1/chat/completions", STREAM)
        head, pieces = _chunks(_raw_request(gateway.url, "/ai-gateway/mlflow/v1/chat/completions", STREAM, True))
    assert b"content-encoding: gzip" not in plain.lower(), "not asked: not compressed"
    assert b"content-encoding: gzip" in head.lower()
    assert len(pieces) > 3, "flushed event by event"
    text = gzip.decompress(b"".join(pieces)).decode()
    assert text.endswith("data: [DONE]\n\n") and len(parse_sse(text)) > 3


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 200])
def test_an_unpaced_stream_made_in_batches_sends_every_event_in_order(count):
    from conformance.gateway.framing import made_in_batches

    async def sent() -> list[str]:
        return [event async for event in made_in_batches(iter(f"e{n}" for n in range(count)), size=64)]

    assert anyio.run(sent) == [f"e{n}" for n in range(count)]


def test_an_event_that_raises_ends_the_batched_stream_after_the_events_before_it():
    from conformance.gateway.framing import made_in_batches

    def events():
        yield "a"
        yield "b"
        raise RuntimeError("cut")

    async def sent() -> list[str]:
        out = []
        with pytest.raises(RuntimeError, match="cut"):
            async for event in made_in_batches(events(), size=64):
                out.append(event)
        return out

    assert anyio.run(sent) == ["a", "b"]
