"""Pin the spec the cases are written against: digests and section headings into conformance/data/spec.yaml.

Run after the spec documents changed and the cases were brought in line with them:
    python scripts/pin_spec.py [SPEC_DIR]        (default: ../shared/spec beside the checkout)
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from conformance.resources import default_spec_dir
from conformance.spec import PINNED_FILE, pin

HEADER = """\
# The spec the cases were written against (written by scripts/pin_spec.py; do not edit by hand).
# id: one digest for the set; per document its sha256 and its section headings [line, title] (coverage.py's rule).
"""


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else default_spec_dir()
    if folder is None or not folder.is_dir():
        print(f"pin_spec: no spec folder {folder}", file=sys.stderr)
        return 2
    document = pin(folder)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=200, default_flow_style=None)
    PINNED_FILE.write_text(HEADER + text, encoding="utf-8")
    print(f"pinned {len(document['documents'])} documents as {document['id']} in {PINNED_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
