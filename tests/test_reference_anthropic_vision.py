"""The reference gateway applies the vision table of 001 on its native Anthropic route too.

Found certifying LiteLLM: LiteLLM's anthropic/ provider turns image_url parts into Anthropic image blocks and posts
them to /ai-gateway/anthropic/v1/messages, where the reference gateway checked no image rule at all; every vision
limit case on a Claude model then failed through LiteLLM although LiteLLM had relayed the images faithfully. The
limits belong to the model, whichever API carries the images.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from conformance.gateway.server import ThreadedGateway

TOKEN = "tok-anthropic-vision"


def png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("P", (width, height)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def ask(url: str, *blocks: dict) -> httpx.Response:
    body = {"model": "system.ai.claude-sonnet-4-5", "max_tokens": 8,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, *blocks]}]}
    return httpx.post(url + "/ai-gateway/anthropic/v1/messages", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}", "anthropic-version": "2023-06-01"})


def image(data: str, media_type: str = "image/png") -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


@pytest.fixture(scope="module")
def gateway():
    with ThreadedGateway(TOKEN) as gw:
        yield gw.url


def test_a_small_image_is_answered(gateway):
    assert ask(gateway, image(png(64, 64))).status_code == 200


@pytest.mark.parametrize(("blocks", "why"), [
    ([image(png(8001, 8000))], "larger than 8000x8000"),
    ([image(base64.b64encode(b"not an image at all").decode())], "not a readable image"),
    ([image(base64.b64encode(b"plain text").decode(), "text/plain")], "not an image"),
    ([image(png(2001, 10))] + [image(png(8, 8))] * 20, "more than 20 images"),
    ([image(png(8, 8))] * 101, "at most 100 images"),
])
def test_claude_vision_limits_are_enforced(gateway, blocks, why):
    answer = ask(gateway, *blocks)
    assert answer.status_code == 400, (why, answer.text[:300])
    assert "content" not in answer.json()
