"""Generated request bodies: `$image` parts, limit expressions, `$response` of earlier steps."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from conformance.errors import BadInput
from conformance.placeholders import Unresolved, limit_number, substitute

LIMITS = {"max_images": 5, "max_pixels": [8000, 8000], "max_total_bytes": 10_000_000}


def decode(part):
    media, _, data = part["image_url"]["url"].partition(";base64,")
    return media.removeprefix("data:"), base64.b64decode(data)


def test_limit_expressions():
    assert limit_number("max_images + 1", LIMITS, "x") == 6
    assert limit_number("max_pixels[0] + 1", LIMITS, "x") == 8001
    assert limit_number("max_total_bytes * 74 // 100 // 3", LIMITS, "x") == 2_466_666
    assert limit_number(7, LIMITS, "x") == 7
    for bad in ("no_such_limit", "__import__('os')", "max_images / 2", "max_pixels"):
        with pytest.raises(BadInput):
            limit_number(bad, LIMITS, "x")


def test_images_are_spliced_with_their_format_size_and_padding():
    body = substitute({"content": [{"type": "text", "text": "hi"},
                                   {"$image": {"format": "png", "count": "max_images", "width": "max_pixels[0] + 1",
                                               "height": 8000}},
                                   {"$image": {"format": "png", "size_bytes": 100_000}},
                                   {"$image": {"format": "gif", "animated": True}}]}, None, LIMITS)
    parts = body["content"]
    assert len(parts) == 1 + 5 + 1 + 1
    media, data = decode(parts[1])
    assert media == "image/png" and len(data) < 20_000
    assert Image.open(io.BytesIO(data)).size == (8001, 8000)
    media, data = decode(parts[6])
    assert len(data) == 100_000
    Image.open(io.BytesIO(data)).load()  # the padding chunk is skipped by decoders
    assert Image.open(io.BytesIO(decode(parts[7])[1])).is_animated


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif"])
def test_each_format_decodes_as_itself(fmt):
    part = substitute({"$image": {"format": fmt, "width": 40, "height": 30}}, None, {})
    media, data = decode(part)
    image = Image.open(io.BytesIO(data))
    assert media == f"image/{fmt}" and image.format.lower() == fmt and image.size == (40, 30)


def test_response_values_are_embedded_unmodified():
    answer = {"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]}}]}
    text = {"$response": {"step": 0, "path": "$.choices[0].message.content[0].text"}}
    body = substitute({"messages": [{"$response": {"step": 0, "path": "$.choices[0].message"}}, {"content": text}]},
                      "m", {}, [answer])
    assert body["messages"][0] == answer["choices"][0]["message"]
    assert body["messages"][0] is not answer["choices"][0]["message"]
    assert body["messages"][1]["content"] == "x"
    with pytest.raises(Unresolved):
        substitute({"$response": {"step": 0, "path": "$.choices[0].message.content[1].text"}}, "m", {}, [answer])
    with pytest.raises(Unresolved):
        substitute({"$response": {"step": 0, "path": "$.choices[0]"}}, "m", {}, [{"error_code": "X"}])
