"""Shape snapshots: the normalised shape of every response, stored per target and surface, compared each run.

One normaliser serves every surface; what it keeps is data (data/shapes.yaml). A shape keeps keys, JSON types,
enumerated values and the order of blocks; free text, ids, timestamps, token counts and vectors are masked to
their type, and runs of identical stream events or list items are collapsed to one, so a gateway that only
changes its text (or its length) has no drift.

Storage is a syrupy extension (`ShapeSnapshotExtension`): `snapshots/<target name>/<surface>.json`, one readable
JSON object per surface mapping `test_case[<case>@<model>]` to its shape. syrupy does the bookkeeping:
`--snapshot-update` records (also under xdist: writes are merged under syrupy's file lock), and stale entries
are removed on update.

Drift is a separate outcome, not a failure: the case keeps its conformance verdict, the drift is listed in the
console, the Allure attachment, summary.json (per case `snapshot`, totals `drift`) and the reports.
`conformance run --fail-on-drift` turns drift into exit status 1 for a nightly job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from syrupy.data import Snapshot, SnapshotCollection
from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.utils import exclusive_file_lock, snapshot_file_lock_enabled

from conformance.redact import REDACTOR
from conformance.resources import DATA_DIR, checkout_dir, shipped_snapshot_root
from conformance.yamlio import load_yaml

SNAPSHOT_DIR_ENV = "CONFORMANCE_SNAPSHOT_DIR"  # snapshots/<target name>, set by the plugin for every process
DONE = "[DONE]"


REFERENCE = "reference"


def default_snapshot_root(target_name: str = REFERENCE, update: bool = False) -> Path:
    """Where baselines are, wherever the suite runs from: in a source checkout, its snapshots/; in an installed
    package, the reference gateway's baseline it ships (compared with, never written into the installation),
    and for any other target (or to record) ./snapshots, the folder a workspace's baseline is committed in."""
    if checkout_dir() is not None:
        return shipped_snapshot_root()
    if target_folder_name(target_name) == REFERENCE and not update:
        return shipped_snapshot_root()
    return Path.cwd() / "snapshots"


def target_folder_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "target"


# --- normalising ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    enumerated: frozenset[str]
    equivalent: dict[str, dict[str, str]]
    free_maps: frozenset[str]
    vectors: frozenset[str]
    length_dependent: frozenset[str] = frozenset()


@cache
def rules() -> Rules:
    raw = load_yaml(DATA_DIR / "shapes.yaml")
    equivalent: dict[str, dict[str, str]] = {}
    for key, groups in raw.get("equivalent", {}).items():
        for group in groups:
            label = "|".join(group)
            for value in group:
                equivalent.setdefault(key, {})[value] = label
    return Rules(frozenset(raw["enumerated"]), equivalent, frozenset(raw.get("free_maps", [])),
                 frozenset(raw.get("vectors", [])), frozenset(raw.get("length_dependent", [])))


def type_name(value: Any) -> str:
    if value is None:
        return "<null>"
    if isinstance(value, bool):
        return "<boolean>"
    if isinstance(value, int):
        return "<integer>"
    if isinstance(value, float):
        return "<number>"
    if isinstance(value, str):
        return "<string>"
    if isinstance(value, list):
        return "<array>"
    return "<object>"


def _collapse(items: list[Any]) -> list[Any]:
    """Runs of equal items become one: 40 text deltas and 12 text deltas have the same shape."""
    out: list[Any] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def shape_of(value: Any, key: str | None = None) -> Any:
    r = rules()
    if isinstance(value, dict):
        if key in r.free_maps:
            return "<map>"
        return {k: shape_of(v, k) for k, v in sorted(value.items()) if k not in r.length_dependent}
    if isinstance(value, list):
        if key in r.vectors and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return "<vector>"
        return _collapse([shape_of(v, key) for v in value])
    if key in r.enumerated and isinstance(value, str):
        return r.equivalent.get(key, {}).get(value, value)
    if key in r.vectors and isinstance(value, str):
        return "<vector>"  # base64-encoded embeddings
    return type_name(value)


def normalise(exchange: Any) -> dict[str, Any]:
    """The shape of one answer: status, media type, and the body (or the stream's event sequence)."""
    media = exchange.content_type.split(";")[0].strip().lower() or None
    shape: dict[str, Any] = {"status": exchange.status, "content_type": media}
    if exchange.events is not None:
        payloads = {p.index: p for p in exchange.payloads}
        events = []
        for index, event in enumerate(exchange.events):
            payload = payloads.get(index)
            item: Any = DONE if payload is None else shape_of(payload.payload) if payload.is_json else "<text>"
            events.append({"event": event.event, "data": item} if event.event else item)
        shape["events"] = _collapse(events)
    elif exchange.json_error is None:
        shape["body"] = shape_of(exchange.json)
    else:
        shape["body"] = "<text>" if exchange.text.strip() else "<empty>"
    # keys and enumerated values come from the target: a gateway that echoes a token there must not get it into
    # a snapshot (committed with the checkout) or a drift line (summary, console, reports)
    return REDACTOR.value(shape)


# --- diffing ----------------------------------------------------------------------------------------------


def _is_type(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<") and value.endswith(">")


def _label(item: Any) -> str:
    if isinstance(item, dict):
        for k in ("type", "object", "role", "event"):
            if isinstance(item.get(k), str) and not _is_type(item[k]):
                return str(item[k])
        return "{" + ",".join(sorted(item)) + "}"
    return item if isinstance(item, str) else json.dumps(item)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "<object>"
    if isinstance(value, list):
        return "<array>"
    return value if _is_type(value) else "<enum>"


def diff_shapes(old: Any, new: Any, path: str = "$") -> list[str]:
    """Readable drift lines: field added / removed, type changed, enum value changed, block order changed."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}"
            if key not in new:
                out.append(f"{sub}: field removed (was {_brief(old[key])})")
            elif key not in old:
                out.append(f"{sub}: field added ({_brief(new[key])})")
            else:
                out += diff_shapes(old[key], new[key], sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        old_labels, new_labels = [_label(i) for i in old], [_label(i) for i in new]
        if old_labels != new_labels and sorted(old_labels) == sorted(new_labels):
            return [f"{path}: block order changed: [{', '.join(old_labels)}] -> [{', '.join(new_labels)}]"]
        out = []
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                out.append(f"{sub}: item removed ({_brief(old[i])})")
            elif i >= len(old):
                out.append(f"{sub}: item added ({_brief(new[i])})")
            else:
                out += diff_shapes(old[i], new[i], sub)
        return out
    if old == new:
        return []
    old_kind, new_kind = _kind(old), _kind(new)
    if old_kind == new_kind == "<enum>" or (path.endswith((".status", "content_type")) and old_kind == new_kind):
        return [f"{path}: enum value changed: {json.dumps(old)} -> {json.dumps(new)}"]
    if "<enum>" in (old_kind, new_kind) and "<null>" in (old_kind, new_kind):
        return [f"{path}: enum value changed: {_brief(old)} -> {_brief(new)}"]
    return [f"{path}: type changed: {_brief(old)} -> {_brief(new)}"]


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return "object {" + ", ".join(sorted(value)) + "}"
    if isinstance(value, list):
        return f"array [{', '.join(_label(i) for i in value)}]"
    if value == "<null>":
        return "null"
    return value.strip("<>") if _is_type(value) else json.dumps(value)


# --- storage: the syrupy extension ------------------------------------------------------------------------


def snapshot_dir() -> Path:
    return Path(os.environ.get(SNAPSHOT_DIR_ENV) or default_snapshot_root() / REFERENCE)


@cache
def _surface_of_case() -> dict[str, str]:
    from conformance.cases import load_cases
    from conformance.vocabulary import reported_surface

    return {case.id: reported_surface(case.surface) for case in load_cases()}


def surface_of_snapshot(snapshot_name: str) -> str:
    """`test_case[chat-x@model]` -> the case's surface (the file it is stored in)."""
    inner = snapshot_name.partition("[")[2].rstrip("]")
    return _surface_of_case().get(inner.split("@")[0], "other")


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


class _StoredShape(Snapshot):
    """A stored snapshot whose serialised data is made when it is read (then kept)."""

    def __init__(self, name: str, shape: Any, serialize: Callable[[Any], str]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "tainted", None)
        object.__setattr__(self, "_shape", shape)
        object.__setattr__(self, "_serialize", serialize)

    @property  # type: ignore[override]
    def data(self) -> str:
        if "_text" not in self.__dict__:
            object.__setattr__(self, "_text", self.__dict__["_serialize"](self.__dict__["_shape"]))
        return str(self.__dict__["_text"])


class ShapeSnapshotExtension(AbstractSyrupyExtension):
    """snapshots/<target>/<surface>.json: {"test_case[<case>@<model>]": shape, ...}, sorted, indented."""

    file_extension = "json"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(snapshot_dir())

    @classmethod
    def get_file_basename(cls, *, test_location: Any, index: Any) -> str:
        return surface_of_snapshot(test_location.snapshot_name)

    @classmethod
    def matches_test_location(cls, *, test_location: Any, snapshot_location: str) -> bool:
        return Path(snapshot_location).parent == snapshot_dir()

    @staticmethod
    def _read(location: str) -> dict[str, Any]:
        """The parsed file, cached by (mtime, size): every case reads its surface's file, which holds every
        other case's shape too; parsing it each time made the run quadratic. Callers must not mutate it."""
        try:
            stat = os.stat(location)
        except OSError:
            return {}
        key = (location, stat.st_mtime_ns, stat.st_size)
        cached = _READ_CACHE.get(location)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            data = json.loads(Path(location).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        document = data if isinstance(data, dict) else {}
        _READ_CACHE[location] = (key, document)
        return document

    def read_snapshot_collection(self, *, snapshot_location: str) -> SnapshotCollection:
        """Every stored shape of the file, each serialised only if its data is read: syrupy's discovery reads the
        collection again for each case of the surface and uses only the names (a run of one case serialised the
        hundreds of shapes of its file, in the pure-Python indented encoder)."""
        document = self._read(snapshot_location)
        collection = SnapshotCollection(location=snapshot_location)
        for name, shape in document.items():
            collection.add(_StoredShape(name, shape, self.serialize))
        return collection

    def read_snapshot_data_from_location(self, *, snapshot_location: str, snapshot_name: str,
                                         session_id: str) -> Any:
        data = self._read(snapshot_location)
        return self.serialize(data[snapshot_name]) if snapshot_name in data else None

    @classmethod
    def write_snapshot_collection(cls, *, snapshot_collection: SnapshotCollection,
                                  name_order: dict[str, int] | None = None) -> None:
        location = snapshot_collection.location

        def merge() -> None:
            document = dict(cls._read(location))
            for snapshot in snapshot_collection:
                assert snapshot.data is not None
                document[snapshot.name] = json.loads(snapshot.data)
            _atomic_write(Path(location), _dump(document))

        if snapshot_file_lock_enabled():
            with exclusive_file_lock(location):
                merge()
        else:
            merge()

    def delete_snapshots(self, *, snapshot_location: str, snapshot_names: set[str]) -> None:
        def delete() -> None:
            document = {k: v for k, v in self._read(snapshot_location).items() if k not in snapshot_names}
            if document:
                _atomic_write(Path(snapshot_location), _dump(document))
            else:
                Path(snapshot_location).unlink(missing_ok=True)

        if snapshot_file_lock_enabled():
            with exclusive_file_lock(snapshot_location):
                delete()
        else:
            delete()


_READ_CACHE: dict[str, tuple[tuple[str, int, int], dict[str, Any]]] = {}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- the check run_case performs ---------------------------------------------------------------------------


@dataclass
class SnapshotResult:
    status: str  # match | drift | no-baseline | recorded | error
    drift: list[str] = field(default_factory=list)
    reason: str = ""

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.drift:
            out["drift"] = self.drift
        if self.reason:
            out["reason"] = self.reason
        return out


class ShapeCheck:
    """Bound to one test: compares (or, with --snapshot-update, records) the answer's shape."""

    def __init__(self, snapshot: Any, update: bool, node: Any = None) -> None:
        self.snapshot = snapshot.use_extension(ShapeSnapshotExtension)
        self.update = update
        self.node = node

    def check(self, exchange: Any) -> SnapshotResult:
        """The comparison's result; an error inside it is its own status (with the reason), never a reason for
        the case to lose its verdict."""
        try:
            result = self._check(exchange)
        except Exception as exc:
            result = SnapshotResult("error", reason=f"the shape comparison raised {type(exc).__name__}: {exc}")
        if self.node is not None:
            self.node.user_properties.append(("snapshot", result.record()))
        return result

    def _check(self, exchange: Any) -> SnapshotResult:
        if getattr(exchange, "transport_failure", None) is not None:
            # a redirect, a cut or undecodable body has no shape worth recording or comparing
            return SnapshotResult("not-compared", reason=f"{exchange.transport_failure.check}: no shape compared")
        shape = normalise(exchange)
        ext = self.snapshot.extension
        location = ext.get_location(test_location=self.snapshot.test_location, index=0)
        name = ext.get_snapshot_name(test_location=self.snapshot.test_location, index=0)
        if self.update:
            assert self.snapshot == shape  # syrupy records it; in update mode the comparison always holds
            return SnapshotResult("recorded")
        folder = Path(location).parent
        if not folder.is_dir():
            return SnapshotResult("no-baseline", reason=f"no snapshot baseline for target {folder.name!r} "
                                                        f"(record one with `conformance run --snapshot-update`)")
        stored = ShapeSnapshotExtension._read(location)
        if name not in stored:
            return SnapshotResult("no-baseline", reason=f"no snapshot of {name} in {Path(location).name} "
                                                        f"(record one with `conformance run --snapshot-update`)")
        # through syrupy, so it counts the snapshot as used (and reports it); drift is not a test failure
        if self.snapshot == shape:
            return SnapshotResult("match")
        # a baseline recorded before redaction covered keys may hold a token: the lines are redacted too
        return SnapshotResult("drift", REDACTOR.value(diff_shapes(stored[name], shape)) or ["shape differs"])


# --- plugin glue --------------------------------------------------------------------------------------------


def snapshot_setup(config: Any, target: Any, root: Path | None) -> dict[str, Any]:
    """Controller: choose <root>/<target>, hand it to every process, describe it for summary.json."""
    update = bool(config.option.update_snapshots)
    root = root or default_snapshot_root(target.name, update)
    folder = root.resolve() / target_folder_name(target.name)
    os.environ[SNAPSHOT_DIR_ENV] = str(folder)  # xdist workers inherit it; syrupy's controller reads it too
    if not update:
        # a case that is skipped or deselected leaves its snapshot unused: never a reason to fail a run
        config.option.warn_unused_snapshots = True
    return {"snapshots": {"dir": str(folder), "mode": "update" if update else "compare",
                          "baseline": folder.is_dir()}}


def attach_snapshot(result: SnapshotResult) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    if result.status == "drift":
        allure.dynamic.tag("drift")
        allure.attach("\n".join(result.drift), "snapshot drift", allure.attachment_type.TEXT)
    else:
        # nothing to show beyond the status (the reason is in summary.json): a label, not a file per case
        allure.dynamic.label("snapshot", result.status)
