"""The spec the cases were written against is pinned in the package (conformance/data/spec.yaml)."""

from __future__ import annotations

import pytest

from conformance.coverage import headings
from conformance.resources import default_spec_dir
from conformance.spec import certificate_spec, local_documents, pinned, pinned_digests, set_id


def test_the_pin_is_the_spec_beside_the_checkout():
    """Fails when the spec changed and was not re-pinned: `python scripts/pin_spec.py`."""
    folder = default_spec_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("no spec folder beside the checkout")
    assert local_documents(folder) == pinned_digests(), "the spec changed: re-pin with scripts/pin_spec.py"
    for name, document in pinned()["documents"].items():
        sections = headings(name.split("_")[0], (folder / name).read_text(encoding="utf-8"))
        assert [[s.line, s.title] for s in sections] == document["sections"], name
    assert pinned()["id"] == set_id(pinned_digests())
    assert certificate_spec(folder)["local"]["status"] == "same"


def test_without_spec_files_the_certificate_states_the_pinned_digests():
    spec = certificate_spec(None)
    assert spec["documents"] == pinned_digests() and len(spec["documents"]) >= 3
    assert spec["local"]["status"] == "not-found"


def test_a_changed_document_is_named(tmp_path):
    folder = default_spec_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("no spec folder beside the checkout")
    for path in folder.glob("*.txt"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    changed = sorted(tmp_path.glob("*.txt"))[-1]
    changed.write_text(changed.read_text() + "\nnew text\n")
    (tmp_path / "004_new.txt").write_text("a new document\n")
    local = certificate_spec(tmp_path)["local"]
    assert local["status"] == "differs"
    assert list(local["differs"]) == [changed.name] and list(local["extra"]) == ["004_new.txt"]
