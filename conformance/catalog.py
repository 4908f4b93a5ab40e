"""The model catalog (data/models.yaml) as typed objects, plus the two documented name forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from conformance.resources import DATA_DIR
from conformance.yamlio import load_yaml

NAME_FORMS = ("system.ai", "databricks")
DEFAULT_CHAT_MODEL = "claude-sonnet-4-5"  # the model of most documented examples in spec 001
DEFAULT_EMBEDDINGS_MODEL = "gte-large-en"


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    provider: str
    capabilities: tuple[str, ...]
    reasoning: str = "none"
    reasoning_effort: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    vision: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    note: str = ""

    @property
    def service_name(self) -> str:
        """`system.ai.<name>`: the model-service form used by the AI gateway routes."""
        return f"system.ai.{self.name}"

    @property
    def endpoint_name(self) -> str:
        """`databricks-<name>`: the serving-endpoint form."""
        return f"databricks-{self.name}"

    def served_name(self, form: str) -> str:
        return self.service_name if form == "system.ai" else self.endpoint_name

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class Catalog:
    models: tuple[Model, ...]

    def get(self, name: str) -> Model | None:
        """Look a model up by short name or either documented form."""
        for prefix in ("system.ai.", "databricks-"):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        return self._by_name.get(name)

    @cached_property  # a run looks every model up for every case (cases.select_models)
    def _by_name(self) -> dict[str, Model]:
        by_name: dict[str, Model] = {}
        for model in self.models:
            by_name.setdefault(model.name, model)  # the first of a name, as a search in order finds
        return by_name

    def names(self) -> list[str]:
        return [m.name for m in self.models]


@cache
def load_catalog() -> Catalog:
    raw = load_yaml(DATA_DIR / "models.yaml")
    models = []
    for entry in raw["models"]:
        models.append(
            Model(
                name=entry["name"],
                family=entry["family"],
                provider=entry["provider"],
                capabilities=tuple(entry["capabilities"]),
                reasoning=entry.get("reasoning", "none"),
                reasoning_effort=dict(entry.get("reasoning_effort") or {}),
                vision=dict(entry.get("vision") or {}),
                note=entry.get("note", ""),
            )
        )
    return Catalog(tuple(models))


def catalog_table(catalog: Catalog) -> str:
    """A plain-text table for `conformance models`."""
    header = ("model service", "endpoint", "family", "capabilities", "reasoning", "max images", "total bytes")
    rows = [header]
    for m in catalog.models:
        effort = m.reasoning
        if m.reasoning_effort:
            effort += f" ({'|'.join(m.reasoning_effort['values'])}; default {m.reasoning_effort['default']})"
        rows.append(
            (
                m.service_name,
                m.endpoint_name,
                m.family,
                ",".join(m.capabilities),
                effort,
                str(m.vision.get("max_images", "-")),
                str(m.vision.get("max_total_bytes", "-")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
