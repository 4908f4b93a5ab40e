"""Case data found valid once is not validated again: a per-user record of the JSON texts that passed a schema.

Every process of a run loads the case data (the CLI, each xdist worker, each read-ahead helper's parent) and
validated it against the case-file schema, about a second of CPU each time, though the files had not changed.
Validity is a pure function of the schema set and the instance's JSON text, so the digest of both is what is
remembered: a changed file, a changed schema or another jsonschema version is another digest, and is validated
again. Only a valid answer is remembered; an invalid one is validated every time (its messages are the error).

The record is `<cache>/valid-<schema set digest>.txt`, one digest per line, appended (a line is one short write,
so processes appending at once do not mix lines). <cache> is $CONFORMANCE_CACHE_DIR, else the per-user folder's
`cache/` (resources.user_home). A record that cannot be read or written is no record: the data is validated.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from conformance import vocabulary
from conformance.resources import schemas_dir, user_home
from conformance.schemas import validate

CACHE_ENV = "CONFORMANCE_CACHE_DIR"


def cache_dir() -> Path:
    given = os.environ.get(CACHE_ENV)
    return Path(given) if given else user_home() / "cache"


@cache
def _schema_set_digest() -> str:
    digest = hashlib.sha256(version("jsonschema").encode() + b"\0")
    for path in sorted(schemas_dir().glob("*.schema.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps(vocabulary.schema(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


class _Record:
    """The digests known valid under this schema set, read once per process."""

    def __init__(self) -> None:
        self.path = cache_dir() / f"valid-{_schema_set_digest()}.txt"
        try:
            self.known = set(self.path.read_text(encoding="ascii").split())
        except (OSError, UnicodeDecodeError):
            self.known = set()

    def add(self, digest: str) -> None:
        self.known.add(digest)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="ascii") as out:
                out.write(digest + "\n")
        except OSError:
            pass


_records: dict[str, _Record] = {}  # by cache folder: a test may point the cache elsewhere


def _record() -> _Record:
    folder = str(cache_dir())
    if folder not in _records:
        _records[folder] = _Record()
    return _records[folder]


def validate_known(name: str, instance: Any) -> list[str]:
    """schemas.validate(name, instance), skipped for an instance whose JSON text passed that schema before."""
    try:
        text = json.dumps(instance, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return validate(name, instance)
    digest = hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()[:32]
    record = _record()
    if digest in record.known:
        return []
    errors = validate(name, instance)
    if not errors:
        record.add(digest)
    return errors
