"""Image input of Chat Completions on the reference gateway (001 Vision / Input image requirements).

Every limit of the vision table, per model family, from the catalog (data/models.yaml): supported formats,
non-animated GIF on the GPT-5 family, image count, 10 MB total, Claude's 8000x8000 px and its 2000x2000 px
rule when more than 20 images are sent. Each rule has a deviation switch that turns exactly it off.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from conformance.catalog import Model
from conformance.gateway.common import ApiError, state_of

DATA_URI = re.compile(r"^data:([^;,]*)(;base64)?,(.*)$", re.DOTALL)


def image_parts(messages: list[Any]) -> list[Any]:
    return [part for message in messages if isinstance(message, dict) and isinstance(message.get("content"), list)
            for part in message["content"] if isinstance(part, dict) and part.get("type") == "image_url"]


def from_anthropic(messages: Any) -> list[Any]:
    """Anthropic image blocks as Chat Completions image_url parts: one set of rules judges both APIs (the vision
    table of 001 is per model, whichever API carries the images)."""
    converted: list[Any] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            continue
        parts = []
        for block in message["content"]:
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            source = block.get("source")
            if not isinstance(source, dict):
                source = {}
            url = (f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
                   if source.get("type") == "base64" else source.get("url"))
            parts.append({"type": "image_url", "image_url": {"url": url}})
        converted.append({"role": message.get("role"), "content": parts})
    return converted


def _reject(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


@dataclass(frozen=True)
class ImageFacts:
    """What a data URI holds: its problem (not a data URI, not base64, not an image's media type, unreadable
    bytes), else its byte count, format, size and whether it is animated."""

    problem: str | None = None  # uri | base64 | media | unreadable
    media_type: str = ""
    byte_count: int = 0
    format: str | None = None
    size: tuple[int, int] = (0, 0)
    animated: bool = False


FACTS_MAX_CHARS = 64 << 20  # the data URIs remembered at most (then the memo starts again)
_facts_memo: dict[str, ImageFacts] = {}
_facts_chars = 0


def image_facts(url: str) -> ImageFacts:
    """A pure function of the URI, remembered by it: the size-limit cases send megabytes of base64 that a
    self-test gateway is sent again under every switch applied to them, and decoding is most of its answer."""
    global _facts_chars
    found = _facts_memo.get(url)
    if found is None:
        found = _read_facts(url)
        if _facts_chars + len(url) > FACTS_MAX_CHARS:
            _facts_memo.clear()
            _facts_chars = 0
        _facts_memo[url] = found
        _facts_chars += len(url)
    return found


def _read_facts(url: str) -> ImageFacts:
    match = DATA_URI.match(url)
    if match is None:
        return ImageFacts("uri")
    media_type, is_base64, data = match.groups()
    try:
        raw = base64.b64decode(data, validate=True) if is_base64 else data.encode()
    except (binascii.Error, ValueError):
        return ImageFacts("base64", media_type)
    if not media_type.startswith("image/"):
        return ImageFacts("media", media_type, len(raw))
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as image:
            return ImageFacts(None, media_type, len(raw), (image.format or "").lower(), image.size,
                              bool(getattr(image, "is_animated", False)))
    except Exception:  # Pillow raises many kinds for bytes that are not an image
        return ImageFacts("unreadable", media_type, len(raw))


def _inspect(url: str, index: int, lenient: Callable[[], bool]) -> ImageFacts:
    """The facts of a data URI, or the refusal of its problem; web URLs are not fetched (size unknown).

    lenient (the vision-non-image-accepted deviation, asked only for a payload that is not an image): such a
    payload passes, format None.
    """
    facts = image_facts(url)
    if facts.problem == "uri":
        raise _reject(f"image {index}: url must be a data URI (data:image/...;base64,...) or an http(s) URL.")
    if facts.problem == "base64":
        raise _reject(f"image {index}: the data URI is not valid base64.")
    if facts.problem == "media" and not lenient():
        raise _reject(f"image {index}: media type {facts.media_type!r} is not an image.")
    if facts.problem == "unreadable" and not lenient():
        raise _reject(f"image {index}: the data is not a readable image.")
    return facts


def validate_images(request: Request, model: Model, messages: list[Any]) -> None:
    parts = image_parts(messages)
    if not parts:
        return
    on = state_of(request).on
    if not model.has("vision"):
        if on("image-parts-accepted-without-vision"):
            return
        raise _reject(f"Model {model.service_name!r} does not accept image input.")
    limits = model.vision
    formats = limits.get("formats", [])
    count = len(parts)
    if count > limits.get("max_images", count) and not on("vision-image-count-not-enforced"):
        raise _reject(f"{count} images: at most {limits['max_images']} images per request.")
    many = limits.get("many_images_threshold")
    total = 0
    for index, part in enumerate(parts):
        url = part.get("image_url", {}).get("url") if isinstance(part.get("image_url"), dict) else None
        if not isinstance(url, str):
            raise _reject(f"image {index}: image_url.url must be a string.")
        if url.startswith(("http://", "https://")):
            continue
        facts = _inspect(url, index, lambda: on("vision-non-image-accepted"))
        total += facts.byte_count
        fmt, (width, height), animated = facts.format, facts.size, facts.animated
        if fmt is None:
            continue
        if fmt not in formats or (fmt == "webp" and on("vision-webp-refused")):
            supported = ", ".join(f for f in formats if f != fmt)
            raise _reject(f"image {index}: format {fmt!r} is not supported (supported: {supported}).")
        if animated and not limits.get("animated_gif", True) and not on("vision-animated-gif-accepted"):
            raise _reject(f"image {index}: animated GIFs are not supported.")
        max_w, max_h = limits.get("max_pixels") or (width, height)
        if (width > max_w or height > max_h) and not on("vision-max-pixels-not-enforced"):
            raise _reject(f"image {index}: {width}x{height} px is larger than {max_w}x{max_h} px.")
        if many:  # a switch is asked only where it changes the answer (GatewayState.on)
            many_w, many_h = limits["many_images_max_pixels"]
            too_big = width > many_w or height > many_h
            over = count > many or (count == many and too_big and on("vision-many-images-rule-at-threshold"))
            if over and too_big and not on("vision-many-images-size-not-enforced"):
                raise _reject(f"image {index}: with more than {many} images each may be at most "
                              f"{many_w}x{many_h} px, not {width}x{height}.")
    max_total = limits.get("max_total_bytes")
    if max_total is not None and total > max_total and not on("vision-total-bytes-not-enforced"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"images total {total} bytes: at most {max_total} bytes per "
                       "request.", too_large=True)
