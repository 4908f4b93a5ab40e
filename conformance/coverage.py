"""`conformance coverage`: each section of the spec with the cases that check it; sections with none flagged.

The spec documents are plain-text renderings of web pages, without heading markup, so sections are derived
heuristically (the method, so its limits are known):
1. a heading is a line of at most 9 words and 70 characters that starts with a capital letter, ends without
   punctuation, and holds no code characters (= ( ) { } [ ] quotes $ < > | `) and no SQL keyword;
2. code-tab labels (Python, REST API, curl, ...) and admonitions (Note, Important, ...) are not sections;
3. a heading repeated right after itself (tab titles are rendered twice) counts once; the same title later in
   the document is another section, told apart by its line number.
A case covers the section named by the deepest part of its `spec.section` ("A / B: C" has parts A, B, C) that is
a heading of its document, searched after the heading its previous part named. Cases with doc `ours` check rules
of the suite's own making and are listed apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import BadInput

NOT_SECTIONS = {"note", "important", "tip", "warning", "caution", "python", "rest api", "curl", "sql", "bash",
                "json", "shell", "python (openai sdk)", "python (anthropic sdk)"}
CODE = re.compile(r"[=(){}\[\]'\"$<>|`]|[.:;,!?]$")


def spec_dir(given: str | None) -> Path | None:
    """The spec folder to read sections from; None: the pinned sections (an installed suite has no files)."""
    from conformance.spec import spec_folder

    folder = spec_folder(given)
    if folder is not None and not any(folder.glob("*.txt")):
        raise BadInput(f"spec folder {folder} holds no .txt documents (use --spec DIR)")
    return folder


@dataclass
class Section:
    doc: str
    title: str
    line: int
    cases: list[str] = field(default_factory=list)


def _clean(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


def headings(doc: str, text: str) -> list[Section]:
    out: list[Section] = []
    previous = None
    for number, raw in enumerate(text.splitlines(), start=1):
        title = _clean(raw)
        if not title or len(title) > 70 or len(title.split()) > 9 or not title[0].isupper():
            continue
        first = title.split()[0]
        if CODE.search(title) or title.lower() in NOT_SECTIONS or title.startswith("Access to this page"):
            continue
        if len(first) > 1 and first.isupper() and first.isalpha():  # SQL: FROM ..., LIMIT ...
            continue
        if title != previous:
            out.append(Section(doc, title, number))
        previous = title
    return out


def coverage(folder: Path | None) -> dict[str, Any]:
    """Sections of the spec files in `folder`, or of the pinned spec (conformance/spec.py) when None."""
    from conformance.cases import load_cases
    from conformance.spec import pinned
    from conformance.usage_tracking import load_usage_cases

    sections: dict[str, list[Section]] = {}
    if folder is None:
        for name, document in pinned()["documents"].items():
            doc = name.split("_")[0]
            sections[doc] = [Section(doc, title, line) for line, title in document["sections"]]
    else:
        for path in sorted(folder.glob("*.txt")):
            doc = path.name.split("_")[0]
            sections[doc] = headings(doc, path.read_text(encoding="utf-8"))
    ours: list[str] = []
    unplaced: list[str] = []
    for case in [*load_cases(), *load_usage_cases()]:
        doc = case.spec.doc
        if doc == "ours":
            ours.append(case.id)
            continue
        found = None
        position = 0
        for part in re.split(r" / |: ", case.spec.section):
            part = _clean(part).lower()
            for index, section in enumerate(sections.get(doc, [])):
                if index >= position and section.title.lower() == part:
                    found, position = section, index + 1
                    break
        if found is None:
            unplaced.append(case.id)
        else:
            found.cases.append(case.id)
    return {"sections": sections, "ours": sorted(ours), "unplaced": sorted(unplaced)}


def render(result: dict[str, Any], uncovered_only: bool = False) -> str:
    lines: list[str] = []
    total = uncovered = 0
    for doc, sections in result["sections"].items():
        lines.append(f"spec {doc}:")
        for section in sections:
            total += 1
            if not section.cases:
                uncovered += 1
            if uncovered_only and section.cases:
                continue
            mark = "  NO CASE" if not section.cases else f"  {len(section.cases)} case(s)"
            lines.append(f"  line {section.line:4}  {section.title}:{mark}")
            for case_id in sorted(section.cases):
                lines.append(f"      {case_id}")
    if not uncovered_only:
        lines.append(f"suite's own rules (doc ours): {', '.join(result['ours']) or 'none'}")
        if result["unplaced"]:
            lines.append(f"cases whose section matched no heading: {', '.join(result['unplaced'])}")
    lines.append(f"{total - uncovered} of {total} sections checked by at least one case; {uncovered} flagged")
    return "\n".join(lines)
