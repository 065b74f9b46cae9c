"""Invariants on what is *served*, over random histories of one ModelDeployment.

The world model plays the cluster: a Deployment gets the replicas a plan asks for at once, but new pods are
Ready only when a `ready` happening says so, and pods scaled away stop serving at once (the worst case for
capacity). Happenings: spec edits among three templates (new versions and reverts, at any step), the
autoscaler changing spec.replicas, time passing, pods becoming Ready, analysis runs of every verdict,
restarts, people's requests, and operator restarts (the next pass plans from status as stored, JSON and all).

After every pass it checks what clients would get, not what was planned: the Ready pods behind `<md>` never
drop by more than one below what served before (or the new desired count, if lower); promotions rest on a
passing run; the weight never runs ahead of the steps; every failure ends with the route at 0; revision
numbers are never reused for another template.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from modeldeploy.api.status import Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.settings import Settings
from planning import take

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
STEPS = {
    "pause-then-analysis": [{"setWeight": 25}, {"pause": {"duration": "5s"}}, {"analysis": {}}, {"setWeight": 75}],
    "open-pause": [{"setWeight": 50}, {"pause": {}}],
    "full-weight-step": [{"setWeight": 100}, {"pause": {"duration": "5s"}}],
    "none": [],
}
ROUTERS = {"replicas": None, "gatewayAPI": {"gatewayAPI": {"httpRoute": "r"}}}


def raw_spec(version: str, replicas: int, steps: list[dict[str, Any]], router: str,
             surge: int | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "steps": steps, "progressDeadlineSeconds": 60, "scaleDownDelaySeconds": 5,
        "analysis": {"interval": "10s", "failureLimit": 1, "inconclusiveLimit": 1, "metrics": [
            {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"},
             "thresholdRange": {"max": 0.05}}]}}
    if ROUTERS[router]:
        block["trafficRouting"] = ROUTERS[router]
    if surge is not None:
        block["maxSurge"] = surge
    return {"model": {"uri": f"s3://m/v{version}", "version": version}, "runtime": {"image": "srv:1"},
            "replicas": replicas, "rollout": block}


class World:
    def __init__(self, steps: list[dict[str, Any]], router: str, surge: int | None = None) -> None:
        self.steps, self.router, self.surge = steps, router, surge
        self.now = START
        self.version, self.replicas = "1", 4
        self.status = ModelDeploymentStatus()
        self.deps: dict[int, DeploymentFacts] = {}
        self.records: dict[int, RevisionRecord] = {}
        self.annotations: dict[str, str] = {}
        self.tokens = 0
        self.router_weight = 0

    def served(self) -> int:
        """Ready pods behind `<md>` (every revision's)."""
        return sum(f.ready_replicas for f in self.deps.values())

    def reconcile(self, measurements: tuple[Measurement, ...] | None = None) -> rollout.Plan:
        seen = Observed(name="fraud", namespace="ns", uid="u", generation=1, now=self.now,
                        deployments=dict(self.deps), revisions=tuple(sorted(self.records.values(),
                                                                            key=lambda r: r.number)),
                        annotations=dict(self.annotations), measurements=measurements,
                        measured_revision=self.status.canary_revision if measurements else None,
                        router_weight=self.router_weight if self.router != "replicas" else None)
        raw = raw_spec(self.version, self.replicas, self.steps, self.router, self.surge)
        plan = rollout.plan(raw, self.status, seen, Settings(allow_inline_analysis_urls=True))
        take(plan, self.deps, self.records)
        if plan.traffic is not None:
            self.router_weight = plan.traffic.canary_weight
        self.status = plan.status
        return plan

    def request(self, what: str) -> None:
        self.tokens += 1
        keys = {"promote": requests.PROMOTE, "promote-full": requests.PROMOTE_FULL, "abort": requests.ABORT,
                "resume": requests.RESUME}
        if what in keys:
            self.annotations[keys[what]] = str(self.tokens)
        if what == "pause":
            self.annotations[requests.PAUSED] = "true"
        elif what == "resume":
            self.annotations.pop(requests.PAUSED, None)


happenings = st.lists(st.one_of(
    st.tuples(st.just("tick"), st.integers(1, 30)),
    st.tuples(st.just("ready"), st.integers(0, 3)),  # one revision's pods all become Ready
    st.tuples(st.just("edit"), st.sampled_from(["1", "2", "3"])),  # a new version, or back to an old one
    st.tuples(st.just("scale"), st.integers(2, 6)),  # the autoscaler changes spec.replicas
    st.tuples(st.just("measure"), st.sampled_from(list(Verdict))),
    st.tuples(st.just("crash"), st.integers(0, 3)),
    st.tuples(st.just("request"), st.sampled_from(["promote", "promote-full", "abort", "pause", "resume"])),
    st.tuples(st.just("restart-operator"), st.none()),
), min_size=1, max_size=40)


def allowed_weight(steps: list[dict[str, Any]], index: int | None) -> int:
    if index is None or index >= len(steps):
        return 100
    weights = [s["setWeight"] for s in steps[: index + 1] if "setWeight" in s]
    return weights[-1] if weights else 0


# A git revert late in a canary at 100% (it used to leave no pod serving), and a new version mid-canary.
@example(steps="full-weight-step", router="replicas",
         events=[("edit", "2"), ("ready", 2), ("tick", 1), ("edit", "1"), ("tick", 1), ("ready", 1)], surge=None)
@example(steps="open-pause", router="replicas",
         events=[("edit", "2"), ("ready", 2), ("tick", 1), ("edit", "3"), ("tick", 1), ("ready", 1), ("ready", 3)],
         surge=None)
@given(steps=st.sampled_from(list(STEPS)), router=st.sampled_from(list(ROUTERS)), events=happenings,
       surge=st.sampled_from([None, None, 0, 1, 2]))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_served_capacity_and_evidence(steps: str, router: str, events: list[tuple[str, Any]],
                                      surge: int | None) -> None:
    # (A pod budget on a mesh needs a setWeight step: the schema refuses it without one.)
    assume(surge is None or router == "replicas" or any("setWeight" in s for s in STEPS[steps]))
    world = World(STEPS[steps], router, surge)
    world.reconcile()
    world.deps = {n: replace(f, ready_replicas=f.replicas) for n, f in world.deps.items()}
    world.reconcile()
    assert world.status.stable_revision == 1 and world.served() == 4
    hashes: dict[int, str] = {n: r.hash for n, r in world.records.items()}
    for kind, arg in events:
        measurements = None
        if kind == "tick":
            world.now += timedelta(seconds=arg)
        elif kind == "ready" and arg in world.deps:
            world.deps[arg] = replace(world.deps[arg], ready_replicas=world.deps[arg].replicas)
        elif kind == "edit":
            world.version = arg
        elif kind == "scale":
            world.replicas = arg
        elif kind == "measure":
            measurements = (Measurement(metric="errors", verdict=arg, value=0.01),)
        elif kind == "crash" and arg in world.deps:
            world.deps[arg] = replace(world.deps[arg], max_restarts=3, crashing_pod=f"fraud-r{arg}-x")
        elif kind == "request":
            world.request(arg)
        elif kind == "restart-operator":
            # A new process knows only what status holds, as stored.
            world.status = ModelDeploymentStatus.model_validate(
                world.status.model_dump(by_alias=True, mode="json", exclude_none=True))
        before = world.served()
        plan = world.reconcile(measurements)
        after, st_ = world.served(), plan.status
        reasons = {e.reason for e in plan.events}

        # What clients get never drops by more than one pod below what served (or the new desired count).
        assert after >= min(before, world.replicas) - 1, (before, after, world.deps, st_.message)
        # Within a pod budget, the pods asked for never number more than it allows.
        if surge is not None:
            assert sum(f.replicas for f in world.deps.values()) <= world.replicas + surge, (world.deps, st_.message)
        # The weight never runs ahead of the steps.
        if st_.canary_revision is not None and st_.step_weight is not None:
            assert st_.step_weight <= allowed_weight(STEPS[steps], st_.current_step_index)
        for weight in (st_.canary_weight, st_.step_weight):
            assert weight is None or 0 <= weight <= 100
        # Every promotion of a canary with metrics rests on a passing run, or on a person's word.
        if "Promoted" in reasons and STEPS[steps] and st_.analysis is not None:
            assert st_.analysis.passed >= 1 or st_.analysis.waived, st_.analysis
        # Every failure ends with all traffic to stable.
        if reasons & {"RolledBack", "Aborted"}:
            assert st_.canary_revision is None
            assert plan.traffic is None or plan.traffic.canary_weight == 0
        # Revision numbers are never reused for another template.
        for n, r in world.records.items():
            assert hashes.setdefault(n, r.hash) == r.hash, (n, hashes[n], r.hash)
        # Every Deployment the plan keeps has a history record.
        assert set(world.deps) <= set(world.records), (world.deps.keys(), world.records.keys())
