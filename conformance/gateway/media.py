"""Audio and video parts (001 Audio and video) on the reference gateway: data URIs, inline base64, URLs.

Payloads are decoded strictly and their first bytes must match the declared mime type (for the types the
gateway knows: MP3, WAV, MP4). URL parts are fetched only when they point at a loopback address (the suite's
local fixture server); a YouTube URL is recognised by its host as a video ("For video, YouTube URLs are also
supported"), never fetched; any other http(s) URL is accepted unfetched: the gateway must run offline.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request

from conformance.catalog import Model
from conformance.gateway.common import ApiError, state_of

DATA_URI = re.compile(r"^data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+);base64,(.*)$", re.DOTALL)
MEDIA_PREFIXES = ("audio/", "video/", "image/", "application/pdf", "text/")
KIND_OF_MIME = {"audio/mp3": "mp3", "audio/mpeg": "mp3", "audio/wav": "wav", "audio/x-wav": "wav",
                "audio/wave": "wav", "video/mp4": "mp4"}
CHAT_PART_TYPES = {"video_url": "video/", "audio_url": "audio/"}
YOUTUBE_HOSTS = frozenset({"youtube.com", "youtu.be"})


def sniff(data: bytes) -> str | None:
    """mp3 | wav | mp4 from the first bytes, None when unknown."""
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


def check_payload(where: str, mime: Any, data: bytes) -> None:
    if not isinstance(mime, str) or not mime.startswith(MEDIA_PREFIXES):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: unsupported mime type {mime!r}.")
    if not data:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: empty media payload.")
    expected = KIND_OF_MIME.get(mime.lower())
    if expected is not None and sniff(data) != expected:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: the payload is not {mime} data.")


def camel_only(request: Request, where: str, part: dict[str, Any], field: str) -> None:
    """Protobuf JSON accepts a field's lowerCamelCase and its original snake_case name; the google-genai
    client sends `mime_type`/`file_uri` inside parts. The gemini-snake-case-refused switch reads camelCase only."""
    if state_of(request).on("gemini-snake-case-refused") and field not in part:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.{field} is required.")


def decode_base64(request: Request, where: str, data: Any, proto_json: bool = False) -> bytes:
    """Strict base64. proto_json: Gemini's inlineData.data is a protobuf JSON `bytes` field, where "either
    standard or URL-safe base64 encoding with/without paddings are accepted" (the google-genai client sends
    URL-safe base64)."""
    if not isinstance(data, str):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: base64 data must be a string.")
    if state_of(request).on("gemini-base64-not-validated"):
        try:
            return base64.b64decode(data + "==", validate=False) or b"\0"
        except (binascii.Error, ValueError):
            return b"\0"
    if proto_json:
        data = data.replace("-", "+").replace("_", "/")
        data += "=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: invalid base64 data.") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_youtube(host: str) -> bool:
    host = host.lower()
    return host in YOUTUBE_HOSTS or host.endswith(".youtube.com")


async def check_url(request: Request, where: str, url: Any, mime: str | None) -> None:
    if not isinstance(url, str):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: the URL must be a string.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: {url[:80]!r} is not an http(s) URL.")
    if is_youtube(parts.hostname):
        # "For video, YouTube URLs are also supported" (001): a video page, recognised by its host, never fetched
        if state_of(request).on("youtube-url-refused"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: {url[:80]!r} is not a media file.")
        return
    if not _loopback(parts.hostname):
        return  # a public URL: accepted unfetched (the reference gateway runs offline)
    try:
        # plain HTTP on loopback needs no CA bundle: loading one is most of the cost of a fetch
        async with httpx.AsyncClient(timeout=5.0, verify=parts.scheme == "https") as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: cannot fetch {url}: {type(exc).__name__}.") from None
    if response.status_code != 200:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: fetching {url} gave HTTP {response.status_code}.")
    declared = mime or response.headers.get("content-type", "").split(";")[0]
    check_payload(where, declared, response.content)


def refuse_if_switched(request: Request, where: str) -> None:
    if state_of(request).on("media-parts-refused"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}: audio and video input is not supported.")


def require_audio_video(request: Request, model: Model, where: str) -> None:
    if not model.has("audio_video") and not state_of(request).on("media-non-gemini-accepted"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE",
                       f"{where}: model {model.name!r} does not accept audio or video input.")


async def validate_chat_parts(request: Request, model: Model, messages: Any) -> None:
    """video_url / audio_url content parts of Chat Completions: {"url": web URL or data URI}."""
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in CHAT_PART_TYPES:
                continue
            where = f"messages[{i}].content[{j}]"
            refuse_if_switched(request, where)
            require_audio_video(request, model, where)
            url = part.get(kind, {}).get("url") if isinstance(part.get(kind), dict) else None
            if not isinstance(url, str):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.{kind}.url must be a string.")
            match = DATA_URI.match(url)
            if url.startswith("data:"):
                if not match or not match.group(1).startswith(CHAT_PART_TYPES[kind]):
                    raise ApiError(400, "INVALID_PARAMETER_VALUE",
                                   f"{where}: a {kind} data URI must be data:{CHAT_PART_TYPES[kind]}*;base64,...")
                check_payload(where, match.group(1), decode_base64(request, where, match.group(2)))
            else:
                await check_url(request, where, url, None)


async def validate_gemini_part(request: Request, model: Model, where: str, part: dict[str, Any]) -> None:
    """inlineData {mimeType, data} and fileData {mimeType, fileUri} parts (camelCase or snake_case)."""
    inline = part.get("inlineData", part.get("inline_data"))
    file_data = part.get("fileData", part.get("file_data"))
    if inline is None and file_data is None:
        return
    refuse_if_switched(request, where)
    require_audio_video(request, model, where)
    if inline is not None:
        if not isinstance(inline, dict):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.inlineData must be an object.")
        camel_only(request, f"{where}.inlineData", inline, "mimeType")
        mime = inline.get("mimeType", inline.get("mime_type"))
        data = decode_base64(request, f"{where}.inlineData.data", inline.get("data"), proto_json=True)
        if not state_of(request).on("gemini-base64-not-validated"):
            check_payload(f"{where}.inlineData", mime, data)
    if file_data is not None:
        if not isinstance(file_data, dict):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.fileData must be an object.")
        camel_only(request, f"{where}.fileData", file_data, "fileUri")
        mime = file_data.get("mimeType", file_data.get("mime_type"))
        if mime is not None and (not isinstance(mime, str) or not mime.startswith(MEDIA_PREFIXES)):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{where}.fileData: unsupported mime type {mime!r}.")
        await check_url(request, f"{where}.fileData", file_data.get("fileUri", file_data.get("file_uri")), mime)
