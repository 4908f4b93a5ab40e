"""The one scan for a secret in what a run wrote: every file under a folder, as bytes and through every base64 run
in it. Allure's single-file HTML report holds each attachment and result base64-encoded (in `data:` URLs and in
`d("name","...")` calls), so a token copied into it is not in its bytes as written: a scan of the raw bytes alone
would pass a report that leaks."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from pathlib import Path

# a run of base64 long enough to hold a token (shorter ones are ids and words): decoded from its first character,
# where the encoder started, so a secret inside it is whole in the decoded bytes
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{32,}={0,2}")


def decoded_runs(data: bytes) -> Iterable[bytes]:
    """The bytes of each base64 run in `data` (a run that is not valid base64 is skipped)."""
    for run in BASE64_RUN.finditer(data):
        text = run.group(0)
        text = text[: len(text) - len(text) % 4] if not text.endswith(b"=") else text
        try:
            yield base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            continue


def leaks_under(forms: Iterable[str], *roots: Path) -> list[str]:
    """Where any of `forms` is in a file under `roots`, as written or base64-encoded: "file: form..." each."""
    wanted = [form.encode() for form in forms]
    found = []
    for root in roots:
        for file in sorted(root.rglob("*")):
            if not file.is_file():
                continue
            data = file.read_bytes()
            hits = {form for form in wanted if form in data}
            if len(hits) < len(wanted) and BASE64_RUN.search(data):
                for decoded in decoded_runs(data):
                    hits |= {form for form in wanted if form in decoded}
            found += [f"{file}: {form[:12].decode()}..." for form in wanted if form in hits]
    return found
