"""One resolved run: the target and every run option, made once (by the CLI or from pytest options).

`conformance run` resolves its flags into RunSettings and hands the object to the plugin (plugin.run); `pytest
--pyargs conformance` builds the same object from the plugin's pytest options. Either way the session works from
this object only, and xdist workers get it from the controller (as plain data), never by re-reading flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.config import Target, TargetOptions, resolve_target
from conformance.errors import BadInput
from conformance.stopping import DEFAULT_MAX_CONSECUTIVE_ERRORS

HTML_MODES = ("auto", "allure", "builtin", "none")
DEFAULT_USAGE_WAIT_S = 30.0  # how long the usage cases poll the usage table for the run's rows (usage_tracking.py)


@dataclass
class RunSettings:
    target: Target
    switches: tuple[str, ...] = ()  # reference gateway switches (deviations, variations)
    retries: int = 5
    concurrency: int = 8
    max_rps: float | None = None
    token_budget: int | None = None
    reports: Path = Path("reports")
    run_dir: Path | None = None  # exactly this (existing) folder instead of a new one under `reports`
    snapshots: Path | None = None  # root of the shape snapshots (default: snapshots.default_snapshot_root)
    html: str = "auto"
    spec_dir: Path | None = None
    fail_on_drift: bool = False
    strict: bool = False  # warnings (broken should/advisory rules) count as failures
    max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS  # the circuit breaker (stopping.py); 0: never
    usage_wait: float = DEFAULT_USAGE_WAIT_S  # seconds the usage cases poll system.ai_gateway.usage
    stream_delay_s: float = 0.0  # reference gateway only: seconds per streamed token (`--stream-delay`)
    extra: dict[str, Any] = field(default_factory=dict)  # room for options other branches add

    def check(self) -> RunSettings:
        """Bad input as one line (BadInput), before any work."""
        from conformance.gateway import behaviours

        if self.retries < 1:
            raise BadInput("--retries must be at least 1")
        if self.concurrency < 1:
            raise BadInput("--concurrency must be at least 1")
        if self.token_budget is not None and self.token_budget < 0:
            raise BadInput("--token-budget must be >= 0")
        if self.max_rps is not None and self.max_rps <= 0:
            raise BadInput("--max-rps must be positive")
        if self.max_consecutive_errors < 0:
            raise BadInput("--max-consecutive-errors must be >= 0 (0: never stop)")
        if self.usage_wait is None or not self.usage_wait >= 0:  # (not >=: NaN too)
            raise BadInput(f"--usage-wait must be >= 0 seconds, not {self.usage_wait!r}")
        if self.html not in HTML_MODES:
            raise BadInput(f"--html must be one of {', '.join(HTML_MODES)}, not {self.html!r}")
        if self.spec_dir is not None and not self.spec_dir.is_dir():
            raise BadInput(f"--spec {self.spec_dir}: not a folder")
        behaviours.check_names(list(self.switches))
        if self.switches and not self.target.reference:
            raise BadInput("--deviation applies to the reference gateway only (no --url)")
        if self.stream_delay_s and (not self.target.reference or not 0 < self.stream_delay_s <= 10):
            raise BadInput("--stream-delay applies to the reference gateway only (no --url), within 0..10 s per token")
        if self.html == "allure":
            from conformance.html import allure_binary

            if allure_binary() is None:
                raise BadInput("Allure is not installed (run `conformance html-setup`; needs node and npm)")
        return self

    # --- xdist: the controller hands the settings to each worker as plain data ------------------------------

    def to_plain(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["target"] = _plain(dataclasses.asdict(self.target))
        out["switches"] = list(self.switches)
        for key in ("reports", "run_dir", "snapshots", "spec_dir"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> RunSettings:
        target_data = dict(data["target"])
        for key in ("features", "unsupported_features"):
            if target_data.get(key) is not None:
                target_data[key] = frozenset(target_data[key])
        values = {**data, "target": Target(**target_data), "switches": tuple(data["switches"])}
        for key in ("reports", "run_dir", "snapshots", "spec_dir"):
            values[key] = None if values[key] is None else Path(values[key])
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return sorted(map(_plain, value)) if isinstance(value, set | frozenset) else [_plain(v) for v in value]
    return value


def from_pytest_options(config: Any) -> RunSettings:
    """`pytest --pyargs conformance --gateway-url ...`: the same settings the CLI would make."""
    get = config.getoption
    options = TargetOptions(url=get("gateway_url"), token_env=get("gateway_token_env"),
                            databricks_profile=get("gateway_profile"), auth=get("gateway_auth"),
                            target_file=get("gateway_target"), insecure=get("gateway_insecure"),
                            timeout=get("gateway_timeout"), name_form=get("gateway_name_form"),
                            max_body_bytes=get("gateway_max_body_bytes"), concurrency=get("gateway_concurrency"))
    run_dir = get("conformance_run_dir")
    snapshots = get("conformance_snapshots")
    spec = get("conformance_spec")
    return RunSettings(
        target=resolve_target(options), switches=tuple(get("gateway_deviation")), retries=get("gateway_retries"),
        concurrency=get("gateway_concurrency"), max_rps=get("gateway_max_rps"),
        token_budget=get("gateway_token_budget"), reports=Path(get("conformance_reports") or "reports"),
        run_dir=Path(run_dir) if run_dir else None, snapshots=Path(snapshots) if snapshots else None,
        html=get("conformance_html"), spec_dir=Path(spec) if spec else None,
        fail_on_drift=bool(get("conformance_fail_on_drift")), strict=bool(get("conformance_strict")),
        max_consecutive_errors=get("gateway_max_consecutive_errors"), usage_wait=get("gateway_usage_wait"),
        stream_delay_s=get("gateway_stream_delay"),
    ).check()
