"""Preflight: before any case, prove each route and the token, and find the models the target serves.

Without it a wrong token fails every case (a nightly job reports a regression instead of a setup problem), a URL
that is not a gateway retries every case for minutes, and a model the workspace does not serve fails every case
that selects it. So, spending no tokens:
1. the models: the workspace's serving-endpoints listing (`GET /api/2.0/serving-endpoints`) where the target
   has one; otherwise one probe per model on a route shown to work, whose answer tells "unknown model" (404, or
   a 4xx that says so) from "known model, bad request";
2. one request per route the run will use, with a body every implementation must refuse before calling a model
   (data/preflight.yaml), with a model the target serves.
Then: a target that refuses the token everywhere ends the run (exit 2); one that answers no route as a gateway
would (unreachable, HTML, 404 everywhere) ends it too (exit 3); a surface family whose routes answer 404 skips its
cases (a route missing from a family whose other routes work is a gap the cases show: they run and fail), and so
does a model that is not served. A target profile's `models` map still decides which names are sent; a model it
maps that is not served is said in one line.

Requests go through GatewayClient, with the bounds of every case (conformance/bounds.py: a deadline for the whole
exchange, a cap on decoded bytes, no redirects followed) made tighter, short retries and the run's pacer: an endless
stream, a byte-a-second answer or a gzip bomb cannot hold the start-up, and nothing here can leak a token.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from conformance.catalog import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDINGS_MODEL, Model, load_catalog
from conformance.client import Exchange, GatewayClient, RetryPolicy
from conformance.config import Target, surfaces
from conformance.errors import InfrastructureError
from conformance.redact import REDACTOR
from conformance.resources import DATA_DIR
from conformance.yamlio import load_yaml

EXIT_TOKEN = 2  # a setup problem of the user's: bad input
EXIT_NOT_GATEWAY = 3  # no verdict about the contract is possible
# a short, bounded retry: one reset is not an unreachable target, but a target that is down must end the run fast
PREFLIGHT_RETRY = RetryPolicy(attempts=3, deadline_s=12.0, base_delay_s=0.25, max_delay_s=2.0, max_retry_after_s=3.0)
PREFLIGHT_TIMEOUT_S = 10.0
# an answer to a probe is an error body, a listing a few hundred endpoints: a huge body (or a gzip bomb) is cut here,
# under the run's own cap (conformance/bounds.py), so the parallel probes hold a few MB at most
PREFLIGHT_MAX_BODY_BYTES = 4 << 20
# every route's probe at once (11 routes are documented): a target that hangs costs one probe's bounded retry, not
# one per round of workers (two rounds of 8 took 30 s to say a hanging target could not be reached)
WORKERS = 12
# a 4xx whose error says the model is unknown (LiteLLM answers 400 "Invalid model name passed in model=...")
# (a refusal such as "not served by the Anthropic Messages API" is about the route, not an unknown model)
UNKNOWN_MODEL = re.compile(
    r"model\b.{0,120}\b(not found|does not exist|doesn't exist|is unknown|no such)|\b(invalid|unknown|no such) "
    r"model", re.IGNORECASE | re.DOTALL)
WORKING = ("ok", "unknown-model")  # the route answered as a gateway would
LISTING_PAGES = 20


@cache
def probe_data() -> dict[str, Any]:
    return load_yaml(DATA_DIR / "preflight.yaml")


@dataclass
class Answer:
    """One preflight request and what its answer says."""

    what: str  # "POST /ai-gateway/mlflow/v1/chat/completions"
    status: int | None
    kind: str  # ok | auth | missing | redirect | html | infra
    detail: str = ""
    model: str | None = None  # the catalog model it was sent with

    def line(self) -> str:
        if self.status is None:
            return f"{self.what}: {self.detail}"
        return f"{self.what} -> HTTP {self.status}" + (f" ({self.detail})" if self.detail else "")

    def record(self) -> dict[str, Any]:
        return {"request": self.what, "status": self.status, "kind": self.kind, "detail": self.detail,
                **({"model": self.model} if self.model else {})}


def _excerpt(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def classify(exchange: Exchange) -> Answer:
    parts = urlsplit(exchange.url)
    what = f"{exchange.method} {parts.path}" + (f"?{parts.query}" if parts.query else "")
    status, ctype = exchange.status, exchange.content_type.split(";")[0].strip()
    body = REDACTOR.text(_excerpt(exchange.text))
    if status in (401, 403):
        kind = "auth"
    elif status in (404, 405, 501):
        kind = "missing"
    elif 300 <= status < 400:
        return Answer(what, status, "redirect", f"to {exchange.response_headers.get('location', '?')}")
    elif status < 300 and "html" in ctype:
        kind = "html"  # a page (a login form, a static site), not an API's answer to a request it must refuse
    else:
        kind = "ok"  # it refused the request as an API does (the form of its error body is for the cases to judge)
    detail = ctype if kind == "html" or (kind == "missing" and "json" not in ctype) else body
    return Answer(what, status, kind, detail)


@dataclass
class Preflight:
    """What the preflight found; `fatal` (one line) and `exit_status` when the run must not go on."""

    routes: dict[str, Answer] = field(default_factory=dict)  # route surface -> its probe's answer
    routes_missing: dict[str, str] = field(default_factory=dict)  # route surface -> why its cases skip
    listing: Answer | None = None
    model_source: str = "none"  # listing | probes | none (nothing could tell)
    served: list[str] = field(default_factory=list)
    not_served: dict[str, str] = field(default_factory=dict)  # catalog model -> why its cases skip
    model_answers: dict[str, Answer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # lines for the console (a mapped model not served, ...)
    fatal: str | None = None
    exit_status: int | None = None
    requests: int = 0
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """summary.json's `preflight`."""
        return {
            "seconds": round(self.seconds, 3), "requests": self.requests,
            **({"fatal": self.fatal, "exit_status": self.exit_status} if self.fatal else {}),
            "routes": {surface: answer.record() for surface, answer in sorted(self.routes.items())},
            "routes_missing": dict(sorted(self.routes_missing.items())),
            **({"listing": self.listing.record()} if self.listing else {}),
            "models": {"source": self.model_source, "served": sorted(self.served),
                       "not_served": dict(sorted(self.not_served.items()))},
            "notes": list(self.notes),
        }

    def summary_line(self) -> str:
        ok = sum(1 for a in self.routes.values() if a.kind in WORKING)
        parts = [f"{ok} of {len(self.routes)} routes answer"]
        if self.routes_missing:
            parts.append(f"{len(self.routes_missing)} missing ({', '.join(sorted(self.routes_missing))})")
        if self.model_source != "none":
            served = f"{len(self.served)} models served ({self.model_source})"
            parts.append(served + (f", {len(self.not_served)} not served" if self.not_served else ""))
        return f"preflight: {'; '.join(parts)}; {self.requests} requests, {self.seconds:.1f} s, no tokens spent"


@dataclass(frozen=True)
class Use:
    """One runnable case item, as the preflight sees it: the route it goes to and the catalog model it names."""

    surface: str
    model: Model | None


class Probe:
    """Runs the preflight of one target (see the module docstring)."""

    def __init__(self, target: Target, client: GatewayClient, uses: Iterable[Use]) -> None:
        self.target = target
        self.client = client
        self.uses = [u for u in uses if target.route(u.surface) is not None]
        self.result = Preflight()
        self._count = 0

    # --- requests -------------------------------------------------------------------------------------------

    def _send(self, surface: str | None, model: Model | None, method: str = "POST",
              route: str | None = None) -> Answer:
        self._count += 1
        served = self.target.served_name(model.name, surface) if model is not None else None
        route = route or self.target.route(surface or "")
        assert route is not None
        body = _expand(probe_data()["probes"].get(surface or "", {}), served or "") if method == "POST" else None
        try:
            exchange = self.client.send(route, model=served, body=body, method=method, retry_server_errors=False,
                                        surface=surface)
        except InfrastructureError as exc:
            what = f"{method} {urlsplit(self.client.url_for(route, served)).path}"
            return Answer(what, None, "infra", REDACTOR.text(str(exc).split(": ", 1)[-1]),
                          model.name if model else None)
        answer = classify(exchange)
        answer.model = model.name if model else None
        text = exchange.text[:2000]
        if answer.kind == "ok" and 400 <= (answer.status or 0) < 500 and UNKNOWN_MODEL.search(text):
            answer.kind = "unknown-model"
        elif answer.kind == "missing" and answer.status == 404 and served and "{model}" not in route \
                and served in text and "json" in exchange.content_type:
            answer.kind = "unknown-model"  # a 404 naming the model it was sent: the model is unknown, not the route
        return answer

    def _parallel(self, jobs: list[tuple[Any, ...]]) -> list[Answer]:
        if not jobs:
            return []
        pool = ThreadPoolExecutor(min(WORKERS, len(jobs)), thread_name_prefix="conformance-preflight")
        try:
            return list(pool.map(lambda job: self._send(*job), jobs))
        finally:  # a signal (KeyboardInterrupt here) must not wait for the probes still in flight
            pool.shutdown(wait=False, cancel_futures=True)

    # --- the steps ------------------------------------------------------------------------------------------

    def run(self) -> Preflight:
        started = time.monotonic()
        models = self._models()
        listed = self._listing()
        unserved: dict[str, str] = {}
        served: set[str] = set()
        if listed is not None:
            self.result.model_source = "listing"
            for model in models:
                names = {self.target.served_name(model.name), model.endpoint_name, model.service_name}
                if names & listed:
                    served.add(model.name)
                else:
                    unserved[model.name] = "not in the target's serving-endpoints listing"
        self._probe_routes(unserved)
        for surface, answer in self.result.routes.items():  # a model's own route says it does not know it
            if answer.kind == "unknown-model" and answer.model and self._used_routes(answer.model)[:1] == [surface]:
                unserved[answer.model] = f"the target does not serve it ({answer.line()})"
                served.discard(answer.model)
        if self._fatal():
            self._finish(started, served, unserved)
            return self.result
        if listed is None:
            self._probe_models(models, served, unserved)
        self._settle_missing_routes(served, unserved)
        self._finish(started, served, unserved)
        return self.result

    def _models(self) -> list[Model]:
        seen: dict[str, Model] = {}
        for use in self.uses:
            if use.model is not None:
                seen.setdefault(use.model.name, use.model)
        return list(seen.values())

    def _listing(self) -> set[str] | None:
        """Names of the ready serving endpoints, or None when the target has no listing it lets us read."""
        route = probe_data()["listing"]
        names: set[str] = set()
        token = None
        for _ in range(LISTING_PAGES):
            page = f"{route}?page_token={quote(str(token), safe='')}" if token else route
            self._count += 1
            try:
                exchange = self.client.send(page, model=None, method="GET", retry_server_errors=False)
            except InfrastructureError as exc:
                self.result.listing = Answer(f"GET {route}", None, "infra", REDACTOR.text(str(exc)))
                return None
            answer = classify(exchange)
            self.result.listing = answer
            data = exchange.json if exchange.status == 200 and exchange.json_error is None else None
            if not isinstance(data, dict) or not isinstance(data.get("endpoints", []), list):
                if answer.kind == "ok":
                    answer.kind, answer.detail = "not-a-listing", "no endpoints list in the answer"
                return None
            for endpoint in data.get("endpoints", []):
                if not isinstance(endpoint, dict) or not isinstance(endpoint.get("name"), str):
                    continue
                state = endpoint.get("state")
                ready = state.get("ready", "READY") if isinstance(state, dict) else "READY"
                if ready == "READY":
                    names.add(endpoint["name"])
            token = data.get("next_page_token")
            if not token:
                break
        return names

    def _candidates(self, surface: str, unserved: dict[str, str]) -> list[Model | None]:
        """Models to probe a route with: the ones its cases use, the documented default first, then the most used."""
        counts = Counter(u.model.name for u in self.uses if u.surface == surface and u.model is not None)
        by_name = {u.model.name: u.model for u in self.uses if u.model is not None}
        preferred = (DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDINGS_MODEL)
        names = sorted(counts, key=lambda n: (-counts[n], n not in preferred, n))
        models: list[Model | None] = [by_name[n] for n in names if n not in unserved]
        if not models and not counts:  # only cases that name no model: any served chat model proves the route
            default = load_catalog().get(DEFAULT_CHAT_MODEL)
            models = [default] if default and self.target.served_name(default.name) else [None]
        return models

    def _probe_routes(self, unserved: dict[str, str]) -> None:
        surfaces = sorted({u.surface for u in self.uses})
        jobs: list[tuple[Any, ...]] = []
        for surface in surfaces:
            candidates = self._candidates(surface, unserved)
            if candidates:
                jobs.append((surface, candidates[0]))
        for (surface, _), answer in zip(jobs, self._parallel(jobs), strict=True):
            self.result.routes[surface] = answer

    def _fatal(self) -> bool:
        order = probe_data()["home_routes"]
        answers = [a for _, a in sorted(self.result.routes.items(),
                                        key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))]
        if not answers or any(a.kind in WORKING for a in answers):
            return False
        url = self.target.url
        if all(a.kind == "infra" for a in answers):
            self.result.fatal = f"target {url} could not be reached: {answers[0].line()}"
            self.result.exit_status = EXIT_NOT_GATEWAY
        elif any(a.kind == "auth" for a in answers):
            refused = next(a for a in answers if a.kind == "auth")
            if self.target.token:
                self.result.fatal = f"the target rejects the token (HTTP {refused.status} on {refused.what})"
            else:
                self.result.fatal = (f"the target requires a token (HTTP {refused.status} on {refused.what}) and "
                                     f"none was given (DATABRICKS_TOKEN, --token-env NAME or --profile NAME)")
            self.result.exit_status = EXIT_TOKEN
        else:
            statuses = Counter(str(a.status) if a.status is not None else a.kind for a in answers)
            others = ", ".join(f"{n} x {s}" for s, n in statuses.most_common())
            self.result.fatal = (f"target {url} does not answer as an AI gateway: {answers[0].line()} "
                                 f"({len(answers)} routes: {others})")
            self.result.exit_status = EXIT_NOT_GATEWAY
        return True

    def _used_routes(self, name: str) -> list[str]:
        """The routes a model's cases use, in home_routes order (the first is where it is probed)."""
        used = {u.surface for u in self.uses if u.model is not None and u.model.name == name}
        return [s for s in probe_data()["home_routes"] if s in used]

    def _home(self, model: Model) -> str | None:
        """The route to probe a model on: the first route (home_routes order) its cases use that works."""
        working = {s for s, a in self.result.routes.items() if a.kind in WORKING}
        return next((s for s in self._used_routes(model.name) if s in working), None)

    def _probe_models(self, models: list[Model], served: set[str], unserved: dict[str, str]) -> None:
        for answer in self.result.routes.values():
            if answer.kind == "ok" and answer.model:
                served.add(answer.model)
        jobs: list[tuple[Any, ...]] = []
        for model in models:
            if model.name in served or model.name in unserved:
                continue
            home = self._home(model)
            if home is not None:
                jobs.append((home, model))
        for (_, model), answer in zip(jobs, self._parallel(jobs), strict=True):
            self.result.model_answers[model.name] = answer
            if answer.kind in ("missing", "unknown-model"):
                unserved[model.name] = f"the target does not serve it ({answer.line()})"
            elif answer.kind == "ok":
                served.add(model.name)
        self.result.model_source = "probes" if jobs or served else "none"

    def _settle_missing_routes(self, served: set[str], unserved: dict[str, str]) -> None:
        """A 404 on a route is the route's only when the model it was sent with is served; otherwise the route is
        probed again with a model that is (once), and left to its cases when there is none."""
        retry: list[tuple[Any, ...]] = []
        for surface, answer in self.result.routes.items():
            if answer.kind != "missing":
                continue
            if answer.model is None or answer.model in served:
                self.result.routes_missing[surface] = _missing_reason(answer)
                continue
            other = next((m for m in self._candidates(surface, unserved)
                          if m is not None and m.name in served and m.name != answer.model), None)
            if other is not None:
                retry.append((surface, other))
        for (surface, _), answer in zip(retry, self._parallel(retry), strict=True):
            self.result.routes[surface] = answer
            if answer.kind == "missing":
                self.result.routes_missing[surface] = _missing_reason(answer)
        # A surface family the target does not offer at all is skipped; a route missing from a family whose other
        # routes work is a gap in what it offers (the documented google-genai client posts to Gemini's v1 path):
        # its cases run, and fail on the 404.
        for surface in list(self.result.routes_missing):
            family = family_of(surface)
            if any(family_of(other) == family and answer.kind in WORKING
                   for other, answer in self.result.routes.items()):
                del self.result.routes_missing[surface]
                self.result.notes.append(f"{self.result.routes[surface].line()} while other {family} routes answer: "
                                         f"its cases are run, and fail")

    def _finish(self, started: float, served: set[str], unserved: dict[str, str]) -> None:
        result = self.result
        result.served = sorted(served)
        result.not_served = dict(sorted(unserved.items()))
        result.requests = self._count
        result.seconds = time.monotonic() - started
        if result.fatal:
            return
        if self.target.models is not None:
            for name in sorted(unserved):
                result.notes.append(f"the target profile maps {name} to {self.target.served_name(name)!r}, which "
                                    f"the target does not serve ({unserved[name]}): its cases are skipped")
        for surface, answer in sorted(result.routes.items()):
            if answer.kind == "auth":
                result.notes.append(f"the target refuses the token on {answer.what} (HTTP {answer.status}): "
                                    f"the {surface} cases will show it")
            elif answer.kind in ("html", "redirect", "infra"):
                result.notes.append(f"{surface}: {answer.line()}")


def family_of(surface: str) -> str:
    """The surface family a route belongs to (Gemini's generate, stream and v1 routes are one)."""
    found = surfaces().get(surface)
    return found.summary_surface if found is not None and found.summary_surface else surface


def _missing_reason(answer: Answer) -> str:
    return f"the target answers HTTP {answer.status} on {answer.what} (preflight): no such route"


def _expand(value: Any, model: str) -> Any:
    if isinstance(value, str):
        return value.replace("{model}", model)
    if isinstance(value, dict):
        return {k: _expand(v, model) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, model) for v in value]
    return value


def preflight(target: Target, uses: Iterable[Use], pacer: Any = None) -> Preflight:
    """The preflight of a target for the runnable case items `uses`."""
    from dataclasses import replace

    bounded = replace(target, timeout=min(target.timeout, PREFLIGHT_TIMEOUT_S),
                      max_body_bytes=min(target.max_body_bytes, PREFLIGHT_MAX_BODY_BYTES))
    client = GatewayClient(bounded, PREFLIGHT_RETRY, pacer)
    try:
        return Probe(bounded, client, uses).run()
    finally:
        client.close()
