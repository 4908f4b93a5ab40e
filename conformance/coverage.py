"""`conformance coverage`: each section of the spec with the cases that check it; sections with none flagged.

The spec documents are plain-text renderings of web pages, without heading markup, so sections are derived
heuristically (the method, so its limits are known):
1. a heading is a line of at most 9 words and 70 characters that starts with a capital letter, ends without
   punctuation, and holds no code characters (= ( ) { } [ ] quotes $ < > | `) and no SQL keyword;
2. code-tab labels (Python, REST API, curl, ...) and admonitions (Note, Important, ...) are not sections;
3. a heading repeated right after itself (tab titles are rendered twice) counts once; the same title later in
   the document is another section, told apart by its line number.
A case (an HTTP case or an official client's) covers the section named by the deepest part of its `spec.section`
("A / B: C" has parts A, B, C) that is a heading of its document, searched after the heading its previous part
named. Cases with doc `ours` check rules of the suite's own making and are listed apart.

data/coverage.yaml says the rest: a document that is a duplicate rendering of another (000 of 001, spec/README.md)
is listed against the original's same-titled sections; sections without a case of their own are prose (an
introduction, links, a table heading), outside the suite's reach, or a profile's whose cases read something other
than an HTTP answer (the usage profile: ai_query, the usage system table); statements no HTTP case can check are
listed with the profile cases that quote them, or why none can. A section with none of these is flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import BadInput
from conformance.resources import DATA_DIR
from conformance.yamlio import load_yaml

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
    scope: dict[str, Any] | None = None  # its data/coverage.yaml entry: kind (prose, outside, profile), why


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


KINDS = {"prose": "prose", "outside": "outside the suite's reach", "profile": "the {profile} profile's"}


def _sections_of(folder: Path | None) -> dict[str, list[Section]]:
    from conformance.spec import pinned

    sections: dict[str, list[Section]] = {}
    if folder is None:
        for name, document in pinned()["documents"].items():
            doc = name.split("_")[0]
            sections[doc] = [Section(doc, title, line) for line, title in document["sections"]]
    else:
        for path in sorted(folder.glob("*.txt")):
            doc = path.name.split("_")[0]
            sections[doc] = headings(doc, path.read_text(encoding="utf-8"))
    return sections


def all_cases() -> list[Any]:
    """Every case that points at the spec: the HTTP cases, the official clients' examples and the usage profile's
    cases (which read the usage system table and ai_query's results, not an HTTP answer)."""
    from conformance.cases import load_cases
    from conformance.clientcases import load_client_cases
    from conformance.usage_tracking import load_usage_cases

    return [*load_cases(), *load_client_cases(), *load_usage_cases()]


def spec_of(case: Any, key: str) -> Any:
    """A case's spec reference field (a typed SpecRef, or the plain mapping of a profile's own case files)."""
    spec = case.spec
    return spec.get(key) if isinstance(spec, dict) else getattr(spec, key, None)


def _place(case: Any, sections: list[Section]) -> Section | None:
    found = None
    position = 0
    for part in re.split(r" / |: ", spec_of(case, "section") or ""):
        part = _clean(part).lower()
        for index, section in enumerate(sections):
            if index >= position and section.title.lower() == part:
                found, position = section, index + 1
                break
    return found


def _normal(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def profile_cases(cases: list[Any], quote: str, profile: str) -> list[str]:
    """The cases of a profile (by the profile of their features) whose spec quote is (a fragment of) the
    statement, or holds it."""
    from conformance.config import features

    known = features()
    statement = _normal(quote)
    ids = []
    for case in cases:
        if not any(known.get(f, {}).get("profile") == profile for f in case.features):
            continue
        fragments = [_normal(f) for f in (spec_of(case, "quote") or "").split("...") if len(f.strip()) >= 3]
        if any(f in statement or statement in f for f in fragments):
            ids.append(case.id)
    return sorted(ids)


def coverage(folder: Path | None) -> dict[str, Any]:
    """Sections of the spec files in `folder`, or of the pinned spec (conformance/spec.py) when None."""
    data = load_yaml(DATA_DIR / "coverage.yaml")
    sections = _sections_of(folder)
    cases = all_cases()
    ours: list[str] = []
    unplaced: list[str] = []
    for case in cases:
        doc = spec_of(case, "doc")
        if doc == "ours":
            ours.append(case.id)
            continue
        found = _place(case, sections.get(doc, []))
        if found is None:
            unplaced.append(case.id)
        else:
            found.cases.append(case.id)
    for entry in data["sections"]:
        for section in sections.get(entry["doc"], []):
            if section.title == entry["title"]:
                section.scope = entry
    statements = [{**entry, "cases": profile_cases(cases, entry["quote"], entry["profile"])
                                           if entry["kind"] == "profile" else []}
                  for entry in data["statements"]]
    return {"sections": sections, "duplicates": dict(data["duplicates"]), "statements": statements,
            "ours": sorted(set(ours)), "unplaced": sorted(set(unplaced))}


def _label(section: Section) -> str:
    scope = section.scope or {}
    if section.cases:
        return f"{len(section.cases)} case(s)"
    if scope:
        kind = KINDS[scope["kind"]].format(profile=scope.get("profile"))
        pending = " (no case of that profile yet: out of scope)" if scope["kind"] == "profile" else ""
        return f"{kind}{pending}: {scope['why']}"
    return "NO CASE"


def _render_duplicate(doc: str, original: str, result: dict[str, Any], uncovered_only: bool) -> tuple[list[str], int]:
    """A duplicate rendering: each section against the original's same-titled one (in order)."""
    lines = [f"spec {doc}: the duplicate rendering of {original} (spec/README.md), checked where {original} is"]
    flagged = 0
    targets = result["sections"].get(original, [])
    position = 0
    for section in result["sections"][doc]:
        match = next((i for i in range(position, len(targets)) if targets[i].title.lower() == section.title.lower()),
                     None)
        if match is None:
            flagged += 1
            lines.append(f"  line {section.line:4}  {section.title}:  NO CASE (no section of {original} has its title)")
            continue
        position = match + 1
        if not uncovered_only:
            lines.append(f"  line {section.line:4}  {section.title}:  = {original} line {targets[match].line}")
    return lines, flagged


def render(result: dict[str, Any], uncovered_only: bool = False) -> str:
    lines: list[str] = []
    total = checked = flagged = 0
    duplicates = result.get("duplicates", {})
    for doc, sections in result["sections"].items():
        if doc in duplicates:
            continue
        lines.append(f"spec {doc}:")
        for section in sections:
            total += 1
            label = _label(section)
            checked += bool(section.cases)
            flagged += label == "NO CASE"
            if uncovered_only and label != "NO CASE":
                continue
            lines.append(f"  line {section.line:4}  {section.title}:  {label}")
            for case_id in sorted(section.cases):
                lines.append(f"      {case_id}")
    for doc, original in duplicates.items():
        if doc in result["sections"]:
            more, missing = _render_duplicate(doc, original, result, uncovered_only)
            lines += more
            flagged += missing
    if not uncovered_only:
        lines.append("statements no HTTP case checks:")
        for entry in result.get("statements", []):
            where = (f"the {entry['profile']} profile: {', '.join(entry['cases'])}" if entry["cases"] else
                     KINDS[entry["kind"]].format(profile=entry.get("profile"))
                     + (" (no case of that profile yet: out of scope)" if entry["kind"] == "profile" else ""))
            lines.append(f"  {entry['doc']} \"{entry['quote']}\"")
            lines.append(f"      {where}: {entry['why']}")
        lines.append(f"suite's own rules (doc ours): {', '.join(result['ours']) or 'none'}")
        if result["unplaced"]:
            lines.append(f"cases whose section matched no heading: {', '.join(result['unplaced'])}")
    lines.append(f"{checked} of {total} sections checked by at least one case; {total - checked - flagged} need none "
                 f"(prose, outside the suite's reach, or a profile's); {flagged} flagged")
    return "\n".join(lines)
