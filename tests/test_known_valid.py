"""Case data found valid once is not validated again (conformance/known_valid.py), and nothing else is skipped:
an invalid instance, a changed one, or one under another schema set is validated every time."""

from __future__ import annotations

import shutil

import pytest

from conformance import known_valid, schemas
from conformance.casemodel import Case
from conformance.cases import load_files
from conformance.errors import BadInput
from conformance.resources import CASES_DIR


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A fresh record folder, and the validations really made (schemas.validate) as they happen."""
    monkeypatch.setenv(known_valid.CACHE_ENV, str(tmp_path / "cache"))
    known_valid._records.clear()
    made: list[str] = []
    real = schemas.validate

    def validate(name, instance):
        made.append(name)
        return real(name, instance)

    monkeypatch.setattr(known_valid, "validate", validate)
    yield made
    known_valid._records.clear()


def test_a_valid_instance_is_validated_once_across_processes(counted):
    record = {"id": "x", "surface": "chat"}
    errors = known_valid.validate_known("target-profile", {"name": "t"})
    assert errors == [] and counted == ["target-profile"]
    known_valid._records.clear()  # another process: the record is read from the folder
    assert known_valid.validate_known("target-profile", {"name": "t"}) == [] and counted == ["target-profile"]
    # the same text under another schema, or another text, is validated
    known_valid.validate_known("target-profile", {"name": "u"})
    assert counted == ["target-profile"] * 2
    assert known_valid.validate_known("case-file#/$defs/case", record)  # invalid: a case needs more
    assert known_valid.validate_known("case-file#/$defs/case", record)  # and is validated every time
    assert counted[2:] == ["case-file#/$defs/case"] * 2


def test_an_invalid_case_file_is_refused_after_a_valid_one_was_remembered(counted, tmp_path):
    cases = tmp_path / "cases"
    shutil.copytree(CASES_DIR, cases)

    def load():
        return load_files(cases, "case-file", Case.from_record, lambda case, where: None)

    assert load() and counted
    first = len(counted)
    known_valid._records.clear()
    assert load() and len(counted) == first, "the second load remembered every file and record"
    path = sorted(cases.glob("*.yaml"))[0]
    path.write_text(path.read_text() + "\nunexpected_top_level_key: 1\n")
    with pytest.raises(BadInput, match=f"case file {path.name} is invalid"):
        load()


def test_another_schema_set_is_another_record(counted, tmp_path, monkeypatch):
    known_valid.validate_known("target-profile", {"name": "t"})
    copied = tmp_path / "schemas"
    shutil.copytree(schemas.schemas_dir(), copied)
    (copied / "target-profile.schema.json").write_text(
        (copied / "target-profile.schema.json").read_text().replace("{", "{ ", 1))
    monkeypatch.setattr(known_valid, "schemas_dir", lambda: copied)
    known_valid._schema_set_digest.cache_clear()
    known_valid._records.clear()
    try:
        known_valid.validate_known("target-profile", {"name": "t"})
        assert len(counted) == 2 and len(list((tmp_path / "cache").glob("valid-*.txt"))) == 2
    finally:
        known_valid._schema_set_digest.cache_clear()


def test_an_unwritable_record_folder_still_validates(counted, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(known_valid.CACHE_ENV, str(blocker / "cache"))  # under a file: never a folder
    known_valid._records.clear()
    for _ in range(2):
        assert known_valid.validate_known("target-profile", {"name": "t"}) == []
        assert known_valid.validate_known("target-profile", {"name": 1})
    assert counted == ["target-profile"] * 3, "remembered in this process, though nowhere on disk"
