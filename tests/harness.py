"""The self-tests' judging harness: every case item performed against the reference gateway and judged by the
suite's own judging path, in this process, for any switch, without nested pytest or the CLI.

Two gateway processes per pytest process (per xdist worker), the lanes, both started in self-test mode: their
switches are set between batches through their control path (conformance/gateway/selftest.py), so the official
clients, which send their own requests, run under the switch as the HTTP cases do. The main lane answers at
once; the side lane streams at a pace and performs the items that mostly wait (the streams a check times, the
usage batches), side by side with the main lane's. An item is performed as a run performs it
(runner.Runtime.perform_case / perform_client, one at a time) and judged as a run judges it
(evaluate.evaluate_steps / evaluate_client, findings.outcome_of); drift is the shape comparison of a run
(snapshots.normalise against the shipped baseline snapshots/reference/).

The baseline (no switch) performs every item once and records, per item, which switches the gateway consulted
while answering it: the switches applied to it. The reference gateway's answer is a function of the request and
of the switches it consults (GatewayState.on), so an item during which a switch was never consulted gets the same
answer with that switch on, and so the same verdict: judging a switch performs the items it was applied to and
takes the baseline's verdict for the rest (`Judged.performed` counts them); behaviours.Switch.expected says what
each item must give. CONFORMANCE_FULL_MATRIX=1 performs every item under every switch instead (the proof that
nothing outside the applied items changes).

The usage cases (conformance/usage_cases/) are items too, performed as a run performs them (usage_tracking.Begin
makes the requests, usage_tracking.settle looks their rows up through the gateway's SQL warehouse), in three
batches: the documented ai_query statement (its result and its capture are one statement), the refused
ai_query, the tagged requests. The tagged requests go out side by side, so what the gateway consulted cannot be
told apart within a batch: a switch consulted anywhere in one is applied to each of its items (the rules each
item is judged by still decide what it must give). The batches keep the switches that only the tagged requests
consult from repeating the ai_query statement, which waits for the slack of its window after the requests before
it (on the side lane's gateway: the main lane's requests are another gateway's, in another usage table).

The switches applied to usage items alone are judged in a thread, on a third gateway of their own, from the first
judgement of the process on (judge_usage_only_in_background): their batches mostly wait, and so overlap the
judgement of the other switches instead of holding the process.

In a `pytest tests` session the matrix is judged by two background processes (tests/background_matrix.py), each
a Harness of one `part` of the items: the paced streams, at the normal CPU priority (they are timed), and every
other item, at the lowest (it is CPU work that needs no one's timing). Each performs its part of the baseline and
of each switch's judgement and publishes them; a worker's Harness with `background` reads both and performs only
what a background could not answer (an infrastructure error), through the same `_judge`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import secrets
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from background_matrix import BACKGROUND_PARTS, BackgroundMatrix

from conformance import cases as case_data
from conformance.cases import CaseItem
from conformance.client import RetryPolicy
from conformance.clientcases import CLIENT_CASES_DIR, load_client_cases
from conformance.concurrency import is_concurrent
from conformance.config import REFERENCE_TOKEN_ENV, TargetOptions, resolve_target
from conformance.evaluate import evaluate_client, evaluate_steps
from conformance.findings import Finding, outcome_of
from conformance.gateway.behaviours import Switch, is_client_case, rules_of
from conformance.gateway.selftest import CONTROL_PATH
from conformance.gateway.server import GatewayProcess
from conformance.pacing import Pacer, TokenBudget, make_store
from conformance.resources import CASES_DIR
from conformance.runner import Runtime
from conformance.snapshots import (
    ShapeSnapshotExtension,
    default_snapshot_root,
    diff_shapes,
    normalise,
    surface_of_snapshot,
)
from conformance.statements import StatementClient
from conformance.usage_tracking import Begin, UsageItem, expand_usage, settle, verdict_of

FULL_MATRIX_ENV = "CONFORMANCE_FULL_MATRIX"
USAGE_WAIT_S = 10.0  # the lookups' polling (--usage-wait): the usage-lag variation's rows come a second late
Item = CaseItem | UsageItem
# the items judged by streaming_incremental are streamed at a pace (seconds per token, as `serve --stream-delay`):
# a self-test gateway builds a whole stream (and tries every switched-off mutator on it) before its first event,
# which on a loaded machine takes a second for a 160-word stream that then arrives at once, as a buffered one
# would. At this pace such a stream spreads its content over half a second after that: streaming_incremental
# tells it from a buffered one (stream-buffered, which holds back a stream made at 8 ms a token) unless its first
# event took over 4 s. They go to the side lane, whose gateway streams at this pace; every other item streams at
# once on the main lane: no check reads its timing, and pacing every stream item of every switch cost a third of
# the matrix's wall time
STREAM_DELAY_S = 0.003
PACED_CHECK = "streaming_incremental"
PARTS = ("all", *BACKGROUND_PARTS)  # a Harness performs all the items, or those of one background's part
JUDGE_THREADS = 2  # more gave nothing on 2 cores (bench/selftest_matrix.py: extra-fields 10.9 s at 2, 11.3 s at 4)


@dataclass
class Verdict:
    """One item's judgement: its outcome (passed, failed, warned, skipped, error) and the findings behind it."""

    outcome: str
    findings: list[Finding] = field(default_factory=list)
    message: str = ""  # a skip's or an infrastructure error's reason
    snapshot: str | None = None  # match | drift | no-baseline; None: the shape was not compared (a client case)
    drift: list[str] = field(default_factory=list)  # the shape differences from the baseline snapshot

    def text(self) -> str:
        return "; ".join(f"({f.strength}) {f.text()}"[:200] for f in self.findings) or self.message


@dataclass
class Judged:
    """A switch's verdicts on every item, the items it was applied to (the gateway consulted it while answering
    them in the baseline), and how many items were performed under it."""

    switch: Switch
    verdicts: dict[str, Verdict]
    applied: set[str]
    performed: int
    items: list[Item]

    def with_outcome(self, outcome: str) -> set[str]:
        return {test for test, verdict in self.verdicts.items() if verdict.outcome == outcome}

    def expected(self) -> dict[str, str]:
        """test id -> the outcome behaviours.yaml derives for it (behaviours.Switch.expected)."""
        return {item.test_id: self.switch.expected(item, item.test_id in self.applied) for item in self.items}

    def expected_with(self, outcome: str) -> set[str]:
        return {test for test, wanted in self.expected().items() if wanted == outcome}

    def drifted(self) -> set[str]:
        return {test for test, verdict in self.verdicts.items() if verdict.snapshot == "drift"}

    def expected_drift(self) -> set[str]:
        return {item.test_id for item in self.items if self.switch.expects_drift(item, item.test_id in self.applied)}

    def counts(self) -> Counter[str]:
        return Counter(v.outcome for v in self.verdicts.values())


class Lane:
    """One reference gateway in self-test mode and the runtime that performs items against it."""

    def __init__(self, token: str, stream_delay_s: float) -> None:
        self.gateway = GatewayProcess(token, self_test=True, stream_delay_s=stream_delay_s)
        self.gateway.__enter__()
        try:
            self.target = resolve_target(TargetOptions(), environ={REFERENCE_TOKEN_ENV: token})
            self.target.url = self.gateway.url
            store = make_store(None, shared=False)
            self.runtime = Runtime(self.target, Pacer(None, store), TokenBudget(None, store), RetryPolicy(attempts=3))
            self.control = httpx.Client(base_url=str(self.gateway.url), timeout=30)
        except BaseException:
            self.gateway.__exit__()
            raise
        self.last_request: float | None = None  # time.monotonic() after the last item performed here

    def close(self) -> None:
        self.runtime.close()
        self.control.close()
        self.gateway.__exit__()

    def set_switches(self, names: list[str]) -> None:
        answer = self.control.post(CONTROL_PATH, json={"switches": names})
        answer.raise_for_status()

    def take_consulted(self) -> frozenset[str]:
        answer = self.control.get(CONTROL_PATH)
        answer.raise_for_status()
        return frozenset(answer.json()["consulted"])


class Harness:
    """Two reference gateways in self-test mode (the lanes), the items of a case directory, and their baseline
    verdicts. The main lane answers at once; the side lane streams at STREAM_DELAY_S a token and performs the
    items that mostly wait: the paced streams and the usage batches (whose ai_query statement waits out the slack
    of its window after that gateway's last request). Under a switch, both lanes perform their items side by side:
    the waits of one are the other's CPU time. Each lane's requests go to its own gateway, so a case of concurrent
    requests on the main lane and ai_query's window on the side lane see none of the other's."""

    def __init__(self, cases_dir: Path = CASES_DIR, client_cases_dir: Path = CLIENT_CASES_DIR,
                 usage: bool = True, share: Path | None = None, background: Path | None = None,
                 part: str = "all") -> None:
        self.cases_dir, self.client_cases_dir = cases_dir, client_cases_dir
        token = "selftest-" + secrets.token_urlsafe(16)
        self.main = Lane(token, 0.0)
        try:
            self.side = Lane(token, STREAM_DELAY_S)
        except BaseException:
            self.main.close()
            raise
        try:
            self.target = self.main.target
            self.items: list[Item] = [*case_data.expand(case_data.load_cases(cases_dir), self.target),
                                      *case_data.expand(load_client_cases(client_cases_dir), self.target),
                                      *(expand_usage(self.target) if usage else [])]
        except BaseException:
            self.close()
            raise
        self.by_id = {item.test_id: item for item in self.items}
        self._baseline: dict[str, Verdict] = {}
        self._shared_read: set[str] = set()  # the parts of the shared baseline already read (shared_baseline)
        self.consulted: dict[str, frozenset[str]] = {}
        self._judged: dict[tuple[str, bool, bool], Judged] = {}  # (switch, full, shapes): every item's judgement
        self.snapshots = default_snapshot_root() / "reference"
        self._paced: dict[str, bool] = {}  # test id -> whether a check measures its timing
        self.share = share  # a folder where the baseline of every item is kept for other processes (shared_baseline)
        self._token = token
        self._background: dict[str, Future[Judged]] = {}  # the usage-only switches, judged in the background
        self._background_lane: Lane | None = None
        self._background_pool: ThreadPoolExecutor | None = None
        self._usage_only_started = False
        # the background processes of the session, which judge the matrix (tests/background_matrix.py); or this
        # harness is one of them, and performs only its part of the case data's items (PARTS)
        self.matrix = BackgroundMatrix.at(background) if background is not None else None
        assert part in PARTS, part
        self.part = part

    def close(self) -> None:
        if self._background_pool is not None:  # a switch still being judged ends on the closed gateway
            self._background_pool.shutdown(wait=False, cancel_futures=True)
        if self._background_lane is not None:
            self._background_lane.close()
        self.main.close()
        self.side.close()

    def lanes(self) -> list[Lane]:
        """Every lane started so far: the main and side lanes, and the usage-only switches' once started."""
        return [self.main, self.side, *([self._background_lane] if self._background_lane else [])]

    # --- the gateways' switches ---------------------------------------------------------------------------

    def set_switches(self, names: list[str]) -> None:
        self.main.set_switches(names)
        self.side.set_switches(names)

    def paced(self, item: Item) -> bool:
        """Whether a check measures the item's timing (it is streamed at a pace, on the side lane)."""
        if item.test_id not in self._paced:
            self._paced[item.test_id] = PACED_CHECK in rules_of(item)
        return self._paced[item.test_id]

    def lane_of(self, item: Item) -> Lane:
        """The side lane for a usage item and a paced stream (not a case of concurrent requests), else the main."""
        if isinstance(item, UsageItem) or (self.paced(item) and not is_concurrent(item.case)):
            return self.side
        return self.main

    # --- one item ---------------------------------------------------------------------------------------------

    def perform(self, item: CaseItem, shapes: bool = False) -> Verdict:
        """Perform and judge one item as a run does, on its lane; with `shapes`, compare its answer's shape with
        the shipped baseline snapshot as a run does (drift never changes the outcome)."""
        lane = self.lane_of(item)
        try:
            return self._perform(item, shapes, lane)
        finally:
            lane.last_request = time.monotonic()

    def _perform(self, item: CaseItem, shapes: bool, lane: Lane) -> Verdict:
        client = is_client_case(item.case)
        performed = lane.runtime.perform_client(item) if client else lane.runtime.perform_case(item)
        if performed.skip:
            return Verdict("skipped", message=performed.skip)
        if performed.infra:
            return Verdict("error", message=performed.infra)
        if client:
            findings = evaluate_client(item, performed)
            return Verdict(outcome_of(findings), findings)
        assert performed.exchange is not None
        findings = evaluate_steps(item, performed.exchange)
        verdict = Verdict(outcome_of(findings), findings)
        if shapes:
            verdict.snapshot, verdict.drift = self.shape(item, performed.exchange)
        return verdict

    @staticmethod
    def usage_batches(items: list[UsageItem]) -> list[list[UsageItem]]:
        """The usage items in the batches they are performed in (ai_query's result and capture; the refusal; the
        tags), in that order, each non-empty. ai_query comes first, as in a run: it waits out its window's slack
        after the side lane's last request, which is then the previous switch's, made while the main lane worked."""
        batch = {"ai_query_result": 0, "ai_query_captured": 0, "ai_query_refused": 1, "tags": 2}
        batches: list[list[UsageItem]] = [[], [], []]
        for item in items:
            batches[batch[item.kind]].append(item)
        return [b for b in batches if b]

    def perform_usage(self, items: list[UsageItem], lane: Lane | None = None) -> dict[str, Verdict]:
        """The usage items' batch, as a run performs it (usage_plugin: Begin, then settle), judged as a run
        judges it (usage_checks: the findings with each rule's strength in the case); a row still pending after
        the lookups' wait is an error, as in a run. On the side lane, or on `lane`."""
        lane = lane or self.side
        begin = Begin(lane.target, lane.runtime, lambda line: None, lane.last_request)
        try:
            record = begin.run(items)
            settled: dict[str, Any] = {}
            if any(case["outcome"] == "pending" for case in record["cases"].values()):
                client = StatementClient(lane.target, record["warehouse_id"], lane.runtime.retry,
                                         auth_headers=lane.runtime.client.auth_headers("default"),
                                         http=lane.runtime.client)
                try:
                    settled = settle(record, client, USAGE_WAIT_S)
                finally:
                    client.close()
        finally:
            lane.last_request = time.monotonic()
        verdicts = {}
        for item in items:
            if item.skip:
                verdicts[item.test_id] = Verdict("skipped", message=item.skip)
                continue
            verdict = verdict_of(record, item.test_id, settled)
            outcome = "error" if verdict.outcome == "pending" else verdict.outcome
            verdicts[item.test_id] = Verdict(outcome, list(verdict.findings), verdict.message)
        return verdicts

    def shape(self, item: CaseItem, exchange: Any) -> tuple[str, list[str]]:
        """The run's comparison (snapshots.ShapeCheck) without syrupy's bookkeeping: the stored shape of
        `test_case[<case>@<model>]` in snapshots/reference/<surface>.json against this answer's."""
        name = f"test_case[{item.test_id}]"
        stored = ShapeSnapshotExtension._read(str(self.snapshots / f"{surface_of_snapshot(name)}.json"))
        if name not in stored:
            return "no-baseline", []
        shape = json.loads(json.dumps(normalise(exchange)))
        if shape == stored[name]:
            return "match", []
        return "drift", diff_shapes(stored[name], shape) or ["shape differs"]

    # --- the matrix -------------------------------------------------------------------------------------------

    def applied(self, test: str) -> frozenset[str]:
        """The switches the gateway consulted while answering this item in the baseline: those it applies to it."""
        self.baseline()
        return self.consulted[test]

    def baseline(self, items: list[Item] | None = None) -> dict[str, Verdict]:
        """Every item (or `items`, other case data's) with no switch on, and the switches the gateway consulted
        while answering each (a usage item: while answering its batch); an item is performed once."""
        items = self.items if items is None else items
        todo = [item for item in items if item.test_id not in self._baseline]
        unread = [part for part in self.parts() if part not in self._shared_read]
        if todo and unread and self.share is not None and any(item.test_id in self.by_id for item in todo):
            for part in unread:
                self.shared_baseline(part)
                self._shared_read.add(part)  # its record is read once: items it leaves out are another part's
            todo = [item for item in items if item.test_id not in self._baseline]
        self._perform_baseline([item for item in todo if not self.deferred(item)])
        return {item.test_id: self._baseline[item.test_id] for item in items if item.test_id in self._baseline}

    def part_of(self, item: Item) -> str:
        """The background part that performs the item: `paced` (normal priority) for whatever is judged by its
        timing: the paced streams, and the cases of concurrent requests (the gateway pairs requests that arrive
        within a window; at nice 19 a starved sender missed it, and a crossing deviation passed)."""
        if isinstance(item, UsageItem):
            return "unpaced"
        return "paced" if self.paced(item) or is_concurrent(item.case) else "unpaced"

    def deferred(self, item: Item) -> bool:
        """Whether the item is another process's to perform: in a background, an item of the case data outside
        its part."""
        return self.part != "all" and item.test_id in self.by_id and self.part_of(item) != self.part

    def parts(self) -> list[str]:
        """The parts of the shared baseline this harness reads: all of it, or its own (a background's), or
        both backgrounds' (a worker's, with a background)."""
        if self.part != "all":
            return [self.part]
        return list(BACKGROUND_PARTS) if self.matrix is not None else ["all"]

    def _perform_baseline(self, todo: list[Item]) -> None:
        """These items with no switch on, each once, and what the gateway consulted while answering each: one at
        a time on each lane (consultations are per request), the two lanes side by side."""
        if not todo:
            return
        self.set_switches([])
        main = [item for item in todo if self.lane_of(item) is self.main]

        def side() -> None:
            usage = [item for item in todo if isinstance(item, UsageItem)]
            for batch in self.usage_batches(usage):
                self._baseline.update(self.perform_usage(batch))
                consulted = self.side.take_consulted()
                self.consulted.update({item.test_id: consulted for item in batch})
            for item in todo:
                if not isinstance(item, UsageItem) and self.lane_of(item) is self.side:
                    self._baseline[item.test_id] = self.perform(item, shapes=not is_client_case(item.case))
                    self.consulted[item.test_id] = self.side.take_consulted()

        with ThreadPoolExecutor(1, thread_name_prefix="side") as pool:
            waiting = pool.submit(side)
            for item in main:
                self._baseline[item.test_id] = self.perform(item, shapes=not is_client_case(item.case))
                self.consulted[item.test_id] = self.main.take_consulted()
            waiting.result()

    def shared_baseline(self, part: str = "all") -> None:
        """The baseline of every item, performed once for all the processes that share `self.share` (the xdist
        workers of one `pytest tests`): the first to ask performs it under a file lock and keeps its verdicts
        and consultations there; the others read them. The reference gateway answers deterministically (the
        module docstring), so another process's gateway gave the verdicts and consultations this one would.
        The record is named by the items' ids and the case data's bytes: other items are another record. A part
        the background performs (`unpaced`, in a worker with a background) is waited for, never performed here,
        but for the items the background answered with an infrastructure error."""
        assert self.share is not None
        digest = hashlib.sha256()
        for test in sorted(self.by_id):
            digest.update(test.encode() + b"\0")
        for folder in (self.cases_dir, self.client_cases_dir):
            for path in sorted(folder.rglob("*.yaml")):
                digest.update(path.read_bytes())
        key = f"{digest.hexdigest()[:16]}-{part}"
        self.share.mkdir(parents=True, exist_ok=True)
        record = self.share / f"baseline-{key}.pickle"
        if self.matrix is not None:  # a background's part: waited for, never performed here
            verdicts, consulted = self.matrix.wait_for(record, part)
            self._baseline.update(verdicts)
            self.consulted.update(consulted)
            self._perform_baseline([self.by_id[test] for test, v in verdicts.items() if v.outcome == "error"])
            return
        with (self.share / f"baseline-{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            if record.exists():
                verdicts, consulted = pickle.loads(record.read_bytes())
                self._baseline.update(verdicts)
                self.consulted.update(consulted)
                return
            mine = [item for item in self.items if part in ("all", self.part_of(item))
                    and item.test_id not in self._baseline]
            self._perform_baseline(mine)
            verdicts = {item.test_id: self._baseline[item.test_id] for item in mine}
            consulted = {item.test_id: self.consulted[item.test_id] for item in mine}
            partial = record.with_suffix(".partial")
            partial.write_bytes(pickle.dumps((verdicts, consulted)))
            partial.replace(record)

    def judge(self, switch: Switch, items: list[Item] | None = None, full: bool | None = None,
              shapes: bool | None = None) -> Judged:
        """The verdict of every item (or of `items`) with exactly this switch on; the answers' shapes are compared
        with the baseline snapshots for a drift switch (or with `shapes`)."""
        every = items is None
        items = self.items if items is None else items
        baseline = self.baseline(items)
        full = os.environ.get(FULL_MATRIX_ENV) == "1" if full is None else full
        shapes = switch.drifts is not None if shapes is None else shapes
        # the reference gateway answers deterministically: a switch judged on every item is judged once per
        # process (with shapes compared, it also serves a judgement that does not compare them)
        for cached in ((switch.name, full, True), (switch.name, full, shapes)):
            if every and cached in self._judged:
                return self._judged[cached]
        published = self.matrix.judgement(switch.name, full, shapes) if every and self.matrix else None
        if published is not None:
            judged = self._judge(switch, items, baseline, full, shapes, done=published.verdicts)
            judged.performed += published.performed
            self._judged[(switch.name, full, shapes)] = judged
            return judged
        if every and not full and not self._usage_only_started:
            self._usage_only_started = True
            self.judge_usage_only_in_background()
        if every and not full and switch.name in self._background:
            return self._background[switch.name].result()
        judged = self._judge(switch, items, baseline, full, shapes)
        if every:
            self._judged[(switch.name, full, shapes)] = judged
        return judged

    def _judge(self, switch: Switch, items: list[Item], baseline: dict[str, Verdict], full: bool,
               shapes: bool, usage_lane: Lane | None = None, done: dict[str, Verdict] | None = None) -> Judged:
        """The items the switch was applied to (every item, `full`) performed under it, the baseline's verdict
        for the rest; on the two lanes side by side, or, for a switch applied to usage items alone, on
        `usage_lane` (the usage-only switches' lane). `done`: verdicts under the switch made elsewhere (the
        background matrix's), but for an infrastructure error there (it is performed again here); the deferred
        items (in a background: the other part's) are neither performed nor judged."""
        applied = self._applied(switch, items)
        done = {test: verdict for test, verdict in (done or {}).items() if verdict.outcome != "error"}
        todo = [item for item in items
                if (full or item.test_id in applied) and item.test_id not in done and not self.deferred(item)]
        lanes = [usage_lane] if usage_lane is not None else [self.main, self.side]
        if not todo:
            lanes = []
        for lane in lanes:
            lane.set_switches([switch.name])
        try:
            if usage_lane is not None:
                assert all(isinstance(item, UsageItem) for item in todo), switch.name
                verdicts = self.perform_side(todo, shapes, usage_lane)
            else:
                with ThreadPoolExecutor(1, thread_name_prefix="side") as pool:
                    waiting = pool.submit(self.perform_side,
                                          [item for item in todo if self.lane_of(item) is self.side], shapes)
                    verdicts = self.perform_main([item for item in todo if self.lane_of(item) is self.main],
                                                 shapes)
                    verdicts.update(waiting.result())
            # the switch cannot change an answer it was never consulted for
            verdicts = {**done, **verdicts}
            verdicts = {item.test_id: verdicts.get(item.test_id) or baseline[item.test_id] for item in items
                        if item.test_id in verdicts or item.test_id in baseline}
        finally:
            for lane in lanes:
                lane.set_switches([])
        return Judged(switch, verdicts, applied, len(todo), items)

    def _applied(self, switch: Switch, items: list[Item]) -> set[str]:
        """The items the gateway consulted the switch for in the baseline: those it is applied to."""
        return {item.test_id for item in items if switch.name in self.consulted.get(item.test_id, ())}

    def usage_only(self, switch: Switch) -> bool:
        """Whether the switch was applied to usage items alone (nothing of it is streamed, nor has a shape)."""
        applied = self._applied(switch, self.items)
        return bool(applied) and all(isinstance(self.by_id[test], UsageItem) for test in applied)

    def judge_usage_only_in_background(self) -> None:
        """The switches applied to usage items alone, each judged on a lane of its own (a third gateway, its
        own switch and usage table), one after the other in a thread, while this process judges the others: a
        usage batch mostly waits (ai_query's window slack after the lane's last request, a statement polled
        while pending), and their judgement is then ready when their tests ask. Each is judged as `_judge`
        judges it: its usage batches performed under it, the baseline's verdict for every other item."""
        from conformance.gateway.behaviours import switches

        self.baseline()
        wanted = [s for s in switches().values() if self.usage_only(s)]
        if not wanted:
            return
        self._background_lane = Lane(self._token, STREAM_DELAY_S)
        self._background_pool = ThreadPoolExecutor(1, thread_name_prefix="usage-only")
        for switch in wanted:
            self._background[switch.name] = self._background_pool.submit(self._judge_usage_only, switch)

    def _judge_usage_only(self, switch: Switch) -> Judged:
        assert self._background_lane is not None
        return self._judge(switch, self.items, self._baseline, False, False, usage_lane=self._background_lane)

    def perform_main(self, items: list[CaseItem], shapes: bool) -> dict[str, Verdict]:
        """The main lane's items under one switch, JUDGE_THREADS at a time: the harness judges one answer while
        the gateway makes the next (alone, each waits for the other); then each case of concurrent requests
        alone (other requests would be among its own)."""
        alone = [item for item in items if is_concurrent(item.case)]
        together = [item for item in items if item not in alone]
        verdicts: dict[str, Verdict] = {}
        if together:
            with ThreadPoolExecutor(min(JUDGE_THREADS, len(together)), thread_name_prefix="judge") as pool:
                futures = {item.test_id: pool.submit(self.perform, item, shapes and not is_client_case(item.case))
                           for item in together}
                verdicts.update({test: future.result() for test, future in futures.items()})
        for item in alone:
            verdicts[item.test_id] = self.perform(item, shapes=shapes and not is_client_case(item.case))
        return verdicts

    def perform_side(self, items: list[Item], shapes: bool, usage_lane: Lane | None = None) -> dict[str, Verdict]:
        """The side lane's items under one switch: the usage batches (on `usage_lane` if given), then the paced
        streams all at once (a paced stream waits, it does not compute, so several at once are timed as one alone
        is)."""
        verdicts: dict[str, Verdict] = {}
        for batch in self.usage_batches([item for item in items if isinstance(item, UsageItem)]):
            verdicts.update(self.perform_usage(batch, usage_lane))
        paced = [item for item in items if not isinstance(item, UsageItem)]
        if paced:
            with ThreadPoolExecutor(len(paced), thread_name_prefix="paced") as pool:
                futures = {item.test_id: pool.submit(self.perform, item, shapes and not is_client_case(item.case))
                           for item in paced}
                verdicts.update({test: future.result() for test, future in futures.items()})
        return verdicts
