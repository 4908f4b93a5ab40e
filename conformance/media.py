"""Media fixtures for case bodies (001 Audio and video): `{media:FILE:FORM}` placeholders.

A case body may name a fixture of conformance/data/media/ in any string:
  {media:video.mp4:base64}   the file's standard base64 (inlineData.data)
  {media:video.mp4:datauri}  data:<mime>;base64,<...> (the data-URI form of video_url / audio_url)
  {media:video.mp4:url}      a web URL of the file: the target profile's `media_urls` entry, else (target on
                             loopback only) a URL of a file server on 127.0.0.1 that this process starts on first
                             use and stops at exit; a case that needs a URL the target cannot reach is skipped.
  {media:youtube:url}        a YouTube video's URL ("For video, YouTube URLs are also supported"): the target
                             profile's `media_urls: {youtube: ...}`, else a short public video; no file of ours
The fixtures are small and made by data/media/make_media.py, offline.
"""

from __future__ import annotations

import atexit
import base64
import re
import threading
from collections.abc import Iterable
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conformance.config import Target, is_local
from conformance.errors import BadInput
from conformance.resources import DATA_DIR

MEDIA_DIR = DATA_DIR / "media"
PLACEHOLDER = re.compile(r"\{media:([A-Za-z0-9][A-Za-z0-9._-]*):(base64|datauri|url)\}")
# mime types as the documented examples write them (001: "audio/mp3", "video/mp4")
MIME_TYPES = {".mp3": "audio/mp3", ".wav": "audio/wav", ".mp4": "video/mp4"}
# media that are web pages, not files of ours: URL form only, reachable by any target; a profile's media_urls entry
# of the same name replaces the default (a video of the workspace's choosing). "Me at the zoo", 19 s, public since 2005.
REMOTE_MEDIA = {"youtube": "https://www.youtube.com/watch?v=jNQXAC9IVRw"}


class MediaUnavailable(Exception):
    """A URL form was asked for, and the target can reach no URL of that fixture."""


def mime_type(name: str) -> str:
    suffix = name[name.rfind("."):]
    if suffix not in MIME_TYPES:
        raise BadInput(f"media fixture {name!r}: unknown type (known: {', '.join(MIME_TYPES)})")
    return MIME_TYPES[suffix]


@cache
def fixture_bytes(name: str) -> bytes:
    path = MEDIA_DIR / name
    if not path.is_file() or name not in {p.name for p in MEDIA_DIR.iterdir()}:
        raise BadInput(f"media fixture {name!r} not found in {MEDIA_DIR}")
    return path.read_bytes()


class _Quiet(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mp3": "audio/mpeg", ".mp4": "video/mp4",
                      ".wav": "audio/wav", ".py": "application/octet-stream"}

    def log_message(self, *args: Any) -> None:  # no access log on the suite's output
        pass


class _FileServer:
    """The fixtures folder over HTTP on 127.0.0.1 (a free port), in a daemon thread of this process."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(MEDIA_DIR)))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        atexit.register(self.stop)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_state: dict[str, Any] = {"target": None, "server": None}
_lock = threading.Lock()


def use_target(target: Target) -> None:
    """The target the placeholders are expanded for (its media_urls, whether it is on loopback)."""
    _state["target"] = target


def url_of(name: str, target: Target | None = None) -> str:
    target = target or _state["target"]
    if target is not None and name in target.media_urls:
        return target.media_urls[name]
    if name in REMOTE_MEDIA:
        return REMOTE_MEDIA[name]
    fixture_bytes(name)
    if target is None or not reachable(name, target):
        raise MediaUnavailable(f"no media_urls entry for {name} in the target profile, and the target is not on "
                               "loopback (a local file server would be unreachable for it)")
    with _lock:
        if _state["server"] is None:
            _state["server"] = _FileServer()
    return f"{_state['server'].url}/{name}"


def _replace(match: re.Match[str]) -> str:
    name, form = match.group(1), match.group(2)
    if form == "url":
        return url_of(name)
    if name in REMOTE_MEDIA:
        raise BadInput(f"media {name!r} is a web page: only its url form exists, not {form}")
    encoded = base64.standard_b64encode(fixture_bytes(name)).decode("ascii")
    return encoded if form == "base64" else f"data:{mime_type(name)};base64,{encoded}"


def expand(text: str) -> str:
    return PLACEHOLDER.sub(_replace, text) if "{media:" in text else text


def references(value: Any) -> list[tuple[str, str]]:
    """(file, form) of every placeholder in a case body."""
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def reachable(name: str, target: Target) -> bool:
    """Whether url_of can give this target a URL of the fixture (the reference gateway is on loopback)."""
    return name in target.media_urls or name in REMOTE_MEDIA or target.url is None or is_local(target.url)


def unreachable(refs: Iterable[tuple[str, str]], target: Target) -> list[str]:
    """Why a case body's URL placeholders (its `references`) cannot be served to this target ([] when they can)."""
    return [f"no media_urls entry for {name} in the target profile, and the target is not on loopback"
            for name, form in refs if form == "url" and not reachable(name, target)]
