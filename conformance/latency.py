"""Latency of a run, per surface and model: p50 and p95 of time to first byte, total time and, for streams, time
to the first content, from the per-case `latency` records (conformance/timing.py: case_latency) of summary.json.

summary.json carries the table as `latency` (aggregate), summary.md renders it (`markdown`), the built-in HTML
page (`html_table`) and the Allure report (`allure_environment`: Allure shows environment.properties on its
report) too, so a nightly run shows a latency regression as well as drift. Only 2xx answers count: a refusal's
speed says nothing of the model's. The percentiles interpolate linearly between the two nearest answers (with
one answer, both are that answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MEASURES = (("ttfb_s", "time to first byte"), ("total_s", "total"), ("first_content_s", "first content"))
SHORT = {"ttfb_s": "TTFB", "total_s": "total", "first_content_s": "first content"}
NO_MODEL = "(no model)"
ENVIRONMENT_FILE = "environment.properties"
ENVIRONMENT_PREFIX = "latency "


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def aggregate(cases: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{surface: {model: {answers, streams, ttfb_s: {p50, p95}, total_s: {...}, first_content_s: {...}}}} over the
    case records that have a latency record (first_content_s only where streams had content)."""
    samples: dict[tuple[str, str], dict[str, list[float]]] = {}
    for record in cases:
        latency = record.get("latency")
        if not isinstance(latency, dict):
            continue
        key = (str(record["surface"]), str(record.get("model") or NO_MODEL))
        empty: dict[str, list[float]] = {name: [] for name, _ in [*MEASURES, ("streams", "")]}
        bucket = samples.setdefault(key, empty)
        for name, _ in MEASURES:
            if isinstance(latency.get(name), int | float):
                bucket[name].append(float(latency[name]))
        if latency.get("stream"):
            bucket["streams"].append(1.0)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (surface, model), bucket in sorted(samples.items()):
        entry: dict[str, Any] = {"answers": len(bucket["ttfb_s"]), "streams": len(bucket["streams"])}
        for name, _ in MEASURES:
            if bucket[name]:
                entry[name] = {"p50": round(percentile(bucket[name], 50), 4),
                               "p95": round(percentile(bucket[name], 95), 4)}
        out.setdefault(surface, {})[model] = entry
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table_of(summary: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return summary.get("latency") or aggregate(summary.get("cases", []))


def rows(summary: dict[str, Any]) -> list[list[str]]:
    """The table's rows: surface, model, answers (streams), then p50 / p95 of each measure."""
    out = []
    for surface, models in table_of(summary).items():
        for model, entry in models.items():
            streams = entry["streams"]
            cells = [surface, model, f"{entry['answers']}" + (f" ({streams} stream{'s' if streams > 1 else ''})"
                                                              if streams else "")]
            for name, _ in MEASURES:
                figures = entry.get(name)
                cells.append(f"{_ms(figures['p50'])} / {_ms(figures['p95'])}" if figures else "-")
            out.append(cells)
    return out


HEADERS = ["surface", "model", "answers", *(f"{label} p50 / p95" for _, label in MEASURES)]


def markdown(summary: dict[str, Any]) -> list[str]:
    """summary.md's latency section."""
    table = rows(summary)
    lines = ["", "### Latency", ""]
    if not table:
        return [*lines, "No timed answer in this run."]
    lines += ["Per surface and model, over the 2xx answers of the run (a case of several requests counts its last); "
              "first content: streams only.", "",
              "| " + " | ".join(HEADERS) + " |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    return lines


def html_table(summary: dict[str, Any], esc: Callable[[str], str], styles: tuple[str, str, str] = ("", "", "")) -> str:
    """The latency table of an HTML page (escaped by `esc`; `styles`: inline styles of table, th and td)."""
    table = rows(summary)
    if not table:
        return "<h2>Latency</h2><p id='latency'>No timed answer in this run.</p>"
    table_style, th, td = (f" style='{s}'" if s else "" for s in styles)
    head = "".join(f"<th{th}>{esc(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td{td}>{esc(c)}</td>" for c in cells) + "</tr>" for cells in table)
    return f"<h2>Latency</h2><table id='latency'{table_style}><tr>{head}</tr>{body}</table>"


def allure_environment(run_dir: Path, summary: dict[str, Any]) -> Path | None:
    """Write the latency rows into allure-results/environment.properties, which Allure shows on its report: one
    `latency <surface> <model>` key each. Other keys of an existing file are kept; earlier latency keys replaced."""
    folder = run_dir / "allure-results"
    if not folder.is_dir():
        return None
    path = folder / ENVIRONMENT_FILE
    kept = [line for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else [])
            if not line.startswith(_escape(ENVIRONMENT_PREFIX))]
    for surface, models in table_of(summary).items():
        for model, entry in models.items():
            figures = [f"{SHORT[name]} {_ms(entry[name]['p50'])} / {_ms(entry[name]['p95'])}"
                       for name, _ in MEASURES if entry.get(name)]
            streams = f", {entry['streams']} streamed" if entry["streams"] else ""
            value = f"p50 / p95: {'; '.join(figures)} ({entry['answers']} answers{streams})"
            kept.append(f"{_escape(f'{ENVIRONMENT_PREFIX}{surface} {model}')}={value}")
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def _escape(key: str) -> str:
    """A .properties key: spaces, ':' and '=' escaped."""
    return key.replace("\\", "\\\\").replace(" ", "\\ ").replace(":", "\\:").replace("=", "\\=")


SLOWER_FACTOR = 1.5  # a p95 this many times the earlier run's ...
SLOWER_FLOOR_S = 0.05  # ... and at least this much more: latency is noisy, a few ms are no regression


def slower(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Surfaces and models whose p95 of a measure grew by SLOWER_FACTOR and SLOWER_FLOOR_S from run A to run B
    (`conformance diff` lists them beside new drift; never a regression of the verdict)."""
    old, new = table_of(a), table_of(b)
    out = []
    for surface, models in new.items():
        for model, entry in models.items():
            before = old.get(surface, {}).get(model, {})
            for name, label in MEASURES:
                if name in entry and name in before:
                    p95_a, p95_b = before[name]["p95"], entry[name]["p95"]
                    if p95_b >= p95_a * SLOWER_FACTOR and p95_b - p95_a >= SLOWER_FLOOR_S:
                        out.append({"surface": surface, "model": model, "measure": label,
                                    "p95_a_s": p95_a, "p95_b_s": p95_b})
    return out
