"""kstatus (Flux `wait`/`healthChecks`, `kubectl wait`, cli-utils) reads the status the planner writes.

`kstatus` (tests/kstatus.py) re-implements the generic rules of
kubernetes-sigs/cli-utils pkg/kstatus/status for a custom resource, so these tests
need no Go toolchain; tests/e2e/test_gitops_status.py checks it against the real
library on the statuses the real operator writes. It is applied here to statuses
produced by the real planner (`rollout.plan`) for hand-built observations, stored
the way the reconciler stores them (a merge patch of `status_body`, so null fields
are absent).

Decisions this pins down (docs/gitops.md):
- A rolled-back or aborted revision (phase Degraded) is Failed: the spec git holds
  is not what serves, and nothing more happens until the spec changes, which is
  what kstatus's Stalled means. Reporting it InProgress would keep Flux waiting
  until its timeout for a state that cannot change by itself; Current would let
  `wait: true` pass although the new model never went live. The previous revision
  keeps serving; the Warning Event and the status message say why.
- A stuck rollout (phase Degraded, reason RolloutStuck) and a spec the operator
  cannot serve (phase Failed) are Failed for the same reason.
- A rollout paused at a step, or held by a pause request, is InProgress: kstatus
  reads a Ready=False condition so, and Ready stays True exactly when the phase is
  Healthy (what `kubectl wait --for=condition=Ready` needs). Flux's `wait` waits
  for `promote`; docs/gitops.md gives CEL health checks that count a pause as
  Current instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kstatus import CURRENT, FAILED, IN_PROGRESS, TERMINATING, kstatus
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import Outcome
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.validity import retrying
from modeldeploy.reconcile.core import status_body


def test_kstatus_helper_follows_the_generic_rules() -> None:
    def cond(ctype: str, status: str) -> dict[str, str]:
        return {"type": ctype, "status": status, "message": ctype}

    assert kstatus({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}})[0] == IN_PROGRESS
    assert kstatus({"metadata": {"generation": 2}, "status": {}})[0] == CURRENT  # no observedGeneration: skipped
    assert kstatus({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}})[0] == TERMINATING
    assert kstatus({"status": {"conditions": [cond("Reconciling", "True")]}}) == (IN_PROGRESS, "Reconciling")
    assert kstatus({"status": {"conditions": [cond("Stalled", "True")]}}) == (FAILED, "Stalled")
    assert kstatus({"status": {"conditions": [cond("Ready", "False"), cond("Stalled", "False")]}}) == (
        IN_PROGRESS, "Ready")
    assert kstatus({"status": {"conditions": [cond("Ready", "True"), cond("Stalled", "False")]}})[0] == CURRENT
    assert kstatus({"status": {"conditions": [cond("Ready", "False"), cond("Stalled", "True")]}})[0] == FAILED
    assert kstatus({})[0] == CURRENT


# -- the world the planner sees -------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
GENERATION = 7
IMAGE = "registry.example/sklearn-server:1.4"
STEPS = {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}


def spec(version: str = "7", **more: Any) -> dict[str, Any]:
    return {"model": {"uri": f"s3://models/fraud/v{version}", "version": version},
            "runtime": {"image": IMAGE}, "replicas": 3, **more}


def record(number: int, version: str, outcome: Outcome, reason: str = "", **more: Any) -> RevisionRecord:
    template = ModelDeploymentSpec.model_validate(spec(version, **more)).serving_template()
    return RevisionRecord(number=number, hash=template_hash(template), model_version=version,
                          outcome=outcome.value, reason=reason, template=template)


def deployment(revision: int, ready: int, replicas: int = 3) -> DeploymentFacts:
    return DeploymentFacts(revision=revision, replicas=replicas, ready_replicas=ready, available_replicas=ready)


def seen(*deployments: DeploymentFacts, revisions: tuple[RevisionRecord, ...] = (), after: float = 0,
         **more: Any) -> Observed:
    return Observed(name="fraud", namespace="risk", uid="6f1c2b7e-0000-4000-8000-000000000001",
                    generation=GENERATION, now=NOW + timedelta(seconds=after),
                    deployments={d.revision: d for d in deployments}, revisions=revisions, **more)


R1 = record(1, "7", Outcome.STABLE)


def healthy() -> ModelDeploymentStatus:
    return rollout.plan(spec(), ModelDeploymentStatus(), seen(deployment(1, 3), revisions=(R1,)), Settings()).status


def stored(status: ModelDeploymentStatus, generation: int = GENERATION) -> dict[str, Any]:
    """The object as the API server holds it after the reconciler's merge patch of its status."""
    def drop_nulls(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop_nulls(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [drop_nulls(v) for v in value]
        return value

    return {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fraud", "namespace": "risk", "generation": generation},
            "status": drop_nulls(status_body(status))}


def planned(raw: dict[str, Any], old: ModelDeploymentStatus, obs: Observed) -> ModelDeploymentStatus:
    return rollout.plan(raw, old, obs, Settings()).status


def canary_paused_at_step() -> ModelDeploymentStatus:
    raw = spec("8", rollout=STEPS)
    first = planned(raw, healthy(), seen(deployment(1, 3), revisions=(R1,)))
    r2 = record(2, "8", Outcome.PROGRESSING, rollout=STEPS)
    return planned(raw, first, seen(deployment(1, 3), deployment(2, 1, replicas=1), revisions=(R1, r2), after=5))


def rolled_back() -> ModelDeploymentStatus:
    r2 = record(2, "8", Outcome.PROGRESSING)
    rolling = planned(spec("8"), healthy(), seen(deployment(1, 3), revisions=(R1,)))
    return planned(spec("8"), rolling, seen(deployment(1, 3), deployment(2, 1), revisions=(R1, r2), after=601))


def first_revision_stuck() -> ModelDeploymentStatus:
    first = planned(spec(), ModelDeploymentStatus(), seen())
    return planned(spec(), first, seen(deployment(1, 0), revisions=(record(1, "7", Outcome.PROGRESSING),), after=601))


def rollout_stuck_without_auto_rollback() -> ModelDeploymentStatus:
    raw = spec("8", rollout={"autoRollback": False})
    rolling = planned(raw, healthy(), seen(deployment(1, 3), revisions=(R1,)))
    r2 = record(2, "8", Outcome.PROGRESSING, rollout={"autoRollback": False})
    return planned(raw, rolling, seen(deployment(1, 3), deployment(2, 0), revisions=(R1, r2), after=601))


# (status the planner wrote, metadata.generation now, expected phase, expected reason, expected kstatus)
CASES = {
    "first-apply-pending": (
        lambda: planned(spec(), ModelDeploymentStatus(), seen()), GENERATION,
        Phase.PENDING, "Deploying", IN_PROGRESS),
    "healthy": (healthy, GENERATION, Phase.HEALTHY, "Healthy", CURRENT),
    "scaling": (
        lambda: planned(spec(replicas=5), healthy(), seen(deployment(1, 3), revisions=(R1,))), GENERATION,
        Phase.PROGRESSING, "Scaling", IN_PROGRESS),
    "rolling-out": (
        lambda: planned(spec("8"), healthy(), seen(deployment(1, 3), revisions=(R1,))), GENERATION,
        Phase.PROGRESSING, "RollingOut", IN_PROGRESS),
    "canary-at-set-weight": (
        lambda: planned(spec("8", rollout=STEPS), healthy(), seen(deployment(1, 3), revisions=(R1,))), GENERATION,
        Phase.PROGRESSING, "Canary", IN_PROGRESS),
    # Waiting for a person: InProgress (Ready=False; module docstring).
    "canary-paused-at-step": (canary_paused_at_step, GENERATION, Phase.PAUSED, "Paused", IN_PROGRESS),
    "pause-request-holds-rollout": (
        lambda: planned(spec("8"), healthy(), seen(deployment(1, 3), revisions=(R1,),
                                                  annotations={requests.PAUSED: "true"})), GENERATION,
        Phase.PAUSED, "Paused", IN_PROGRESS),
    # Settled short of the spec until it changes, the previous revision serving: Failed (module docstring).
    "rolled-back": (rolled_back, GENERATION, Phase.DEGRADED, "RolledBack", FAILED),
    # Stuck with nothing the operator can do by itself (kstatus: "insufficient progress"): Failed.
    "first-revision-never-ready": (first_revision_stuck, GENERATION, Phase.DEGRADED, "RolloutStuck", FAILED),
    "stuck-without-auto-rollback": (rollout_stuck_without_auto_rollback, GENERATION, Phase.DEGRADED, "RolloutStuck",
                                    FAILED),
    "failed-unknown-preset": (
        lambda: planned(spec(runtime={"preset": "tritonn"}), healthy(), seen(deployment(1, 3), revisions=(R1,))),
        GENERATION, Phase.FAILED, "UnknownRuntimePreset", FAILED),
    "failed-invalid-spec": (
        lambda: planned(spec(replicas=-1), healthy(), seen(deployment(1, 3), revisions=(R1,))),
        GENERATION, Phase.FAILED, "InvalidSpec", FAILED),
    "failed-traffic-router": (
        lambda: rollout.failed(healthy(), seen(deployment(1, 3), revisions=(R1,)), "TrafficRouterError",
                               "HTTPRoute risk/fraud does not exist").status,
        GENERATION, Phase.FAILED, "TrafficRouterError", FAILED),
    # A write the API server refused (quota, 5xx) is retried: work in progress, whatever the phase.
    "healthy-retrying-a-refused-write": (
        lambda: retrying(healthy(), seen(deployment(1, 3), revisions=(R1,)),
                         "the API server did not take Service fraud-canary: 403 exceeded quota").status,
        GENERATION, Phase.HEALTHY, "Healthy", IN_PROGRESS),
    # Healthy for generation 7, but the spec is at generation 8 and not yet seen.
    "healthy-but-stale-generation": (healthy, GENERATION + 1, Phase.HEALTHY, "Healthy", IN_PROGRESS),
}


@pytest.mark.parametrize(("make", "generation", "phase", "reason", "expected"), CASES.values(), ids=CASES.keys())
def test_kstatus_reads_the_planned_status(make: Any, generation: int, phase: Phase, reason: str,
                                          expected: str) -> None:
    status = make()
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (status.phase, ready.reason) == (phase, reason), status.message
    assert kstatus(stored(status, generation))[0] == expected


# What kstatus reports, word for word, where the operator's own words matter: a person reads them in Flux.
MESSAGES = {
    "first-apply-pending": (IN_PROGRESS, "revision 1 (model 7): 0/3 pods ready"),
    "failed-unknown-preset": (FAILED, "spec.runtime.preset: 'tritonn' is not a known runtime preset; use one of "
                                      "mlserver, torchserve, triton, vllm, or set spec.runtime.image to your own "
                                      "server image. Revision 1 (model 7) keeps serving"),
    "first-revision-never-ready": (FAILED, "revision 1 (model 7): 0/3 pods ready after 601s "
                                           "(progressDeadlineSeconds 600); fix the spec"),
    "healthy-retrying-a-refused-write": (IN_PROGRESS, "the API server did not take Service fraud-canary: 403 "
                                                      "exceeded quota; retrying"),
    # observedGeneration 7 as written by the planner, against generation 8
    "healthy-but-stale-generation": (IN_PROGRESS, "ModelDeployment generation is 8, but latest observed "
                                                  "generation is 7"),
    "rolled-back": (FAILED, "revision 2 (model 8) failed: 1/3 pods ready after 601s (progressDeadlineSeconds 600); "
                            "revision 1 serves. Change the spec to try again"),
    "canary-paused-at-step": (IN_PROGRESS, "revision 2 (model 8) at 10% (step 2/3: paused until "
                                           "`kubectl modeldeploy promote fraud`)"),
}


@pytest.mark.parametrize("name", MESSAGES)
def test_kstatus_message_is_the_operators(name: str) -> None:
    make, generation, *_ = CASES[name]
    assert kstatus(stored(make(), generation)) == MESSAGES[name]


def test_every_condition_carries_the_observed_generation() -> None:
    # Every case is planned for a ModelDeployment at GENERATION (see `seen`).
    for name, (make, *_) in CASES.items():
        status = make()
        assert status.observed_generation == GENERATION, name
        assert sorted((c.type, c.observed_generation) for c in status.conditions) == [
            (t, GENERATION) for t in ("Degraded", "Progressing", "Ready", "Reconciling", "Stalled")], name


# -- Argo CD reads the same statuses ----------------------------------------------------------

ARGOCD_HEALTH = (Path(__file__).resolve().parents[2] / "argocd" / "health.lua").read_text()

# What argocd/health.lua makes of each planned status (Argo CD has words kstatus lacks: a rolled-back
# revision is Degraded there, Failed here; a paused rollout Suspended there, InProgress here).
ARGOCD = {
    "first-apply-pending": "Progressing",
    "healthy": "Healthy",
    "scaling": "Progressing",
    "rolling-out": "Progressing",
    "canary-at-set-weight": "Progressing",
    "canary-paused-at-step": "Suspended",
    "pause-request-holds-rollout": "Suspended",
    "rolled-back": "Degraded",
    "first-revision-never-ready": "Degraded",
    "stuck-without-auto-rollback": "Degraded",
    "failed-unknown-preset": "Degraded",
    "failed-invalid-spec": "Degraded",
    "failed-traffic-router": "Degraded",
    "healthy-retrying-a-refused-write": "Progressing",
    "healthy-but-stale-generation": "Progressing",
}


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(hs.status, hs.message) of argocd/health.lua for an object, in Lua 5.1 as Argo CD runs it."""
    import lupa.lua51 as lua51

    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({k: to_lua(v) for k, v in value.items() if v is not None})
        if isinstance(value, list):
            return runtime.table_from([to_lua(v) for v in value])
        return value

    runtime.globals().obj = to_lua(obj)
    hs = runtime.execute(ARGOCD_HEALTH)
    return hs["status"], hs["message"]


def test_argocd_has_an_expectation_for_every_case() -> None:
    assert set(ARGOCD) == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_argocd_reads_the_planned_status(name: str) -> None:
    make, generation, *_ = CASES[name]
    status = make()
    health, message = argocd_health(stored(status, generation))
    assert health == ARGOCD[name]
    # It shows the operator's message, except while the operator has not seen the spec yet
    assert message == ("Waiting for the modeldeploy operator to observe generation 8 (last observed 7)"
                       if name == "healthy-but-stale-generation" else status.message)
