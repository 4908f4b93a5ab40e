"""Target configuration: which gateway, which token, which routes, models and features.

Precedence is CLI flag > environment > target profile file > defaults. Every problem becomes a BadInput
with one line of text: a suite that crashes on its own configuration cannot certify anything.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.bounds import DEFAULT_MAX_BODY_BYTES
from conformance.catalog import NAME_FORMS, load_catalog
from conformance.errors import BadInput
from conformance.reference import REFERENCE_TOKEN_ENV, REFERENCE_WAREHOUSE_ID
from conformance.resources import DATA_DIR
from conformance.schemas import validate
from conformance.vocabulary import surfaces
from conformance.yamlio import load_yaml

DEFAULT_TOKEN_ENV = "DATABRICKS_TOKEN"
AUTH_SCHEMES = ("bearer", "basic")
# ${NAME} in a profile header value: the environment variable NAME (a profile names its secrets, never holds them)
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a header whose name says it carries a credential: its value is a secret to the redactor (x-portkey-config
# carries provider keys, as vendor config headers often do). Whole words of the name only: "portkey" is no key,
# and masking x-portkey-provider's "anthropic" everywhere would blot out the evidence.
CREDENTIAL_HEADER = re.compile(r"(?:^|[-_.])(?:api-?key|apikey|key|token|secret|auth|authorization|password|passwd|"
                               r"signature|cookie|credentials?|config)(?:$|[-_.])", re.IGNORECASE)
# headers the suite sets itself: the credential (token_env, auth, auth_header) and the body's framing
SUITE_HEADERS = frozenset({"authorization", "content-type", "accept", "content-length", "host", "transfer-encoding"})
# The SQL warehouse of the reference gateway (conformance/gateway/sql.py, conformance/reference.py), and how long
# rows take to appear in its usage table at most; the usage features are claimed only by a target that names a
# warehouse.
REFERENCE_SQL = {"warehouse_id": REFERENCE_WAREHOUSE_ID, "max_lag_s": 2}
USAGE_FEATURES = ("usage.request_tags", "usage.ai_query")


@cache
def features() -> dict[str, dict[str, Any]]:
    return load_yaml(DATA_DIR / "features.yaml")["features"]


@dataclass
class TargetOptions:
    """What the user said, before any resolution (CLI flags or pytest options)."""

    url: str | None = None
    token_env: str | None = None
    databricks_profile: str | None = None
    auth: str | None = None
    target_file: str | None = None
    insecure: bool = False
    timeout: float = 60.0
    name_form: str | None = None
    max_body_bytes: int | None = None  # None: bounds.DEFAULT_MAX_BODY_BYTES
    concurrency: int = 8  # --concurrency: requests in flight at once (a concurrent case sends that many)


@dataclass
class Target:
    url: str | None
    name: str
    token: str | None = field(repr=False)
    auth: str = "bearer"
    auth_header: str = "Authorization"
    version: str | None = None
    organization: str | None = None
    contact: str | None = None
    # the model-name form each route is sent (catalog.NAME_FORMS): name_form forces one on every route (--name-form);
    # else the profile's name_forms for the route, else the form the spec shows for it (data/surfaces.yaml)
    name_form: str | None = None
    name_forms: dict[str, str] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] | None = None
    features: frozenset[str] | None = None
    unsupported_features: frozenset[str] = frozenset()
    limits: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # on every request
    surface_headers: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # per surface, over those
    media_urls: dict[str, str] = field(default_factory=dict)  # media fixture file name -> public URL of a copy
    sql: dict[str, Any] | None = None  # the SQL warehouse of the usage features: {warehouse_id, max_lag_s, ...}
    verify_tls: bool = True
    timeout: float = 60.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # decoded bytes of one answer (conformance/bounds.py)
    reference: bool = False  # the suite started its own reference gateway for this run
    concurrency: int = 8  # --concurrency: how many requests a concurrent case sends at once (concurrency.py)
    # found by the preflight (conformance/preflight.py): catalog models the target does not serve, and routes
    # that answer 404, each with why; their cases are skipped with that reason
    unserved: dict[str, str] = field(default_factory=dict)
    routes_missing: dict[str, str] = field(default_factory=dict)

    def claims(self, feature: str) -> bool:
        if feature in self.unsupported_features:
            return False
        return self.features is None or feature in self.features

    def served_name(self, model_name: str, surface: str | None = None) -> str | None:
        """The name the target serves a catalog model under on a surface's route (None: the unified routes'
        form), or None when it does not serve it. A profile's `models` names it the same on every route."""
        if self.models is not None:
            return self.models.get(model_name)
        model = load_catalog().get(model_name)
        return model.served_name(self.form_for(surface)) if model else None

    def form_for(self, surface: str | None) -> str:
        """001 shows `system.ai.<name>` on the /ai-gateway routes and the endpoint name (`databricks-<name>`) on
        /serving-endpoints/responses ("replace the model service name with an endpoint name")."""
        if self.name_form:
            return self.name_form
        if surface is None:
            return NAME_FORMS[0]
        default = surfaces()[surface].name_form if surface in surfaces() else None
        return self.name_forms.get(surface) or default or NAME_FORMS[0]

    def route(self, surface: str) -> str | None:
        return self.routes.get(surface)

    def headers_for(self, surface: str) -> dict[str, str]:
        """The profile's headers for a request to this surface (the routing headers of a gateway such as Portkey,
        which picks the upstream per request): every request's, then the surface's own."""
        return merge_headers(self.headers, self.surface_headers.get(surface, {}))

    def secrets(self) -> list[str]:
        """Every value the redactor must mask: the token and the values of credential-carrying profile headers."""
        values = [self.token] if self.token else []
        for layer in (self.headers, *self.surface_headers.values()):
            values += [value for name, value in layer.items() if CREDENTIAL_HEADER.search(name)]
        return values

    def public(self) -> dict[str, Any]:
        return {"url": self.url, "name": self.name, "version": self.version, "reference": self.reference}


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win, by case-insensitive name (HTTP header names are): `X-A` then `x-a` sends one header."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


def _check_header_names(path: str, data: dict[str, Any]) -> None:
    own = SUITE_HEADERS | {str(data.get("auth_header", "Authorization")).lower()}
    layers = [("headers", data.get("headers", {}))]
    layers += [(f"surface_headers.{surface}", h) for surface, h in data.get("surface_headers", {}).items()]
    for where, layer in layers:
        for name in layer:
            if name.lower() in own:
                raise BadInput(f"target profile {path}: {where} sets {name!r}, which the suite sets itself "
                               "(the credential comes from token_env and auth, the framing from the case)")


def expand_headers(layer: Mapping[str, str], where: str, environ: Mapping[str, str]) -> dict[str, str]:
    """${NAME} -> the environment variable NAME; an unset one is bad input, never an empty header."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise BadInput(f"{where} needs the environment variable {name}, which is unset")
        return environ[name]

    expanded = {name: _ENV_REFERENCE.sub(value_of, value) for name, value in layer.items()}
    for name, value in expanded.items():
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise BadInput(f"{where}: the value of {name!r} holds a control character (a line break?)")
    return expanded


def read_databrickscfg(profile: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """host and token of a ~/.databrickscfg profile, read as the Databricks CLI and SDK read it."""
    path = Path(environ.get("DATABRICKS_CONFIG_FILE") or Path.home() / ".databrickscfg")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise BadInput(f"cannot read Databricks config file {path}: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise BadInput(f"Databricks config file {path} is malformed: {str(exc).splitlines()[0]}") from None
    if profile != "DEFAULT" and not parser.has_section(profile):
        raise BadInput(f"profile {profile!r} not found in {path}")
    section = parser[profile]
    return section.get("host"), section.get("token")


def load_target_profile(path: str) -> dict[str, Any]:
    data = load_yaml(Path(path))
    if not isinstance(data, dict):
        raise BadInput(f"target profile {path} must be a YAML mapping")
    errors = validate("target-profile", data)
    if errors:
        raise BadInput(f"target profile {path} is invalid: {errors[0]}")
    catalog = load_catalog()
    for model in data.get("models", {}):
        if catalog.get(model) is None:
            raise BadInput(f"target profile {path}: {model!r} is not a catalog model (see `conformance models`)")
    _check_header_names(path, data)
    known = features()
    claimed = data.get("features", "all")
    for feature in [*([] if claimed == "all" else claimed), *data.get("unsupported_features", [])]:
        if feature not in known:
            raise BadInput(f"target profile {path}: unknown feature {feature!r}")
    return data


def _check_url(url: str, origin: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{origin} is not an http(s) URL: {url!r}")
    return url.rstrip("/")


def is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_target(opts: TargetOptions, environ: Mapping[str, str] | None = None) -> Target:
    environ = os.environ if environ is None else environ
    profile: dict[str, Any] = load_target_profile(opts.target_file) if opts.target_file else {}

    if opts.auth is not None and opts.auth not in AUTH_SCHEMES:
        raise BadInput(f"--auth must be one of {', '.join(AUTH_SCHEMES)}, not {opts.auth!r}")
    if opts.name_form is not None and opts.name_form not in NAME_FORMS:
        raise BadInput(f"--name-form must be one of {', '.join(NAME_FORMS)}, not {opts.name_form!r}")
    if not opts.timeout or opts.timeout <= 0:
        raise BadInput(f"--timeout must be a positive number of seconds, not {opts.timeout!r}")
    if opts.max_body_bytes is not None and opts.max_body_bytes < 1024:
        raise BadInput(f"--max-body-bytes must be at least 1024, not {opts.max_body_bytes!r}")

    cfg_host = cfg_token = None
    if opts.databricks_profile:
        cfg_host, cfg_token = read_databrickscfg(opts.databricks_profile, environ)

    # URL: --url > --profile host > GATEWAY_URL > DATABRICKS_HOST > profile file > reference gateway
    url, origin = None, ""
    for value, where in (
        (opts.url, "--url"),
        (cfg_host, f"host of profile {opts.databricks_profile}"),
        (environ.get("GATEWAY_URL"), "GATEWAY_URL"),
        (environ.get("DATABRICKS_HOST"), "DATABRICKS_HOST"),
        (profile.get("url"), f"url of {opts.target_file}"),
    ):
        if value:
            url, origin = value, where
            break
    if url is not None:
        url = _check_url(url, origin)

    if url is None:
        token = environ.get(REFERENCE_TOKEN_ENV)
    elif opts.token_env:
        token = environ.get(opts.token_env)
    elif cfg_token:
        token = cfg_token
    else:
        token = environ.get(profile.get("token_env") or DEFAULT_TOKEN_ENV)
    token_env = opts.token_env or profile.get("token_env") or DEFAULT_TOKEN_ENV
    if url is not None and not token and not is_local(url):
        raise BadInput(
            f"no token for {url}: set {token_env} (or --token-env NAME, or --profile NAME from ~/.databrickscfg)"
        )

    routes = {name: s.route for name, s in surfaces().items() if s.route is not None}
    routes.update(profile.get("routes", {}))
    routes = {name: route for name, route in routes.items() if route is not None}  # null: surface not offered
    claimed = profile.get("features", "all")
    sql = profile.get("sql") or (dict(REFERENCE_SQL) if url is None else None)
    unsupported = set(profile.get("unsupported_features", []))
    if sql is None:  # the usage table is read through a SQL warehouse: without one, nothing to claim
        unsupported |= set(USAGE_FEATURES)
    origin = f"target profile {opts.target_file}"
    headers = expand_headers(profile.get("headers", {}), f"{origin}: headers", environ)
    surface_headers = {surface: expand_headers(layer, f"{origin}: surface_headers.{surface}", environ)
                       for surface, layer in profile.get("surface_headers", {}).items()}
    return Target(
        url=url,
        name=profile.get("name") or ("reference" if url is None else urlsplit(url).hostname or "target"),
        token=token or None,
        auth=opts.auth or profile.get("auth") or "bearer",
        auth_header=profile.get("auth_header", "Authorization"),
        version=profile.get("version"),
        organization=profile.get("organization"),
        contact=profile.get("contact"),
        name_form=opts.name_form,
        name_forms={**(dict.fromkeys(surfaces(), profile["name_form"]) if "name_form" in profile else {}),
                    **profile.get("name_forms", {})},
        routes=routes,
        models=dict(profile["models"]) if "models" in profile else None,
        features=None if claimed == "all" else frozenset(claimed),
        unsupported_features=frozenset(unsupported),
        limits=dict(profile.get("limits", {})),
        headers=headers,
        surface_headers=surface_headers,
        media_urls=dict(profile.get("media_urls", {})),
        sql=dict(sql) if sql else None,
        verify_tls=not opts.insecure,
        timeout=float(opts.timeout),
        max_body_bytes=opts.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        reference=url is None,
        concurrency=opts.concurrency,
    )
