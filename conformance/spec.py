"""The spec version the cases were written against, pinned in the package (data/spec.yaml).

A certificate says which contract it certifies: the sha256 of every spec document the cases encode, and one id
for the set. Those digests are pinned here, so an installed suite states them with no spec files at hand; when
spec files are given (or found beside a checkout), the certificate also says whether they are the pinned ones, and
which differ. The section headings of each document are pinned too, so `conformance coverage` works without the
files. `python scripts/pin_spec.py` re-pins after the spec changed (a self-test fails until it is done).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from conformance.errors import BadInput
from conformance.resources import DATA_DIR, default_spec_dir
from conformance.yamlio import load_yaml

PINNED_FILE = DATA_DIR / "spec.yaml"
SUFFIX = ".txt"  # the contract documents (the folder's README.md holds reading notes, not contract text)


def file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def set_id(documents: dict[str, str]) -> str:
    """One id for a set of documents: the digest of its sorted `name digest` lines."""
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(documents.items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()[:16]


def local_documents(folder: Path) -> dict[str, str]:
    return {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix == SUFFIX}


@cache
def pinned() -> dict[str, Any]:
    """{"id", "documents": {name: {"sha256", "sections": [[line, title], ...]}}}"""
    return load_yaml(PINNED_FILE)


def pinned_digests() -> dict[str, str]:
    return {name: doc["sha256"] for name, doc in pinned()["documents"].items()}


def spec_folder(given: str | Path | None) -> Path | None:
    """The folder to compare with the pin: the one given (which must exist), else the default if it exists."""
    if given is not None:
        folder = Path(given)
        if not folder.is_dir():
            raise BadInput(f"spec folder {folder} not found (--spec DIR)")
        return folder
    default = default_spec_dir()
    return default if default is not None and default.is_dir() else None


def certificate_spec(folder: Path | None) -> dict[str, Any]:
    """The certificate's `spec` section: the pinned set, and how the local files (if any) compare with it."""
    documents = pinned_digests()
    out: dict[str, Any] = {"id": pinned()["id"], "documents": documents}
    if folder is None or not folder.is_dir():
        out["local"] = {"status": "not-found", "note": "no spec files at hand: the digests are the pinned ones "
                                                      "the cases were written against"}
        return out
    local = local_documents(folder)
    differs = sorted(n for n in documents if n in local and local[n] != documents[n])
    missing = sorted(set(documents) - set(local))
    extra = sorted(set(local) - set(documents))
    status = "same" if not (differs or missing or extra) else "differs"
    out["local"] = {"path": str(folder), "status": status, "id": set_id(local)}
    if differs:
        out["local"]["differs"] = {name: local[name] for name in differs}
    if missing:
        out["local"]["missing"] = missing
    if extra:
        out["local"]["extra"] = {name: local[name] for name in extra}
    return out


def difference_line(spec: dict[str, Any]) -> str | None:
    """One console line when the local spec files are not the ones the cases were written against."""
    local = spec.get("local", {})
    if local.get("status") != "differs":
        return None
    parts = [f"{len(local.get('differs', {}))} changed", f"{len(local.get('missing', []))} missing",
             f"{len(local.get('extra', {}))} new"]
    return (f"spec files in {local['path']} differ from the pinned spec {spec['id']} ({', '.join(parts)}): "
            f"the cases were written against the pinned documents")


def pin(folder: Path) -> dict[str, Any]:
    """The content of data/spec.yaml for the documents of a folder (scripts/pin_spec.py writes it)."""
    from conformance.coverage import headings

    documents: dict[str, Any] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        sections = headings(path.name.split("_")[0], path.read_text(encoding="utf-8"))
        documents[path.name] = {"sha256": file_digest(path), "sections": [[s.line, s.title] for s in sections]}
    return {"id": set_id({n: d["sha256"] for n, d in documents.items()}), "documents": documents}
