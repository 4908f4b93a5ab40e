"""URL-form media placeholders: the suite's fixtures (a profile's public copy, else a loopback file server, else the
case is skipped), and YouTube ("For video, YouTube URLs are also supported"): a short public video, or the one a
target profile names; the reference gateway recognises YouTube URLs without fetching them."""

from __future__ import annotations

import pytest

from conformance import media
from conformance.config import TargetOptions, resolve_target
from conformance.errors import BadInput


def remote(tmp_path, urls: str = "") -> object:
    profile = tmp_path / "t.yaml"
    profile.write_text(f"name: live\nurl: https://workspace.example.com\ntoken_env: T\n{urls}")
    return resolve_target(TargetOptions(target_file=str(profile)), {"T": "tok"})


def test_youtube_is_a_public_video_by_default_and_the_profiles_when_named(tmp_path):
    target = remote(tmp_path)
    assert media.url_of("youtube", target) == media.REMOTE_MEDIA["youtube"]
    assert media.unreachable(media.references({"url": "{media:youtube:url}"}), target) == []  # any target reaches it
    named = remote(tmp_path, "media_urls: {youtube: 'https://youtu.be/abc123'}\n")
    assert media.url_of("youtube", named) == "https://youtu.be/abc123"


def test_a_fixture_url_needs_a_copy_or_a_loopback_target(tmp_path):
    target = remote(tmp_path)
    assert media.unreachable(media.references({"url": "{media:video.mp4:url}"}), target)
    with pytest.raises(media.MediaUnavailable):
        media.url_of("video.mp4", target)
    copy = remote(tmp_path, "media_urls: {video.mp4: 'https://cdn.example.com/v.mp4'}\n")
    assert media.url_of("video.mp4", copy) == "https://cdn.example.com/v.mp4"


def test_youtube_has_no_inline_form():
    with pytest.raises(BadInput, match="only its url form"):
        media.expand("{media:youtube:base64}")


@pytest.mark.parametrize(("host", "youtube"), [("www.youtube.com", True), ("youtu.be", True), ("m.youtube.com", True),
                                               ("youtube.com", True), ("notyoutube.com", False),
                                               ("example.com", False)])
def test_the_reference_gateway_recognises_youtube_hosts(host, youtube):
    from conformance.gateway.media import is_youtube

    assert is_youtube(host) is youtube
