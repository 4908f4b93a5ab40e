"""How the reference gateway puts answers on the wire: the one SSE writer of every streaming surface, and the
transport variations (bodies sent in pieces, gzip).

By default every stream is written the plain way (`event:` when the surface names events, `data: <json>`, LF,
a blank line). The variations write what the SSE format and HTTP also allow, so the self-tests prove the suite
reads it:
- sse-framing: CRLF line ends, no space after the colon, JSON spread over several `data:` lines, `id:` and
  `retry:` fields, comment lines. On the Gemini route only what the documented google-genai client reads
  (it takes `data: ` with its space, and treats any other line as raw JSON): CRLF and several `data: ` lines.
- sse-split: every stream sent in pieces of 1 to 13 bytes, cut anywhere, inside multi-byte UTF-8 characters
  too (JSON is written with its non-ASCII characters as they are).
- gzip: every answer compressed (Content-Encoding: gzip) when the request accepts gzip; a stream is flushed
  after every piece, so it stays a stream.

In time: by default every stream is written as fast as it is made. `serve --stream-delay S` (GatewayState.
stream_delay_s) makes each event wait S seconds per token it carries, as a model generates them, so the suite's
incremental-stream check has something to measure. The stream-buffered deviation makes the tokens at a realistic
pace too (BUFFERED_PACE_S at least), but holds the whole stream back and sends it at the end, as a proxy with
response buffering on does (`stream_response`).
"""

from __future__ import annotations

import itertools
import json
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from conformance.gateway.common import GatewayState, state_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GEMINI_PREFIX = "/ai-gateway/gemini/"
BUFFERED_PACE_S = 0.008  # the stream-buffered deviation's token pace: 160 words take 1.3 s


def model_paced(state: GatewayState) -> bool:
    """Whether a switch's own model pace (stream-buffered's, stream-role-chunk-first's) applies: on a self-test
    gateway only where it streams at a pace (tests/harness.py: the lane of the streams a check times), on any
    other gateway always. Where it does not, no stream of the gateway waits at all."""
    return not state.self_test or bool(state.stream_delay_s)


class SSEWriter:
    """Writes the events of one stream in the framing the gateway's switches ask for."""

    def __init__(self, request: Request) -> None:
        state = state_of(request)
        on = state.on
        self.framed = on("sse-framing")
        self.gemini = request.url.path.startswith(GEMINI_PREFIX)
        self.ascii = not on("sse-split")
        self.count = 0
        self.model_paced = model_paced(state)
        buffered = on("stream-buffered") and self.model_paced
        self.pace_s = max(state.stream_delay_s, BUFFERED_PACE_S if buffered else 0.0)
        self.first_token_s = 0.0  # a wait before the first token (time to first token), set by a surface
        self.tokens = 0

    def event(self, payload: Any, name: str | None = None, tokens: int = 0) -> str:
        """One event: its payload as JSON (a string payload is sent as it is), under an SSE event name. An event
        carrying `tokens` tokens of output is made at the writer's pace (the writer runs in Starlette's thread
        pool, so sleeping here holds back this stream only)."""
        if tokens:
            wait = tokens * self.pace_s + (self.first_token_s if not self.tokens else 0.0)
            self.tokens += tokens
            if wait:
                time.sleep(wait)
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=self.ascii)
        self.count += 1
        if not self.framed:
            head = f"event: {name}\n" if name else ""
            return f"{head}data: {data}\n\n"
        if isinstance(payload, str):
            lines = [data]
        else:  # the same JSON, pretty-printed: its line breaks fall between tokens, so the joined lines parse
            lines = json.dumps(payload, ensure_ascii=self.ascii, indent=1).split("\n")
        if self.gemini:
            return "".join(f"data: {line}\r\n" for line in lines) + "\r\n"
        out = [": keep-alive\r\n\r\n"] if self.count == 1 else []
        if name:
            out.append(f"event:{name}\r\n")
        out.append(f"id:{self.count}\r\n")
        if self.count == 1:
            out.append("retry:3000\r\n")
        out.append(f": event {self.count}\r\n")
        out += [f"data:{line}\r\n" for line in lines]
        out.append("\r\n")
        return "".join(out)


def stream_response(request: Request, events: Iterator[str]) -> StreamingResponse:
    """A stream's response: its events as they are made, or, with the stream-buffered deviation, all of them in
    one piece once the last is made (the headers go at once either way)."""
    state = state_of(request)
    if state.on("stream-buffered"):
        def buffered() -> Iterator[str]:
            yield "".join(events)

        return StreamingResponse(buffered(), media_type="text/event-stream")
    if not model_paced(state):  # nothing paces it
        return StreamingResponse(made_in_batches(events), media_type="text/event-stream")
    return StreamingResponse(events, media_type="text/event-stream")


async def made_in_batches(events: Iterator[str], size: int = 64) -> AsyncIterator[str]:
    """The events of an unpaced stream, made up to `size` at a time in one call to the thread pool, and sent one
    by one as before (a piece each). Starlette makes a synchronous stream's events one thread-pool call each,
    which on a self-test gateway was a third of the work of a stream. An event that raises ends the stream after
    the events made before it, as it did."""
    def take() -> tuple[list[str], BaseException | None]:
        made: list[str] = []
        try:
            for event in itertools.islice(events, size):
                made.append(event)
        except BaseException as exc:  # sent on after the events made before it
            return made, exc
        return made, None

    while True:
        made, failure = await anyio.to_thread.run_sync(take)
        for event in made:
            yield event
        if failure is not None:
            raise failure
        if len(made) < size:
            return


class TransportVariations:
    """ASGI middleware for the sse-split and gzip variations (inert when neither is on)."""

    def __init__(self, app: ASGIApp, state: GatewayState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.state.on("gzip") and _accepts_gzip(scope):
            send = _gzipping(send)
        if self.state.on("sse-split"):
            send = _splitting(send, random.Random(scope.get("path", "")))
        await self.app(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key.lower() == b"accept-encoding":
            codings = [c.split(b";")[0].strip().lower() for c in value.split(b",")]
            return b"gzip" in codings or b"*" in codings
    return False


def _gzipping(send: Send) -> Send:
    """Compress the body; every body message is flushed (a stream's events reach the client as they come)."""
    compressor = zlib.compressobj(wbits=31)  # the gzip container

    async def compressing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
            await send({**message, "headers": headers})
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        more = message.get("more_body", False)
        body = compressor.compress(message.get("body", b""))
        body += compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
        await send({**message, "body": body})

    return compressing


def _splitting(send: Send, rng: random.Random) -> Send:
    """Send a stream's body in pieces of 1 to 13 bytes, wherever they fall (a JSON answer is left whole)."""
    streaming = False

    async def split(message: Message) -> None:
        nonlocal streaming
        if message["type"] == "http.response.start":
            streaming = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                            for k, v in message.get("headers", []))
            await send(message)
            return
        if message["type"] != "http.response.body" or not streaming:
            await send(message)
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        at = 0
        while at < len(body):
            size = rng.randint(1, 13)
            await send({"type": "http.response.body", "body": body[at:at + size], "more_body": True})
            at += size
        if not more:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return split
