"""Evidence decides: with metrics, promotion needs a passing run; inconclusive runs pause for a person; a run
counts only for the revision it measured; an analysis step can judge a canary before it has traffic."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.analysis import analysis_due
from modeldeploy.desired.validity import ready_reason
from planning import NOW, PROGRESSING, SETTINGS, STABLE, observed, ready, record, replicas, spec, status

ANALYSIS = {"interval": "10s", "failureLimit": 1, "inconclusiveLimit": 2, "metrics": [
    {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.05}}]}
MESH = {"gatewayAPI": {"httpRoute": "fraud"}}


def raw(steps: list[dict[str, Any]], version: str = "8", **more: Any) -> dict[str, Any]:
    return spec(version, replicas=4, rollout={"steps": steps, "analysis": ANALYSIS, **more})


def canary(index: int, weight: int, analysis: AnalysisStatus | None = None, phase: Phase = Phase.PROGRESSING,
           reason: str = "Canary") -> ModelDeploymentStatus:
    return status(phase, stable=1, canary=2, started_ago=60, reason=reason, canary_weight=weight,
                  step_weight=weight, current_step_index=index, analysis=analysis,
                  step_started_at=rollout.timestamp(NOW - timedelta(seconds=5)))


def world(steps: list[dict[str, Any]], *deps: Any, **more: Any) -> Any:
    block = {"steps": steps, "analysis": ANALYSIS, **({"trafficRouting": more.pop("routing")} if "routing" in more
                                                       else {})}
    return observed(*deps, revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                      record(2, "8", PROGRESSING, replicas=4, rollout=block)), **more)


def run(verdict: Verdict, message: str = "") -> tuple[Measurement, ...]:
    value = None if verdict == Verdict.INCONCLUSIVE else 0.01
    return (Measurement(metric="errors", verdict=verdict, value=value, message=message),)


ONE_STEP = [{"setWeight": 50}]


def test_no_promotion_without_a_passing_run() -> None:
    # Given every step has passed and all pods are Ready, but no analysis run has been taken
    p = rollout.plan(raw(ONE_STEP), canary(1, 50), world(ONE_STEP, ready(1, 2), ready(2, 2)), SETTINGS)
    # Then the canary stays at its weight and says what it waits for
    assert p.status.phase == Phase.PROGRESSING and p.status.canary_revision == 2, p.status.message
    assert p.status.step_weight == 50 and replicas(p) == {1: 2, 2: 2}
    assert "waiting for a passing analysis run" in (p.status.message or "")
    assert "Promoted" not in [e.reason for e in p.events]


def test_a_passing_run_lets_it_promote() -> None:
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), measurements=run(Verdict.PASS), measured_revision=2)
    p = rollout.plan(raw(ONE_STEP), canary(1, 50), seen, SETTINGS)
    assert p.status.step_weight == 100, p.status.message


@pytest.mark.parametrize("streak", [0, 1])
def test_inconclusive_runs_within_the_limit_keep_going(streak: int) -> None:
    before = AnalysisStatus(revision=2, runs=streak, inconclusive=streak, inconclusive_streak=streak)
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), measurements=run(Verdict.INCONCLUSIVE, "no data"),
                 measured_revision=2)
    p = rollout.plan(raw(ONE_STEP), canary(1, 50, before), seen, SETTINGS)
    assert p.status.phase == Phase.PROGRESSING and p.status.analysis is not None
    assert p.status.analysis.inconclusive_streak == streak + 1


def test_past_the_inconclusive_limit_the_rollout_waits_for_a_person() -> None:
    # Given two inconclusive runs in a row (inconclusiveLimit 2), a third one: Prometheus cannot be reached
    before = AnalysisStatus(revision=2, runs=2, inconclusive=2, inconclusive_streak=2)
    error = "prometheus at http://prom:9090 did not answer: connection refused"
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), measurements=run(Verdict.INCONCLUSIVE, error),
                 measured_revision=2, now=NOW + timedelta(hours=2))
    p = rollout.plan(raw(ONE_STEP), canary(1, 50, before), seen, SETTINGS)
    # Then it pauses, quoting the provider, keeps its pods and weight, and is not failed (no deadline either)
    assert p.status.phase == Phase.PAUSED, p.status.message
    assert ready_reason(p.status) == "AnalysisInconclusive"
    assert error in (p.status.message or "")
    assert replicas(p) == {1: 2, 2: 2} and p.status.canary_revision == 2
    assert "RolledBack" not in [e.reason for e in p.events]
    # And no more runs are taken while it waits
    assert not analysis_due(raw(ONE_STEP), p.status, NOW + timedelta(hours=3))


@pytest.mark.parametrize("request_key", [requests.RESUME, requests.PROMOTE])
def test_resume_or_promote_moves_an_inconclusive_hold_on(request_key: str) -> None:
    held = AnalysisStatus(revision=2, runs=3, inconclusive=3, inconclusive_streak=3)
    old = canary(0, 50, held, Phase.PAUSED, "AnalysisInconclusive")
    steps = [{"setWeight": 50}, {"pause": {"duration": "1h"}}]
    p = rollout.plan(raw(steps), old, world(steps, ready(1, 2), ready(2, 2), annotations={request_key: "t1"}),
                     SETTINGS)
    assert p.status.phase == Phase.PROGRESSING, p.status.message
    assert p.status.analysis is not None and p.status.analysis.inconclusive_streak == 0
    assert p.status.handled_requests.get(request_key) == "t1"


def test_a_run_of_a_superseded_canary_is_discarded() -> None:
    # Given the run was taken of revision 2, but the spec has moved on to revision 3 meanwhile
    failing = run(Verdict.FAIL)
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), measurements=failing, measured_revision=2)
    p = rollout.plan(raw(ONE_STEP, version="9"), canary(0, 50), seen, SETTINGS)
    # Then revision 3 starts with no runs counted against it
    assert p.status.canary_revision == 3
    assert p.status.analysis is None or p.status.analysis.runs == 0


def test_promote_full_waives_the_evidence() -> None:
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), annotations={requests.PROMOTE_FULL: "t1"})
    p = rollout.plan(raw(ONE_STEP), canary(0, 50), seen, SETTINGS)
    assert p.status.step_weight == 100 and p.status.analysis is not None and p.status.analysis.waived


PRE_TRAFFIC = [{"analysis": {}}, {"setWeight": 25}]


def test_a_pre_traffic_analysis_step_runs_canary_pods_at_weight_zero_on_a_mesh() -> None:
    seen = world(PRE_TRAFFIC, ready(1, 4), routing=MESH, router_weight=0)
    p = rollout.plan(raw(PRE_TRAFFIC, trafficRouting=MESH), canary(0, 0), seen, SETTINGS)
    assert replicas(p) == {1: 4, 2: 1}
    assert p.traffic is not None and p.traffic.canary_weight == 0
    # Its run is due once its pods are Ready, though it has no traffic
    assert not analysis_due(raw(PRE_TRAFFIC, trafficRouting=MESH), p.status, NOW + timedelta(seconds=20))
    assert analysis_due(raw(PRE_TRAFFIC, trafficRouting=MESH), p.status, NOW + timedelta(seconds=20),
                        canary_ready=1)


def test_the_replicas_router_refuses_a_pre_traffic_analysis_step() -> None:
    p = rollout.plan(raw(PRE_TRAFFIC), canary(0, 0), observed(ready(1, 4), revisions=(record(1, "7"),)), SETTINGS)
    assert p.status.phase == Phase.FAILED and "trafficRouting" in (p.status.message or "")


def test_a_pre_traffic_run_counts_only_canary_pods_ready_behind_the_canary_service():
    from modeldeploy.desired.analysis import ready_behind_canary
    from planning import observed, ready, starting

    deployments = (ready(1, 4), ready(2, 2))
    # The Deployment counts 2 Ready, but the -canary Service still holds only the stable pods
    assert ready_behind_canary(observed(*deployments, ready_endpoints={"fraud-canary": {1: 4}}), 2) == 0
    # One canary pod has reached the Service so far
    assert ready_behind_canary(observed(*deployments, ready_endpoints={"fraud-canary": {2: 1, 1: 4}}), 2) == 1
    # The Service is ahead of a Deployment status that has not caught up: the lower of the two
    assert ready_behind_canary(observed(ready(1, 4), starting(2, 2, ready=1),
                                        ready_endpoints={"fraud-canary": {2: 2}}), 2) == 1
    assert ready_behind_canary(observed(*deployments, ready_endpoints={"fraud": {2: 2}}), 2) == 0  # another Service
    assert ready_behind_canary(observed(*deployments, ready_endpoints={"fraud-canary": {2: 2}}), None) == 0


def test_a_rollback_whose_status_write_failed_still_shows_the_run_that_failed_it() -> None:
    # Given the reconcile that rolled revision 2 back recorded it Failed (records are written first) and then
    # failed before writing status: status still shows the canary at 50%, with no runs of it
    from planning import FAILED

    block = {"steps": ONE_STEP, "analysis": ANALYSIS}
    failing = run(Verdict.FAIL, "0.09 is above the maximum 0.05")
    seen = observed(ready(1, 2), ready(2, 2), measurements=failing, measured_revision=2,
                    revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                               record(2, "8", FAILED, "analysis failed", replicas=4, rollout=block)))
    # When the next reconcile is handed the same run again (the failed one gave it back)
    p = rollout.plan(raw(ONE_STEP), canary(0, 50), seen, SETTINGS)
    # Then status shows the rollback and the run it rested on
    assert (p.status.phase, p.status.canary_revision) == (Phase.DEGRADED, None), p.status.message
    a = p.status.analysis
    assert a is not None and (a.revision, a.runs, a.failed, a.last_verdict) == (2, 1, 1, Verdict.FAIL), a
    assert list(a.measurements) == list(failing)


def test_a_run_given_back_after_its_status_was_written_is_not_counted_twice() -> None:
    # Given a run folded into status (its reconcile then failed on an Event, and gave the run back)
    at = NOW - timedelta(seconds=3)
    once = AnalysisStatus(revision=2, runs=1, failed=1, last_run_at=rollout.timestamp(at), last_verdict=Verdict.FAIL,
                          measurements=list(run(Verdict.FAIL)))
    seen = world(ONE_STEP, ready(1, 2), ready(2, 2), measurements=run(Verdict.FAIL), measured_revision=2,
                 measured_at=at)
    # When the next reconcile is handed it again
    p = rollout.plan(raw(ONE_STEP, analysis={**ANALYSIS, "failureLimit": 1}), canary(1, 50, once), seen, SETTINGS)
    # Then it still counts once: one failure is within failureLimit 1, so the canary is not rolled back
    a = p.status.analysis
    assert a is not None and (a.runs, a.failed) == (1, 1), a
    assert p.status.canary_revision == 2, p.status.message
