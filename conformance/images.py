"""Offline image fixtures for vision cases, made at run time (never fetched): PNG written directly, the other
formats with Pillow.

A case body describes an image with a placeholder (see placeholders.py, `$image`); this module turns one description
into bytes. Large dimensions stay small in bytes: a flat colour in palette mode compresses to almost nothing
(an 8001x8000 PNG is ~8 KB). `size_bytes` pads a PNG with a private ancillary chunk to an exact file size,
which decoders skip, so byte-limit cases can be built without large pixel counts.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from functools import lru_cache

from conformance.errors import BadInput

FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
PALETTE = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 190, 40), (120, 60, 170), (30, 170, 170))
PAD_CHUNK = b"prVt"  # ancillary, private, safe to copy: every decoder ignores it


def _png_pad(data: bytes, size: int) -> bytes:
    """Insert one padding chunk before IEND so the file is exactly `size` bytes."""
    iend = data.rindex(b"IEND") - 4
    room = size - len(data) - 12  # a chunk is length(4) + type(4) + data + crc(4)
    if room < 0:
        raise BadInput(f"$image: a PNG of this size needs at least {len(data) + 12} bytes, not {size}")
    return data[:iend] + _chunk(PAD_CHUNK, b"\0" * room) + data[iend:]


def image_bytes(fmt: str, width: int, height: int, colour: int = 0, animated: bool = False,
                size_bytes: int | None = None) -> bytes:
    """The image for one description; colours repeat every len(PALETTE), so the many-image cases (hundreds of
    parts) encode each distinct image once per process."""
    return _image_bytes(fmt, width, height, colour % len(PALETTE), animated, size_bytes)


@lru_cache(maxsize=256)
def _image_bytes(fmt: str, width: int, height: int, colour: int, animated: bool, size_bytes: int | None) -> bytes:
    from PIL import Image

    if fmt not in FORMATS:
        raise BadInput(f"$image: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if width < 1 or height < 1:
        raise BadInput(f"$image: {width}x{height} is not a size")
    if animated and fmt != "gif":
        raise BadInput("$image: only a gif can be animated")
    if size_bytes is not None and fmt != "png":
        raise BadInput("$image: size_bytes pads PNG files only")
    rgb = PALETTE[colour % len(PALETTE)]
    if fmt == "png":
        return _flat_png(width, height, (*rgb, *PALETTE[(colour + 1) % len(PALETTE)]), size_bytes)
    out = io.BytesIO()
    if fmt in ("png", "gif"):
        image = Image.new("P", (width, height), 0)
        image.putpalette([*rgb, *PALETTE[(colour + 1) % len(PALETTE)]])  # two entries: 1 bit per pixel
        if animated:
            second = Image.new("P", (width, height), 1)
            second.putpalette(image.getpalette() or [])
            image.save(out, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
        else:
            image.save(out, FORMATS[fmt], optimize=True)
    else:
        Image.new("RGB", (width, height), rgb).save(out, FORMATS[fmt], quality=80)
    data = out.getvalue()
    return _png_pad(data, size_bytes) if size_bytes is not None else data


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _flat_png(width: int, height: int, palette: tuple[int, ...], size_bytes: int | None) -> bytes:
    """A one-colour PNG (1 bit per pixel, two palette entries), written row by row: an 8000x8000 image through
    Pillow held 64 MB of pixels and took a tenth of a second; this holds one row."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte "none", then all pixels index 0
    packer = zlib.compressobj(9)
    rows_per_chunk = max(1, (1 << 18) // len(row))
    parts = [packer.compress(row * min(rows_per_chunk, height - start)) for start in range(0, height, rows_per_chunk)]
    idat = b"".join(parts) + packer.flush()
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0))
            + _chunk(b"PLTE", bytes(palette)) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return _png_pad(data, size_bytes) if size_bytes is not None else data


@lru_cache(maxsize=256)
def data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
