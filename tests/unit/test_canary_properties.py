"""Invariants of the canary planner over random rollouts.

Hypothesis draws what happens while revision 2 rolls out over a stable
revision 1 with canary steps: time passing, pods becoming Ready, analysis runs
passing or failing, containers restarting, and people promoting, aborting,
pausing and resuming. A small in-memory world applies each plan as written
(replicas, ControllerRevisions) and feeds its status back, like the reconciler.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from modeldeploy.api.status import Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.settings import Settings
from planning import take

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TOTAL = 4
ROUTERS = {"replicas": None, "gatewayAPI": {"gatewayAPI": {"httpRoute": "r"}},
           "istio": {"istio": {"virtualService": "v"}}}


def raw_spec(version: str, steps: list[dict[str, Any]], router: str) -> dict[str, Any]:
    rollout_block: dict[str, Any] = {
        "steps": steps, "progressDeadlineSeconds": 60, "scaleDownDelaySeconds": 5,
        "analysis": {"interval": "10s", "failureLimit": 1, "metrics": [
            {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"},
             "thresholdRange": {"max": 0.05}}]}}
    if ROUTERS[router]:
        rollout_block["trafficRouting"] = ROUTERS[router]
    return {"model": {"uri": f"s3://m/v{version}", "version": version},
            "runtime": {"image": "registry.example/server:1"}, "replicas": TOTAL, "rollout": rollout_block}


steps_strategy = st.lists(
    st.one_of(st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
              st.builds(lambda d: {"pause": {"duration": f"{d}s"}}, st.integers(1, 30)),
              st.just({"pause": {}}),
              st.just({"analysis": {}})),
    min_size=1, max_size=6)

events_strategy = st.lists(st.one_of(
    st.tuples(st.just("tick"), st.integers(1, 40)),
    st.tuples(st.just("ready"), st.floats(0, 1)),
    st.tuples(st.just("measure"), st.sampled_from(list(Verdict))),
    st.tuples(st.just("restart"), st.integers(0, 5)),
    st.tuples(st.just("request"), st.sampled_from(["promote", "promote-full", "abort", "pause", "resume"])),
), min_size=1, max_size=40)


class World:
    """Deployments, history and status of one ModelDeployment, as the planner left them."""

    def __init__(self, steps: list[dict[str, Any]], router: str) -> None:
        self.steps, self.router = steps, router
        self.now = START
        self.status = ModelDeploymentStatus()
        self.deps: dict[int, DeploymentFacts] = {}
        self.records: dict[int, RevisionRecord] = {}
        self.annotations: dict[str, str] = {}
        self.tokens = 0
        self.router_weight: int | None = 0
        self.version = "1"

    def observed(self, measurements: tuple[Measurement, ...] | None = None) -> Observed:
        return Observed(name="fraud", namespace="ns", uid="u", generation=1, now=self.now, deployments=dict(self.deps),
                        revisions=tuple(sorted(self.records.values(), key=lambda r: r.number)),
                        annotations=dict(self.annotations), measurements=measurements,
                        measured_revision=2 if measurements is not None else None,
                        router_weight=self.router_weight if self.router != "replicas" else None)

    def reconcile(self, measurements: tuple[Measurement, ...] | None = None) -> rollout.Plan:
        plan = rollout.plan(raw_spec(self.version, self.steps, self.router), self.status,
                            self.observed(measurements), Settings(allow_inline_analysis_urls=True))
        take(plan, self.deps, self.records)
        if plan.traffic is not None:
            self.router_weight = plan.traffic.canary_weight
        self.status = plan.status
        return plan

    def all_ready(self) -> None:
        for rev, f in self.deps.items():
            self.deps[rev] = replace(f, ready_replicas=f.replicas)

    def request(self, what: str) -> None:
        self.tokens += 1
        key = {"promote": requests.PROMOTE, "promote-full": requests.PROMOTE_FULL, "abort": requests.ABORT}.get(what)
        if key:
            self.annotations[key] = str(self.tokens)
        elif what == "pause":
            self.annotations[requests.PAUSED] = "true"
        else:
            self.annotations.pop(requests.PAUSED, None)


def allowed_weight(steps: list[dict[str, Any]], index: int | None) -> int:
    """The weight the steps allow at an index: the last setWeight at or before it; 100 past the end."""
    if index is None or index >= len(steps):
        return 100
    weights = [s["setWeight"] for s in steps[: index + 1] if "setWeight" in s]
    return weights[-1] if weights else 0


@settings(deadline=None)
# A rollout whose pods all come up with no analysis run: it must not promote without evidence.
@example(steps=[{"setWeight": 50}], events=[("ready", 1.0), ("tick", 1)] * 4, router="replicas")
@example(steps=[{"setWeight": 50}], events=[("ready", 1.0), ("tick", 1)] * 4, router="gatewayAPI")
@given(steps=steps_strategy, events=events_strategy, router=st.sampled_from(list(ROUTERS)))
def test_canary_invariants(steps: list[dict[str, Any]], events: list[tuple[str, Any]], router: str) -> None:
    # An analysis step before traffic needs a mesh: the schema refuses it with the replicas router.
    assume(router != "replicas" or not any("analysis" in s for s in steps[:next(
        (i for i, s in enumerate(steps) if s.get("setWeight")), len(steps))]))
    world = World(steps, router)
    world.reconcile()
    world.all_ready()
    world.reconcile()
    assert world.status.stable_revision == 1
    world.version = "2"
    for kind, arg in events:
        measurements = None
        if kind == "tick":
            world.now += timedelta(seconds=arg)
        elif kind == "ready":
            for rev, f in world.deps.items():
                world.deps[rev] = replace(f, ready_replicas=round(f.replicas * arg) if rev == 2 else f.replicas)
        elif kind == "measure":
            measurements = (Measurement(metric="errors", verdict=arg, value=0.01),)
        elif kind == "restart" and 2 in world.deps:
            world.deps[2] = replace(world.deps[2], max_restarts=arg, crashing_pod="fraud-r2-x")
        elif kind == "request":
            world.request(arg)
        before = world.status
        seen_ready_stable = world.deps[1].ready_replicas if 1 in world.deps else 0
        seen_route_weight = world.router_weight if router != "replicas" else 0
        plan = world.reconcile(measurements)
        st_ = plan.status
        reasons = {e.reason for e in plan.events}

        # Weights stay within 0..100, so stable + canary = 100.
        for weight in (st_.canary_weight, st_.step_weight):
            assert weight is None or 0 <= weight <= 100
        if plan.traffic is not None:
            assert 0 <= plan.traffic.canary_weight <= 100
        # The canary never gets more weight than the current step allows.
        if st_.canary_revision is not None and st_.step_weight is not None:
            assert st_.step_weight <= allowed_weight(steps, st_.current_step_index)
        # Abort and rollback end with 100% to stable and the canary scaled down.
        # (The canary keeps only as many pods as stable still lacks Ready ones; with a mesh router, all of them
        # while the route it read still sent it requests: the route is set to 0 after the Deployments.)
        if reasons & {"RolledBack", "Aborted"}:
            assert st_.canary_revision is None and st_.stable_revision == 1
            canary = world.deps.get(2, DeploymentFacts(revision=2, replicas=0, ready_replicas=0)).replicas
            if not seen_route_weight:
                assert canary <= max(0, TOTAL - seen_ready_stable)
            if router != "replicas":
                assert canary == 0 or seen_route_weight
            if plan.traffic is not None:
                assert plan.traffic.canary_weight == 0
            assert world.deps[1].replicas >= TOTAL
        # A promoted revision is stable.
        if "Promoted" in reasons:
            assert st_.stable_revision == 2 and st_.canary_revision is None
            assert world.records[2].outcome == "Stable"
            # Metrics are configured, so a promotion rests on a passing run, or on a person's promote.
            assert st_.analysis is not None and (st_.analysis.passed >= 1 or st_.analysis.waived), st_.analysis
        # The stable revision always has pods while it serves (at 100% the canary serves alone).
        if st_.stable_revision is not None and st_.step_weight != 100:
            assert world.deps[st_.stable_revision].replicas > 0
        # A failed revision stays failed while the spec stays the same: no flapping.
        if before.phase is not None and world.records.get(2) and world.records[2].outcome in ("Failed", "Aborted"):
            assert st_.stable_revision == 1
