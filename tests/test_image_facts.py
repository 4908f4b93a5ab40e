"""The reference gateway's image facts (gateway/vision.py): what a data URI holds, remembered by the URI, and the
same facts and refusals when remembered as when read."""

from __future__ import annotations

import base64
import io

from PIL import Image

from conformance.gateway import vision


def png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_facts_are_read_once_and_the_memo_starts_again_when_full(monkeypatch):
    monkeypatch.setattr(vision, "_facts_memo", {})
    monkeypatch.setattr(vision, "_facts_chars", 0)
    reads: list[str] = []
    real = vision._read_facts
    monkeypatch.setattr(vision, "_read_facts", lambda url: reads.append(url) or real(url))
    small, large = png(3, 2), png(40, 30)
    cases = {small: vision.ImageFacts(None, "image/png", len(base64.b64decode(small.split(",")[1])), "png", (3, 2)),
             "data:image/png;base64,not base64!": vision.ImageFacts("base64", "image/png"),
             "data:text/plain;base64,aGk=": vision.ImageFacts("media", "text/plain", 2),
             "data:image/png;base64,aGk=": vision.ImageFacts("unreadable", "image/png", 2),
             "https://example.com/x.png": vision.ImageFacts("uri")}
    for _ in range(2):
        for url, facts in cases.items():
            assert vision.image_facts(url) == facts
    assert reads == list(cases), "each URI read once"
    monkeypatch.setattr(vision, "FACTS_MAX_CHARS", len(small) + len(large) - 1)
    monkeypatch.setattr(vision, "_facts_memo", {})
    monkeypatch.setattr(vision, "_facts_chars", 0)
    for url in (small, large, small):
        vision.image_facts(url)
    assert reads[len(cases):] == [small, large, small], "the memo started again rather than grow past its size"
