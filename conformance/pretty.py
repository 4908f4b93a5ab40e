"""A case's evidence as readable HTML: request and response pretty-printed, the failed paths highlighted.

Both HTML reports show it (the built-in page, and the description of each test in the Allure report). A
response body is indented JSON, a stream one block per SSE event (its name, its data pretty-printed); long runs
of numbers (embedding vectors) are cut. Every failure message names a JSON path (`$.usage.total_tokens: ...`,
`event[3].choices[0].delta.role: ...`, `[schema x] event[2] $.id: ...`, `[step 1] [...] $....`): the member at that
path (or, when it is missing, its deepest existing parent) is marked, so the broken field is on screen.

The HTML is a fragment with inline styles and no script: Allure shows descriptions in a sanitised frame that
drops <style> elements, and the built-in page must open offline.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, cast

from conformance.sse import parse_sse

HIGHLIGHT = "background:#ffe1e1;outline:1px solid #e5484d;border-radius:2px"
WARN_HIGHLIGHT = "background:#fff1c2;outline:1px solid #d49b00;border-radius:2px"
PRE = ("background:#f6f7f9;border:1px solid #e2e5ea;border-radius:4px;padding:8px 10px;margin:4px 0 10px;"
       "font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;"
       "word-break:break-all;max-height:640px;overflow:auto")
LABEL = "font:600 12px system-ui,sans-serif;color:#444;margin:10px 0 2px"
SCALARS_SHOWN = 8  # of a long list of numbers (an embedding), the first ones are shown

_STEP = re.compile(r"^\[step (\d+)\]\s*")
_TAG = re.compile(r"^\[([^\]]+)\]\s*")
_EVENT = re.compile(r"^event\[(\d+)\]")
_PATH = re.compile(r"\$((?:\.[A-Za-z_][\w-]*|\[(?:\d+|\*)\])*)")
_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\*)\]")


@dataclass(frozen=True)
class Mark:
    """Where a failure points: a step of the case, an SSE event (or the whole body), a path inside it."""

    step: int | None
    event: int | None
    path: tuple[str | int, ...] | None  # None: the message names no path (the status line, the body)
    tag: str = ""
    warn: bool = False


def marks_of(message: str, warn: bool = False) -> Mark:
    text = message.strip()
    step = None
    found = _STEP.match(text)
    if found:
        step, text = int(found.group(1)), text[found.end():]
    tag = ""
    while True:
        found = _TAG.match(text)
        if not found:
            break
        tag = tag or found.group(1)
        text = text[found.end():]
    event = None
    found = _EVENT.match(text)
    if found:
        event, text = int(found.group(1)), text[found.end():]
        # event[3].choices[0]...: a path inside the event's data; event[3] $.x (a schema's message): the same
        text = "$" + text if text.startswith(".") else text.lstrip()
    found = _PATH.match(text)
    path = _tokens(found.group(1)) if found else (() if event is not None else None)
    return Mark(step, event, path, tag, warn)


def _tokens(text: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for key, index in _TOKEN.findall(text):
        out.append(key if key else ("*" if index == "*" else int(index)))
    return tuple(out)


def resolve(document: Any, path: tuple[str | int, ...]) -> set[tuple[str | int, ...]]:
    """The existing paths a failure path points at: wildcards expanded, a missing tail cut to its parent."""
    found: set[tuple[str | int, ...]] = set()

    def walk(value: Any, rest: tuple[str | int, ...], at: tuple[str | int, ...]) -> None:
        if not rest:
            found.add(at)
            return
        head, tail = rest[0], rest[1:]
        if head == "*" and isinstance(value, list):
            if not value:
                found.add(at)
            for i, element in enumerate(value):
                walk(element, tail, (*at, i))
        elif (isinstance(head, int) and isinstance(value, list) and 0 <= head < len(value)) or (
                isinstance(head, str) and isinstance(value, dict) and head in value):
            walk(cast(Any, value)[head], tail, (*at, head))
        else:
            found.add(at)

    walk(document, path, ())
    return found


def path_text(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# --- JSON with marks ------------------------------------------------------------------------------------------


def json_html(value: Any, marked: dict[tuple[str | int, ...], bool]) -> str:
    """Indented JSON; the members at `marked` paths wrapped in a highlight (True: a warning's colour)."""
    out: list[str] = []
    _emit(value, (), 0, marked, out, None)
    return "".join(out)


def _scalar(value: Any) -> str:
    return html.escape(json.dumps(value, ensure_ascii=False))


def _emit(value: Any, at: tuple[str | int, ...], depth: int, marked: dict[tuple[str | int, ...], bool],
          out: list[str], key: str | None) -> None:
    pad = "  " * depth
    opened = at in marked and at != ()
    out.append(pad)
    if opened:
        style = WARN_HIGHLIGHT if marked[at] else HIGHLIGHT
        out.append(f'<span class="cf-hl" data-path="{html.escape(path_text(at))}" style="{style}">')
    out.append(f"{_scalar(key)}: " if key is not None else "")
    if isinstance(value, dict) and value:
        out.append("{\n")
        items = list(value.items())
        for n, (k, v) in enumerate(items):
            _emit(v, (*at, k), depth + 1, marked, out, k)
            out.append(",\n" if n < len(items) - 1 else "\n")
        out.append(pad + "}")
    elif isinstance(value, list) and value and all(not isinstance(v, dict | list) for v in value):
        shown = value if len(value) <= SCALARS_SHOWN * 2 else value[:SCALARS_SHOWN]
        text = ", ".join(_scalar(v) for v in shown)
        more = f", ... ({len(value)} items)" if len(shown) < len(value) else ""
        out.append(f"[{text}{more}]")
    elif isinstance(value, list) and value:
        out.append("[\n")
        for n, v in enumerate(value):
            _emit(v, (*at, n), depth + 1, marked, out, None)
            out.append(",\n" if n < len(value) - 1 else "\n")
        out.append(pad + "]")
    else:
        out.append(_scalar(value))
    if opened:
        out.append("</span>")


# --- one exchange ---------------------------------------------------------------------------------------------


def _pre(content: str, css_class: str, marked: bool = False) -> str:
    style = PRE + (";" + HIGHLIGHT if marked else "")
    return f'<pre class="{css_class}" style="{style}">{content}</pre>'


def _headers(headers: dict[str, Any]) -> str:
    lines = "\n".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in (headers or {}).items())
    return (f'<details class="cf-headers"><summary style="{LABEL};cursor:pointer">headers</summary>'
            f"{_pre(lines, 'cf-header-lines')}</details>")


def _marked_paths(document: Any, marks: list[Mark]) -> dict[tuple[str | int, ...], bool]:
    out: dict[tuple[str | int, ...], bool] = {}
    for mark in marks:
        if mark.path is None:
            continue
        for path in resolve(document, mark.path):
            out[path] = out.get(path, True) and mark.warn  # a failure's colour wins over a warning's
    return out


def body_html(text: str, content_type: str, marks: list[Mark], css_class: str) -> str:
    """A body: SSE events one by one, JSON indented (marks on their paths), anything else as it is."""
    if "text/event-stream" in content_type:
        return _events_html(text, marks)
    whole = [m for m in marks if m.event is None]
    try:
        document = json.loads(text) if text.strip() else None
    except ValueError:
        return _pre(html.escape(text) or "(empty)", css_class, marked=any(m.path is None for m in whole))
    if document is None:
        return _pre("(empty)", css_class)
    return _pre(json_html(document, _marked_paths(document, whole)), css_class,
                marked=any(m.path == () for m in whole))


def _events_html(text: str, marks: list[Mark]) -> str:
    parts = ['<div class="cf-events">']
    for index, event in enumerate(parse_sse(text)):
        mine = [m for m in marks if m.event == index]
        name = f" ({html.escape(event.event)})" if event.event else ""
        try:
            payload = json.loads(event.data)
            content = json_html(payload, _marked_paths(payload, mine))
        except ValueError:
            content = html.escape(event.data)
        whole = any(m.path == () for m in mine)
        parts.append(f'<div class="cf-event" data-event="{index}"><div style="{LABEL}">event[{index}]{name}</div>'
                     f"{_pre(content, 'cf-event-data', marked=whole)}</div>")
    parts.append("</div>")
    return "".join(parts)


def exchange_html(document: dict[str, Any], marks: list[Mark], label: str = "") -> str:
    """One `exchange` evidence document (evidence.exchange_document): the response first, then the request."""
    request, response = document.get("request", {}), document.get("response", {})
    headers = response.get("headers") or {}
    ctype = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
    status_marked = any(m.tag in ("status",) for m in marks)
    status_style = LABEL + (";" + HIGHLIGHT if status_marked else "")
    body = request.get("body")
    request_text = body if isinstance(body, str) else json.dumps(body)
    return (
        f'<div class="cf-exchange" data-step="{html.escape(label)}">'
        f'<div class="cf-status" style="{status_style}">{html.escape(label)}response: HTTP '
        f"{html.escape(str(response.get('status')))} {html.escape(ctype)}</div>"
        + body_html(str(response.get("body", "")), ctype, marks, "cf-json cf-response-body")
        + _headers(headers)
        + f'<div style="{LABEL}">{html.escape(label)}request: {html.escape(str(request.get("method", "")))} '
          f"{html.escape(str(request.get('url', '')))}</div>"
        + body_html(request_text, "application/json", [], "cf-json cf-request-body")
        + _headers(request.get("headers") or {})
        + "</div>"
    )


def evidence_html(exchanges: list[dict[str, Any]], messages: list[tuple[str, bool]]) -> str:
    """Every exchange of a case (earlier steps first) with the marks of its failure messages (text, is_warning)."""
    marks = [marks_of(text, warn) for text, warn in messages]
    parts = []
    for index, document in enumerate(exchanges):
        label = f"step {index} " if len(exchanges) > 1 else ""
        mine = [m for m in marks if (m.step if m.step is not None else len(exchanges) - 1) == index]
        parts.append(exchange_html(document, mine, label))
    return "".join(parts)
