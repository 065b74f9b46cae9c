"""rollout.bake: after its last step the canary serves 100% under analysis for a while before it becomes stable,
and the previous revision keeps its pods warm, serving nothing, so a failure then rolls back without a cold
start."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import BAKE_NEEDS_STEPS, ModelDeploymentSpec
from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.history import Outcome
from planning import (
    FAILED,
    MD,
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    manifests,
    observed,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)

STEPS = [{"setWeight": 50}, {"analysis": {}}]
ANALYSIS = {"interval": "10s", "failureLimit": 0, "metrics": [
    {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.05}}]}
BAKE = {"duration": "10m"}


def block(**more: Any) -> dict[str, Any]:
    return {"steps": STEPS, "analysis": ANALYSIS, "bake": BAKE, "progressDeadlineSeconds": 60, **more}


def raw(**more: Any) -> dict[str, Any]:
    return spec("8", replicas=4, rollout=block(**more))


def at(seconds_ago: float) -> str:
    return rollout.timestamp(NOW - timedelta(seconds=seconds_ago))


def final(bake_ago: float | None = None, passed: int = 3, step_ago: float = 30, **more: Any) -> ModelDeploymentStatus:
    """Revision 2 past its last step `step_ago` s ago, the canary at 100%, baking since `bake_ago` s if given."""
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=3600, reason="Canary", canary_weight=100,
                  step_weight=100, current_step_index=len(STEPS), step_started_at=at(step_ago),
                  analysis=AnalysisStatus(revision=2, runs=passed, passed=passed, last_run_at=at(5),
                                          last_verdict=Verdict.PASS),
                  bake_started_at=at(bake_ago) if bake_ago is not None else None, **more)


def seen(*deps: Any, verdict: Verdict | None = None, annotations: dict[str, str] | None = None,
         client_selects: int | None = None, outcome: Any = PROGRESSING, behind: dict[int, int] | None = None,
         router_weight: int | None = None, **rollout_block: Any) -> Any:
    more: dict[str, Any] = {"client_selects": client_selects, "router_weight": router_weight}
    if behind is not None:
        more["ready_endpoints"] = {MD: behind}
    if verdict is not None:
        more.update(measurements=(Measurement(metric="errors", verdict=verdict, value=0.4),), measured_revision=2,
                    measured_at=NOW)
    return observed(*deps, revisions=(record(1, "7", STABLE, replicas=4, rollout=block(**rollout_block)),
                                      record(2, "8", outcome, replicas=4, rollout=block(**rollout_block))),
                    annotations=annotations or {}, **more)


def client_selector(p: rollout.Plan) -> dict[str, str]:
    return dict(manifests(p, "Service")[MD]["spec"]["selector"])


def test_at_100_percent_the_canary_bakes_alone_while_stable_comes_back_to_full_size_serving_nothing() -> None:
    # Given every step passed, and the canary has all 4 pods Ready beside 2 stable ones (the replicas router lent
    # it the others at 50%)
    p = rollout.plan(raw(), final(), seen(ready(1, 2), ready(2, 4)), SETTINGS)
    # Then it bakes from now instead of being promoted
    assert (p.status.phase, p.status.canary_revision, p.status.stable_revision) == (Phase.PROGRESSING, 2, 1)
    assert p.status.bake_started_at == rollout.timestamp(NOW)
    until = rollout.timestamp(NOW + timedelta(minutes=10))
    assert f"baking until {until}; revision 1 keeps its pods to roll back to" in (p.status.message or "")
    assert next(c.reason for c in p.status.conditions if c.type == "Ready") == "Baking"
    # clients reach the canary alone, and stable grows back to its full size behind `<md>-stable`
    assert client_selector(p) == {names.LABEL_MD: MD, names.LABEL_REVISION: "2"}
    assert replicas(p) == {1: 4, 2: 4}
    # and it looks again when the bake ends
    assert p.requeue_after is not None and p.requeue_after <= 600


def test_the_bake_waits_for_every_canary_pod_to_be_ready() -> None:
    p = rollout.plan(raw(), final(), seen(ready(1, 4), starting(2, 4, ready=3)), SETTINGS)
    assert p.status.bake_started_at is None and "promoting: 3/4" in (p.status.message or ""), p.status.message


def test_a_failed_run_during_the_bake_rolls_back_at_once_to_the_warm_stable_pods() -> None:
    # Given `<md>` selects the baking canary's pods alone
    p = rollout.plan(raw(), final(bake_ago=120), seen(ready(1, 4), ready(2, 4), verdict=Verdict.FAIL,
                                                      client_selects=2, behind={2: 4}), SETTINGS)
    assert (p.status.phase, p.status.canary_revision, p.status.stable_revision) == (Phase.DEGRADED, None, 1)
    assert "analysis failed 1 of 4 runs" in (p.status.message or ""), p.status.message
    assert p.status.bake_started_at is None
    # Then clients reach the warm stable pods by way of both revisions' (a selector switched between two sets of
    # pods leaves the Service with no endpoint for a moment), and the canary's pods stay until those are behind it
    assert client_selector(p) == {names.LABEL_MD: MD}
    assert replicas(p) == {1: 4, 2: 4}
    # When the stable pods are behind `<md>`, it selects them alone and the canary goes
    p = rollout.plan(raw(), p.status, seen(ready(1, 4), ready(2, 4), client_selects=None, outcome=FAILED,
                                           behind={1: 4, 2: 4}), SETTINGS)
    assert client_selector(p) == {names.LABEL_MD: MD, names.LABEL_REVISION: "1"}
    assert replicas(p) == {1: 4, 2: 0}


def test_the_progress_deadline_does_not_run_out_during_a_bake_longer_than_it() -> None:
    # 8 minutes into a 10-minute bake, with progressDeadlineSeconds 60 and the last step 15 minutes ago
    p = rollout.plan(raw(), final(bake_ago=480, step_ago=900), seen(ready(1, 4), ready(2, 4), verdict=Verdict.PASS),
                     SETTINGS)
    assert (p.status.phase, p.status.canary_revision) == (Phase.PROGRESSING, 2), p.status.message
    assert p.status.bake_started_at == rollout.timestamp(NOW - timedelta(seconds=480))


def test_at_the_end_of_the_bake_the_canary_is_promoted_and_the_old_revision_retires() -> None:
    p = rollout.plan(raw(), final(bake_ago=600), seen(ready(1, 4), ready(2, 4)), SETTINGS)
    assert (p.status.phase, p.status.stable_revision, p.status.canary_revision) == (Phase.HEALTHY, 2, None)
    assert p.status.bake_started_at is None
    assert "Promoted" in [e.reason for e in p.events]


def test_promote_ends_the_bake_early() -> None:
    asked = {requests.PROMOTE: "t1"}
    p = rollout.plan(raw(), final(bake_ago=60), seen(ready(1, 4), ready(2, 4), annotations=asked), SETTINGS)
    assert (p.status.phase, p.status.stable_revision) == (Phase.HEALTHY, 2), p.status.message
    assert p.status.handled_requests[requests.PROMOTE] == "t1"


def test_without_a_bake_the_canary_is_promoted_at_100_percent() -> None:
    no_bake = spec("8", replicas=4, rollout={"steps": STEPS, "analysis": ANALYSIS})
    p = rollout.plan(no_bake, final(), seen(ready(1, 2), ready(2, 4)), SETTINGS)
    assert (p.status.phase, p.status.stable_revision) == (Phase.HEALTHY, 2), p.status.message


def test_within_a_pod_budget_stable_keeps_only_what_the_canary_leaves_of_it() -> None:
    p = rollout.plan(raw(maxSurge=1), final(bake_ago=60), seen(ready(1, 1), ready(2, 4), maxSurge=1), SETTINGS)
    assert (p.status.phase, p.status.canary_revision) == (Phase.PROGRESSING, 2), p.status.message
    assert replicas(p) == {1: 1, 2: 4}


def test_a_bake_needs_canary_steps() -> None:
    with pytest.raises(ValidationError, match="bake needs canary steps"):
        ModelDeploymentSpec.model_validate(spec(rollout={"bake": BAKE}))
    assert "rollout.steps" in BAKE_NEEDS_STEPS


def test_a_rollback_from_the_bake_moves_clients_before_the_canary_pods_start_to_go() -> None:
    from modeldeploy.reconcile.core import apply_order

    # The plan of the rollback: the canary's Deployment shrinks, `<md>` turns to the stable pods
    p = rollout.plan(raw(), final(bake_ago=120), seen(ready(1, 4), ready(2, 4), verdict=Verdict.FAIL), SETTINGS)
    live = {("Deployment", names.deployment_name(MD, n)): {"spec": {"replicas": 4}} for n in (1, 2)}
    order = [(m["kind"], m["metadata"]["name"]) for m in sorted(p.apply, key=lambda m: apply_order(m, live))]
    assert order.index(("Service", MD)) < order.index(("Deployment", names.deployment_name(MD, 2))), order
    assert order[0][0] == "ControllerRevision", order  # the record of the failure first, as always


# -- found in review -----------------------------------------------------------------------------------------
def test_promote_past_a_final_pause_still_bakes() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    rollout_block = {"steps": steps, "analysis": ANALYSIS, "bake": BAKE, "progressDeadlineSeconds": 60}
    old = status(Phase.PAUSED, stable=1, canary=2, started_ago=3600, reason="Paused", canary_weight=50,
                 step_weight=50, current_step_index=1, step_started_at=at(300),
                 analysis=AnalysisStatus(revision=2, runs=3, passed=3, last_run_at=at(5), last_verdict=Verdict.PASS))
    obs = observed(ready(1, 4), ready(2, 4), annotations={requests.PROMOTE: "t1"},
                   revisions=(record(1, "7", STABLE, replicas=4, rollout=rollout_block),
                              record(2, "8", PROGRESSING, replicas=4, rollout=rollout_block)))
    p = rollout.plan(spec("8", replicas=4, rollout=rollout_block), old, obs, SETTINGS)
    assert (p.status.phase, p.status.canary_revision) == (Phase.PROGRESSING, 2), p.status.message
    assert p.status.bake_started_at == rollout.timestamp(NOW)


def test_promote_full_skips_the_bake() -> None:
    asked = {requests.PROMOTE_FULL: "t1"}
    p = rollout.plan(raw(), final(bake_ago=60), seen(ready(1, 4), ready(2, 4), annotations=asked), SETTINGS)
    assert (p.status.phase, p.status.stable_revision) == (Phase.HEALTHY, 2), p.status.message


def test_a_spec_change_mid_bake_drains_the_canary_only_once_the_pods_wanted_are_behind_md() -> None:
    # The spec goes back to model 7 (revision 1) during the bake; `<md>` selects the canary's pods alone
    p = rollout.plan(spec("7", replicas=4, rollout=block()), final(bake_ago=120),
                     seen(ready(1, 4), ready(2, 4), client_selects=2, behind={2: 4}), SETTINGS)
    assert client_selector(p) == {names.LABEL_MD: MD}
    assert replicas(p).get(2) == 4, replicas(p)  # still there, serving beside the stable pods
    # Once the stable pods are behind `<md>`, the canary drains
    p = rollout.plan(spec("7", replicas=4, rollout=block()), p.status,
                     seen(ready(1, 4), ready(2, 4), client_selects=None, behind={1: 4, 2: 4}), SETTINGS)
    assert replicas(p).get(2, 0) == 0 and client_selector(p) == {names.LABEL_MD: MD, names.LABEL_REVISION: "1"}


def test_steps_added_during_the_bake_come_first_and_the_bake_starts_again_after_them() -> None:
    more = {"steps": [*STEPS, {"setWeight": 80}, {"pause": {"duration": "1h"}}]}
    p = rollout.plan(raw(**more), final(bake_ago=120), seen(ready(1, 4), ready(2, 4), client_selects=2, **more),
                     SETTINGS)
    assert p.status.step_weight == 80 and p.status.bake_started_at is None, p.status.message
    assert client_selector(p) == {names.LABEL_MD: MD}  # at 80%, clients reach both revisions


def test_after_the_bake_the_progress_deadline_counts_from_its_end() -> None:
    # A canary pod lost late in the bake never comes back
    def after(bake_ago: float) -> rollout.Plan:
        return rollout.plan(raw(), final(bake_ago=bake_ago, step_ago=bake_ago + 30),
                            seen(ready(1, 4), starting(2, 4, ready=3)), SETTINGS)

    waiting = after(600 + 30)  # 30 s past the end of the bake, progressDeadlineSeconds 60
    assert (waiting.status.phase, waiting.status.canary_revision) == (Phase.PROGRESSING, 2), waiting.status.message
    assert "promoting: 3/4" in (waiting.status.message or "")
    failed = after(600 + 61)
    assert failed.status.phase == Phase.DEGRADED and "no progress in 61s" in (failed.status.message or ""), \
        failed.status.message


def test_within_a_budget_of_0_the_bake_says_a_rollback_starts_cold() -> None:
    p = rollout.plan(raw(maxSurge=0), final(), seen(ready(2, 4), maxSurge=0), SETTINGS)
    assert "revision 1 keeps no pod warm (maxSurge 0): a rollback starts its pods cold" in (p.status.message or "")


MESH = {"gatewayAPI": {"httpRoute": "fraud"}}


def test_with_a_mesh_the_bake_carries_no_mirror_polls_no_route_and_a_rollback_waits_for_the_route() -> None:
    mesh = {"steps": [{"mirror": {"percent": 100}}, *STEPS], "trafficRouting": MESH}
    old = final(bake_ago=120).model_copy(update={"current_step_index": 3})
    obs = seen(ready(1, 4), ready(2, 4), router_weight=100, **mesh)
    p = rollout.plan(raw(**mesh), old, obs, SETTINGS)
    assert p.traffic is not None and (p.traffic.canary_weight, p.traffic.mirror) == (100, 0)
    assert p.requeue_after is not None and p.requeue_after > 5  # the next analysis run, not a route poll
    # An abort: the route is set to 0 after the Deployments are written, so the canary's pods stay until it reads 0
    aborting = rollout.plan(raw(**mesh), old, replace(obs, annotations={requests.ABORT: "a"}), SETTINGS)
    assert replicas(aborting)[2] == 4 and aborting.traffic is not None and aborting.traffic.canary_weight == 0
    aborted = seen(ready(1, 4), ready(2, 4), router_weight=0, outcome=Outcome.ABORTED, **mesh)
    gone = rollout.plan(raw(**mesh), aborting.status, aborted, SETTINGS)
    assert replicas(gone).get(2, 0) == 0
