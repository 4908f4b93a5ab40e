"""The case model: typed, immutable records of what a case sends and what its answer must satisfy.

Case files (conformance/cases/*.yaml, client_cases/*.yaml) are expanded (conformance/casefile.py) and validated
against the schema once, at load; then every record becomes these objects, so the rest of the suite reads
attributes that exist instead of dictionary keys that may not. They are plain dataclasses of plain data: helper
processes receive them pickled. Request bodies and a client's arguments stay JSON values (placeholders are
expanded per model when a case runs, conformance/placeholders.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

# an expected status: a code, a list of codes, or a class ("2xx", "4xx": the spec names no error status)
Status = int | str | tuple[int, ...]


def status_of(value: Any) -> Status:
    return tuple(value) if isinstance(value, list) else value


def status_text(status: Status) -> str:
    """How messages write an expected status (a list as [401, 403], as the case file does)."""
    return str(list(status)) if isinstance(status, tuple) else str(status)


def is_negative(status: Status) -> bool:
    """An expected error answer: its 4xx/5xx answers are evidence, never retried."""
    if isinstance(status, tuple):
        return all(s >= 400 for s in status)
    return status == "4xx" or (isinstance(status, int) and status >= 400)


@dataclass(frozen=True)
class SpecRef:
    """The passage of the spec a case comes from (doc 000/001/003 and a section), or `ours` with its reason."""

    doc: str
    section: str
    quote: str | None = None
    reason: str | None = None

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> SpecRef:
        return cls(str(data["doc"]), str(data["section"]), data.get("quote"), data.get("reason"))

    @property
    def words(self) -> str:
        """The quote, or for a rule of our own its reason."""
        return self.quote if self.quote is not None else self.reason or ""


@dataclass(frozen=True)
class CheckStrength:
    """A case's own strength for a rule (a check or a built-in rule), with the reason."""

    strength: str
    reason: str


@dataclass(frozen=True)
class PreferredStatus:
    """A status within the expected class that good practice expects; another is a finding of this strength."""

    status: Status
    strength: str
    reason: str


@dataclass(frozen=True)
class Expect:
    """What one answer must satisfy (conformance/evaluate.py judges it in this order)."""

    status: Status
    preferred_status: PreferredStatus | None = None
    schema: str | None = None
    error_body: bool = False
    checks: tuple[str, ...] = ()
    check_args: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Expect:
        preferred = data.get("preferred_status")
        return cls(
            status=status_of(data["status"]),
            preferred_status=PreferredStatus(status_of(preferred["status"]), preferred["strength"], preferred["reason"])
            if preferred else None,
            schema=data.get("schema"),
            error_body=bool(data.get("error_body")),
            checks=tuple(data.get("checks", ())),
            check_args={name: dict(args) for name, args in (data.get("check_args") or {}).items()},
        )

    @property
    def negative(self) -> bool:
        return is_negative(self.status)

    def args_of(self, check: str) -> dict[str, Any]:
        return self.check_args.get(check, {})


@dataclass(frozen=True)
class Request:
    """What a step sends: a JSON body (with placeholders) or a raw body, and how."""

    body: dict[str, Any] | None = field(default=None, hash=False)
    raw_body: str | None = None
    model: str | None = None  # models: none only: the (unknown) model name the route's {model} gets
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict, hash=False)
    auth: str = "default"  # default | bearer | basic | none | wrong-token | basic-wrong-user
    route: str | None = None  # an earlier step on another surface's route than the case's (Case.route_surface)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Request:
        return cls(data.get("body"), data.get("raw_body"), data.get("model"), bool(data.get("stream")),
                   dict(data.get("headers") or {}), data.get("auth", "default"), data.get("route"))

    @property
    def sends_token(self) -> bool:
        """Whether the step sends the run's token in a way it names (a run without a token cannot show it)."""
        return self.auth in ("bearer", "basic")


class RequestAndExpect:
    """What a step and a case both read off their request and its expectation (a mixin: no fields of its own)."""

    request: Request
    expect: Expect

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def negative(self) -> bool:
        return self.expect.negative


@dataclass(frozen=True)
class Step(RequestAndExpect):
    """One request of a (possibly multi-step) case and the expectation its answer is judged by."""

    index: int
    request: Request
    expect: Expect
    description: str | None = None

    @classmethod
    def from_record(cls, index: int, data: dict[str, Any]) -> Step:
        return cls(index, Request.from_record(data.get("request") or {}), Expect.from_record(data["expect"]),
                   data.get("description"))


@dataclass(frozen=True)
class ModelSelector:
    """Which catalog models a case runs on (conformance/cases.py select_models). None for a list: no condition."""

    none: bool = False  # `models: none`: the request names no catalog model
    capabilities: tuple[str, ...] = ()
    families: tuple[str, ...] | None = None
    providers: tuple[str, ...] | None = None
    reasoning: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    exclude_families: tuple[str, ...] = ()
    exclude_capabilities: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()  # only models whose effective vision limits set each of these
    one_per_family: bool = False
    default: bool = False  # only the catalog's default model for the capability

    @classmethod
    def from_record(cls, data: Any) -> ModelSelector:
        if data == "none":
            return cls(none=True)

        def names(key: str) -> tuple[str, ...] | None:
            return tuple(data[key]) if key in data else None

        return cls(False, tuple(data.get("capabilities", ())), names("families"), names("providers"),
                   names("reasoning"), names("names"), tuple(data.get("exclude_families", ())),
                   tuple(data.get("exclude_capabilities", ())), tuple(data.get("limits", ())),
                   bool(data.get("one_per_family")), bool(data.get("default")))


@dataclass(frozen=True)
class Concurrent:
    """A concurrent case (`concurrent:`): its one request sent this many times at once, each with a nonce of its
    own in place of `{nonce}` (conformance/concurrency.py); None: the run's --concurrency."""

    requests: int | None = None

    @classmethod
    def from_record(cls, data: dict[str, Any] | None) -> Concurrent | None:
        return None if data is None else cls(data.get("requests"))


@dataclass(frozen=True, kw_only=True)
class CaseBase:
    """What every case has, whether it is sent over HTTP (Case) or through an official client (ClientCase)."""

    id: str
    description: str
    spec: SpecRef
    surface: str
    model_type: str
    features: tuple[str, ...]
    strength: str
    strength_reason: str
    models: ModelSelector
    source: str  # the case file
    documented: dict[str, int] = field(default_factory=dict, hash=False)  # the example's token limits
    markers: tuple[str, ...] = ()
    check_strengths: dict[str, CheckStrength] = field(default_factory=dict, hash=False)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))

    @staticmethod
    def common(record: dict[str, Any], source: str) -> dict[str, Any]:
        return {
            "id": record["id"], "description": record["description"], "spec": SpecRef.from_record(record["spec"]),
            "surface": record["surface"], "model_type": record["model_type"],
            "features": tuple(record["features"]), "strength": record["strength"],
            "strength_reason": record["strength_reason"], "models": ModelSelector.from_record(record["models"]),
            "source": source, "documented": dict(record.get("documented") or {}),
            "markers": tuple(record.get("markers", ())),
            "check_strengths": {name: CheckStrength(o["strength"], o["reason"])
                                for name, o in (record.get("check_strengths") or {}).items()},
        }

    def media_body(self) -> Any:
        """The values that may name media fixtures by URL (a case needing an unreachable URL is skipped)."""
        return None

    @cached_property  # every item of the case asks, at every collection of a run
    def media_references(self) -> tuple[tuple[str, str], ...]:
        """(file, form) of every media placeholder in media_body()."""
        from conformance.media import references

        return tuple(references(self.media_body()))

    @property
    def route_surface(self) -> str:
        """The surface whose route the case's requests go to."""
        return self.surface


@dataclass(frozen=True, kw_only=True)
class Case(RequestAndExpect, CaseBase):
    """An HTTP case: its own request and expectation, after any earlier steps of a multi-step exchange."""

    request: Request
    expect: Expect
    route: str | None = None  # the surface whose route the request goes to, when not the case's own
    earlier: tuple[Step, ...] = ()
    concurrent: Concurrent | None = None  # the request sent N times at once (conformance/concurrency.py)

    __hash__ = CaseBase.__hash__

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str) -> Case:
        earlier = tuple(Step.from_record(i, s) for i, s in enumerate(record.get("steps", ())))
        return cls(**cls.common(record, source), request=Request.from_record(record.get("request") or {}),
                   expect=Expect.from_record(record["expect"]), route=record.get("route"), earlier=earlier,
                   concurrent=Concurrent.from_record(record.get("concurrent")))

    @property
    def route_surface(self) -> str:
        """The surface whose route the request goes to (auth and request_tags cases borrow another's)."""
        return self.route or self.surface

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every request of the case in order: the earlier steps, then the case's own request/expect."""
        return (*self.earlier, Step(len(self.earlier), self.request, self.expect))

    @property
    def checks(self) -> tuple[str, ...]:
        """Every named check some step of the case runs, once, in order."""
        return tuple(dict.fromkeys(name for step in self.steps for name in step.expect.checks))

    @property
    def schemas(self) -> tuple[str, ...]:
        """Every schema some step's answer is validated against."""
        return tuple(dict.fromkeys(s.expect.schema for s in self.steps if s.expect.schema))

    def media_body(self) -> Any:
        return self.request.body


@dataclass(frozen=True)
class ClientCall:
    """An official client's documented call (client_cases/*.yaml `client`): the runners in conformance/clients
    read it as the mapping `as_mapping()` gives; the judge reads `read`, `iterate` and `schema`."""

    name: str
    route: str
    call: str | None = None
    kwargs: dict[str, Any] | None = field(default=None, hash=False)
    read: tuple[str, ...] = ()
    iterate: str | None = None
    request_tags: dict[str, str] | None = field(default=None, hash=False)
    auth: str | None = None
    data: dict[str, Any] | None = field(default=None, hash=False)
    schema: str | None = None

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ClientCall:
        return cls(data["name"], data["route"], data.get("call"), data.get("kwargs"), tuple(data.get("read", ())),
                   data.get("iterate"), data.get("request_tags"), data.get("auth"), data.get("data"),
                   data.get("schema"))

    def as_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "route": self.route}
        for key in ("call", "kwargs", "iterate", "request_tags", "auth", "data", "schema"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.read:
            out["read"] = list(self.read)
        return out


@dataclass(frozen=True, kw_only=True)
class ClientCase(CaseBase):
    """A documented client example, run as written against the target."""

    client: ClientCall

    __hash__ = CaseBase.__hash__

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str) -> ClientCase:
        return cls(**cls.common(record, source), client=ClientCall.from_record(record["client"]))

    @property
    def route_surface(self) -> str:
        return self.client.route

    @property
    def negative(self) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class UsageCase(CaseBase):
    """A usage-tracking case (conformance/usage_cases/usage.yaml): what requests leave in system.ai_gateway.usage,
    read back through a SQL warehouse. Its surface is `usage`; a `tags` case sends one request (request/expect,
    to the surface `route`) with the documented tags and the run's own, the others run a named SQL statement."""

    kind: str  # tags | ai_query_result | ai_query_captured | ai_query_refused
    requires: tuple[str, ...] = ()  # the surface features a tagged request needs (unclaimed: skipped, not judged)
    route: str | None = None  # tags: the surface the tagged request goes to
    tags: dict[str, str] = field(default_factory=dict, hash=False)  # tags: the documented tags besides the run's
    request: Request | None = None  # tags: what the tagged request sends (its tags header added per run)
    expect: Expect | None = None  # tags: what its answer must satisfy, as an ordinary case of its route
    statement: str | None = None  # ai_query kinds: a name under the file's `statements`

    __hash__ = CaseBase.__hash__

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str) -> UsageCase:
        request, expect = record.get("request"), record.get("expect")
        return cls(**cls.common({**record, "surface": "usage"}, source), kind=record["kind"],
                   requires=tuple(record.get("requires", ())), route=record.get("route"),
                   tags=dict(record.get("tags") or {}), request=Request.from_record(request) if request else None,
                   expect=Expect.from_record(expect) if expect else None, statement=record.get("statement"))

    @property
    def route_surface(self) -> str:
        """The route a tagged request goes to; a statement goes to the SQL warehouse (`sql_statements`)."""
        return self.route or "sql_statements"

    @property
    def negative(self) -> bool:
        return False

    def tagged_request(self, headers: dict[str, str]) -> Case:
        """A tags case's request as the ordinary case of its route it is performed and judged as (the same id,
        features, strengths and spec), sending `headers` besides its own."""
        if self.kind != "tags" or self.route is None or self.request is None or self.expect is None:
            raise ValueError(f"usage case {self.id}: only a tags case has a tagged request")
        fields = {name: getattr(self, name) for name in CaseBase.__dataclass_fields__}
        request = replace(self.request, headers={**self.request.headers, **headers})
        return Case(**{**fields, "surface": self.route}, request=request, expect=self.expect)
