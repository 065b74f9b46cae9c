"""The rollout table's moves one at a time, on what each leaves behind: the history, the pods, the Services and
route weights, the state in status that the next pass reads back (docs/rollouts.md, "States and transitions")."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from modeldeploy.api import names
from modeldeploy.api.status import (
    AnalysisStatus,
    ManagedRoute,
    Measurement,
    ModelDeploymentStatus,
    Phase,
    RollbackOverride,
    Verdict,
)
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.actions import Ref
from modeldeploy.desired.validity import ready_reason
from planning import (
    FAILED,
    HEALTHY_1,
    NOW,
    PROGRESSING,
    R1,
    STABLE,
    SUPERSEDED,
    after,
    annotations,
    manifests,
    observed,
    outcomes,
    plan,
    ready,
    reasons,
    record,
    replicas,
    rolling,
    spec,
    starting,
    status,
)

MESH = {"gatewayAPI": {"httpRoute": "fraud-route"}}
CHECK = {"interval": "10s", "failureLimit": 0, "metrics": [
    {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.05}}]}


def canary_spec(version: str, steps: list[dict[str, Any]], **block: Any) -> dict[str, Any]:
    return spec(version, replicas=4, rollout={"steps": steps, **block})


def canary_records(steps: list[dict[str, Any]], **block: Any) -> tuple[Any, ...]:
    b = {"steps": steps, **block}
    return record(1, "7", STABLE, replicas=4, rollout=b), record(2, "8", PROGRESSING, replicas=4, rollout=b)


def at(index: int, weight: int, ago: float = 10, **more: Any) -> ModelDeploymentStatus:
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=ago, reason="Canary", step_weight=weight,
                  canary_weight=weight, current_step_index=index,
                  step_started_at=rollout.timestamp(NOW - timedelta(seconds=ago)), **more)


def run(verdict: Verdict, value: float) -> tuple[Measurement, ...]:
    return (Measurement(metric="errors", verdict=verdict, value=value, message=f"errors={value}"),)


def selects(p: Any, service: str) -> str | None:
    return manifests(p, "Service")[service]["spec"]["selector"].get(names.LABEL_REVISION)


# -- the history ---------------------------------------------------------------------------------------------
def test_a_lost_history_is_rebuilt_from_what_the_deployments_carry() -> None:
    r1, r2, r3 = record(1, "7", SUPERSEDED), record(2, "8", STABLE), record(3, "9", PROGRESSING)
    seen = observed(ready(1, 0, carried=r1, superseded_at=after(-5), scale_down_at=after(20)), ready(2, carried=r2),
                    starting(3, 3, 1, carried=r3))
    p = plan(spec("9"), status(Phase.PROGRESSING, stable=2, canary=3, started_ago=5, reason="RollingOut"), seen)
    assert outcomes(p) == {1: "Superseded", 2: "Stable", 3: "Progressing"}


def test_a_recorded_outcome_is_never_overwritten_by_what_a_deployment_carries() -> None:
    failed = record(2, "8", FAILED, reason="crashed")
    seen = observed(ready(1), ready(2, 0, carried=replace(failed, outcome="")), revisions=(R1, failed))
    p = plan(spec("7"), status(Phase.DEGRADED, stable=1, reason="RolledBack"), seen)
    assert outcomes(p) == {2: "Failed"}  # released (the spec moved on), still Failed


def test_a_lost_status_finds_the_serving_revision_in_the_history() -> None:
    p = plan(spec("7"), ModelDeploymentStatus(), observed(ready(1), revisions=(R1,)))
    assert (p.status.phase, p.status.stable_revision, replicas(p)) == (Phase.HEALTHY, 1, {1: 3})
    # Lost in the middle of a rollout: revision 1 still serves, with all its pods, while 2 rolls out beside it
    mid = plan(spec("8"), ModelDeploymentStatus(), observed(ready(1), starting(2, 3, 1), revisions=(
        R1, record(2, "8", PROGRESSING))))
    assert (mid.status.stable_revision, mid.status.canary_revision, replicas(mid)) == (1, 2, {1: 3, 2: 3})


def test_a_promoted_revision_carries_no_reason() -> None:
    p = plan(spec("8"), rolling(20), observed(ready(1), ready(2), revisions=(R1, record(2, "8", PROGRESSING))))
    crs = {m["revision"]: m["metadata"]["annotations"] for m in manifests(p, "ControllerRevision").values()}
    assert crs[2][names.ANN_OUTCOME] == "Stable" and names.ANN_OUTCOME_REASON not in crs[2]
    assert names.ANN_RELEASED not in crs[2] and names.ANN_RELEASED not in crs[1]
    assert crs[1][names.ANN_OUTCOME] == "Superseded" and names.ANN_OUTCOME_REASON not in crs[1]


def test_a_failure_keeps_its_reason_when_the_spec_moves_on() -> None:
    failed = record(2, "8", FAILED, reason="crashed")
    p = plan(spec("9"), status(Phase.DEGRADED, stable=1, reason="RolledBack"),
             observed(ready(1), revisions=(R1, failed)))
    cr = next(m for m in manifests(p, "ControllerRevision").values() if m["revision"] == 2)
    assert cr["metadata"]["annotations"][names.ANN_OUTCOME_REASON] == "crashed"
    assert cr["metadata"]["annotations"][names.ANN_RELEASED] == "true"


# -- requests ------------------------------------------------------------------------------------------------
def test_carried_out_requests_stay_recorded_across_passes() -> None:
    first = plan(spec("7"), HEALTHY_1, observed(ready(1), revisions=(R1,), annotations={requests.PROMOTE: "t1"}))
    again = plan(spec("7"), first.status, observed(ready(1), revisions=(R1,), annotations={requests.PROMOTE: "t1"}))
    assert again.status.handled_requests == {requests.PROMOTE: "t1"} and "PromoteIgnored" not in reasons(again)


def test_a_promote_with_no_canary_step_is_spent_while_paused_and_during_a_plain_rollout() -> None:
    paused = plan(spec("8", paused=True), HEALTHY_1,
                  observed(ready(1), revisions=(R1,), annotations={requests.PROMOTE: "t1"}))
    assert "PromoteIgnored" in reasons(paused) and paused.status.handled_requests[requests.PROMOTE] == "t1"
    plain = plan(spec("8"), rolling(20), observed(ready(1), starting(2, 3, 1), revisions=(
        R1, record(2, "8", PROGRESSING)), annotations={requests.PROMOTE_FULL: "t2"}))
    assert "PromoteIgnored" in reasons(plain) and plain.status.handled_requests[requests.PROMOTE_FULL] == "t2"


def test_a_rollback_override_ends_when_the_spec_changes() -> None:
    revs = (record(1, "7", STABLE), record(2, "8", SUPERSEDED))
    old = status(Phase.HEALTHY, stable=1, rollback=RollbackOverride(revision=1, spec_hash=revs[1].hash))
    # The spec still asks for revision 2's template: the override holds
    held = plan(spec("8"), old, observed(ready(1), ready(2, 0), revisions=revs))
    assert (held.status.stable_revision, held.status.rollback) == (1, old.rollback)
    # The spec moved on (model 9): the override is over, and 9 rolls out
    moved = plan(spec("9"), old, observed(ready(1), ready(2, 0), revisions=revs))
    assert moved.status.rollback is None and moved.status.canary_revision == 3


def test_rolling_back_to_a_failed_revision_deploys_it_again() -> None:
    failed = (R1, record(2, "8", FAILED, reason="too slow"))
    p = plan(spec("7"), status(Phase.DEGRADED, stable=1, reason="RolledBack"),
             observed(ready(1), revisions=failed, annotations={requests.ROLLBACK: "2@t1"}))
    assert (p.status.canary_revision, replicas(p)[2], outcomes(p)[2]) == (2, 3, "Progressing"), p.status.message


def test_rolling_back_to_a_revision_that_served_marks_nothing_released() -> None:
    revs = (record(1, "7", SUPERSEDED), record(2, "8"))
    p = plan(spec("8"), status(Phase.HEALTHY, stable=2), observed(ready(2), ready(1, 0), revisions=revs,
                                                                   annotations={requests.ROLLBACK: "1@t1"}))
    crs = {m["revision"]: m["metadata"]["annotations"] for m in manifests(p, "ControllerRevision").values()}
    assert all(names.ANN_RELEASED not in ann for ann in crs.values()), crs


def test_an_abandoned_rollout_says_why_in_the_history() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    p = plan(spec("9"), rolling(20), observed(ready(1), starting(2, 3, 1), revisions=revs))
    cr = next(m for m in manifests(p, "ControllerRevision").values() if m["revision"] == 2)
    assert cr["metadata"]["annotations"][names.ANN_OUTCOME] == "Aborted"
    assert cr["metadata"]["annotations"][names.ANN_OUTCOME_REASON] == "the spec moved on before it was ready"


# -- holds -----------------------------------------------------------------------------------------------------
def test_a_held_rollout_keeps_its_pods_and_starts_none() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    notes = {requests.PAUSED: "true"}
    p = plan(spec("8"), rolling(20), observed(ready(1), starting(2, 3, 2), revisions=revs, annotations=notes))
    assert replicas(p) == {1: 3, 2: 3} and names.ANN_SCALE_DOWN_AT not in annotations(p, 2)
    assert ready_reason(p.status) == "Paused" and p.status.rollout_started_at is None
    # Paused before its Deployment exists: it gets none of its pods
    early = plan(spec("8"), rolling(1), observed(ready(1), revisions=revs, annotations=notes))
    assert replicas(early) == {1: 3, 2: 0}


def test_an_abort_goes_through_a_pause() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    notes = {requests.PAUSED: "true", requests.ABORT: "t1"}
    p = plan(spec("8"), rolling(20), observed(ready(1), starting(2, 3, 1), revisions=revs, annotations=notes))
    assert (ready_reason(p.status), p.status.canary_revision, replicas(p), outcomes(p)[2]) == (
        "Aborted", None, {1: 3, 2: 0}, "Aborted")


def test_without_auto_rollback_a_failed_plain_rollout_stays_held_pass_after_pass() -> None:
    off = {"autoRollback": False}
    revs = (record(1, "7", rollout=off), record(2, "8", PROGRESSING, rollout=off))
    seen = observed(ready(1), starting(2, 3, 1), revisions=revs)
    first = plan(spec("8", rollout=off), rolling(700), seen)
    assert (first.status.phase, ready_reason(first.status)) == (Phase.DEGRADED, "RolloutStuck")
    second = plan(spec("8", rollout=off), first.status, replace(seen, now=after(5)))
    assert (second.status.phase, ready_reason(second.status), replicas(second)) == (
        Phase.DEGRADED, "RolloutStuck", {1: 3, 2: 3})


def test_without_auto_rollback_a_failed_canary_keeps_its_step_weight_route_and_evidence() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}]
    block = {"autoRollback": False, "trafficRouting": MESH, "analysis": CHECK}
    seen = observed(ready(1, 2), ready(2, 2), revisions=canary_records(steps, **block), router_weight=50,
                    measurements=run(Verdict.FAIL, 0.3), measured_revision=2)
    old = at(1, 50, ago=30, analysis=AnalysisStatus(revision=2, runs=1, passed=1))
    p = plan(canary_spec("8", steps, **block), old, seen)
    st = p.status
    assert (st.phase, ready_reason(st), st.canary_revision, st.current_step_index, st.step_weight) == (
        Phase.DEGRADED, "RolloutStuck", 2, 1, 50)
    assert st.message.startswith("revision 2 (model 8) at 50%: analysis failed 1 of 2 runs"), st.message
    assert p.traffic is not None and p.traffic.canary_weight == 50
    assert st.rollout_started_at == old.rollout_started_at and st.step_started_at == old.step_started_at
    assert st.analysis is not None and (st.analysis.runs, st.analysis.failed) == (2, 1)
    assert replicas(p) == {1: 2, 2: 2}


# -- the first revision ----------------------------------------------------------------------------------------
def test_a_first_revision_keeps_its_clock_and_its_pods_until_stuck() -> None:
    revs = (record(1, "7", PROGRESSING),)
    going = plan(spec("7"), status(), observed(starting(1, 3, 1), revisions=revs))
    assert going.status.rollout_started_at == rollout.timestamp(NOW)
    assert going.requeue_after == 600.5  # woken at its deadline
    later = plan(spec("7"), going.status, observed(starting(1, 3, 1), revisions=revs, now=after(599)))
    assert later.status.phase == Phase.PENDING and later.requeue_after == 1.5
    stuck = plan(spec("7"), later.status, observed(starting(1, 3, 1), revisions=revs, now=after(600)))
    assert (stuck.status.phase, replicas(stuck)) == (Phase.DEGRADED, {1: 3})
    assert stuck.status.rollout_started_at == rollout.timestamp(NOW)


# -- plain rollouts ----------------------------------------------------------------------------------------------
def test_a_plain_rollout_superseded_by_another_counts_its_own_deadline() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    p = plan(spec("9"), rolling(590), observed(ready(1), starting(2, 3, 1), revisions=revs, now=NOW))
    assert p.status.canary_revision == 3 and p.status.rollout_started_at == rollout.timestamp(NOW)
    later = plan(spec("9"), p.status, observed(ready(1), starting(2, 3, 1), starting(3, 3, 1), revisions=(
        *revs, record(3, "9", PROGRESSING)), now=after(30)))
    assert later.status.phase == Phase.PROGRESSING and later.status.canary_revision == 3, later.status.message


def test_a_deadline_is_reached_at_the_second() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    assert plan(spec("8"), rolling(599), observed(ready(1), starting(2, 3, 1), revisions=revs)).status.phase == \
        Phase.PROGRESSING
    assert plan(spec("8"), rolling(600), observed(ready(1), starting(2, 3, 1), revisions=revs)).status.phase == \
        Phase.DEGRADED


def test_a_rollback_keeps_canary_pods_while_stable_is_short_and_looks_again_soon() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    crashing = {"max_restarts": 5, "crashing_pod": "fraud-r2-x"}
    short = plan(spec("8"), rolling(20), observed(starting(1, 3, 1), ready(2, **crashing), revisions=revs))
    assert ready_reason(short.status) == "RolledBack"
    assert replicas(short) == {1: 3, 2: 2} and short.requeue_after == 1.5
    whole = plan(spec("8"), rolling(20), observed(ready(1), ready(2, **crashing), revisions=revs))
    assert replicas(whole) == {1: 3, 2: 0} and whole.requeue_after is None


def test_a_stopped_revision_drains_as_stable_recovers() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    p = plan(spec("8"), rolling(20), observed(starting(1, 3, 2), ready(2), revisions=revs,
                                              annotations={requests.ABORT: "t1"}))
    assert (ready_reason(p.status), replicas(p)) == ("Aborted", {1: 3, 2: 1})
    assert p.requeue_after == 1.5


def test_a_promotion_does_not_bring_back_an_old_revision_whose_deployment_is_gone() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    p = plan(spec("8"), rolling(20), observed(ready(2), revisions=revs))
    assert p.status.stable_revision == 2 and replicas(p) == {2: 3}


def test_a_revert_to_a_revision_that_served_skips_the_canary_steps() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    revs = (record(1, "7", SUPERSEDED, replicas=4, rollout={"steps": steps}),
            record(2, "8", STABLE, replicas=4, rollout={"steps": steps}))
    p = plan(canary_spec("7", steps), status(Phase.HEALTHY, stable=2), observed(ready(2, 4), ready(1, 0),
                                                                                revisions=revs))
    assert (ready_reason(p.status), p.status.current_step_index, replicas(p)) == ("RollingOut", None, {1: 4, 2: 4})


# -- what leaves -------------------------------------------------------------------------------------------------
def test_leaving_canaries_drain_the_one_with_most_ready_pods_first_then_the_newest() -> None:
    revs = (R1, record(2, "8", FAILED), record(3, "9", FAILED), record(4, "10", PROGRESSING))
    old = status(Phase.PROGRESSING, stable=1, canary=4, started_ago=5, reason="RollingOut")
    # Stable is one pod short; 2 has 2 Ready pods, 3 has 1: 2 stays (with 1 pod), 3 goes
    p = plan(spec("10"), old, observed(starting(1, 3, 2), ready(2, 2), starting(3, 2, 1), starting(4, 3, 0),
                                       revisions=revs))
    assert replicas(p).get(2) == 1 and 3 not in replicas(p)
    # A tie: the newest stays
    tie = plan(spec("10"), old, observed(starting(1, 3, 2), ready(2, 2), ready(3, 2), starting(4, 3, 0),
                                         revisions=revs))
    assert replicas(tie).get(3) == 1 and 2 not in replicas(tie)


def test_healthy_waits_for_every_leaving_revision() -> None:
    revs = (record(1, "6", SUPERSEDED), record(2, "7", SUPERSEDED), record(3, "8", SUPERSEDED), record(4, "9"))
    seen = observed(ready(4, settled=False), ready(3, 0, superseded_at=after(-100), scale_down_at=after(-70)),
                    ready(2, 0, settled=False), ready(1, 0, settled=False), revisions=revs)
    p = plan(spec("9"), status(Phase.HEALTHY, stable=4), seen)
    assert p.status.message == ("revision 4 (model 9): 3/3 pods ready; revision 1 scaling to 0 pods, "
                                "revision 2 scaling to 0 pods, revision 4 scaling to 3 pods")
    assert [r for r in p.delete if r.kind == "Deployment"] == [
        Ref("apps/v1", "Deployment", "fraud-r2"), Ref("apps/v1", "Deployment", "fraud-r1")]


def test_history_beyond_the_limit_goes_oldest_first_with_its_api_version() -> None:
    revs = (*(record(n, str(n), SUPERSEDED) for n in range(1, 6)), record(6, "6"))
    p = plan(spec("6", revisionHistoryLimit=3), status(Phase.HEALTHY, stable=6), observed(ready(6), revisions=revs))
    gone = [r for r in p.delete if r.kind == "ControllerRevision"]
    assert gone == [Ref("apps/v1", "ControllerRevision", f"fraud-{revs[n].hash}") for n in (0, 1, 2)]


# -- Services, routes and status ------------------------------------------------------------------------------------
def test_the_canary_service_lives_only_while_a_canary_runs_without_a_mesh() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    during = plan(canary_spec("8", steps), at(1, 25), observed(ready(1, 3), ready(2, 1),
                                                               revisions=canary_records(steps)))
    assert (selects(during, "fraud-canary"), selects(during, "fraud-stable"), selects(during, "fraud")) == (
        "2", "1", None)
    # Between rollouts nothing routes to it: it is deleted, and its EndpointSlice with it
    calm = plan(canary_spec("7", steps), status(Phase.HEALTHY, stable=1), observed(
        ready(1, 4), revisions=(canary_records(steps)[0],), services=frozenset({"fraud", "fraud-stable",
                                                                                 "fraud-canary"})))
    assert "fraud-canary" not in manifests(calm, "Service")
    assert Ref("v1", "Service", "fraud-canary") in calm.delete
    gone = plan(spec("7"), HEALTHY_1, observed(ready(1), revisions=(R1,), services=frozenset({"fraud-canary"})))
    assert Ref("v1", "Service", "fraud-canary") in gone.delete


def test_a_mesh_route_backend_rests_on_stable_between_rollouts() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    block = {"trafficRouting": {"gatewayAPI": {"httpRoute": "fraud-route"}}}
    calm = plan(canary_spec("7", steps, **block), status(Phase.HEALTHY, stable=1), observed(
        ready(1, 4), revisions=(canary_records(steps, **block)[0],)))
    assert selects(calm, "fraud-canary") == "1"  # the route names it: it must never dangle
    assert Ref("v1", "Service", "fraud-canary") not in calm.delete


def test_a_mesh_route_carries_the_step_weight_and_only_during_a_canary() -> None:
    steps = [{"setWeight": 30}, {"pause": {}}]
    block = {"trafficRouting": {"gatewayAPI": {"httpRoute": "fraud-route", "namespace": "risk"}}}
    p = plan(canary_spec("8", steps, **block), at(1, 30), observed(ready(1, 4), ready(2, 2), router_weight=30,
                                                                   revisions=canary_records(steps, **block)))
    assert p.traffic == rollout.Traffic("gatewayAPI", {"httpRoute": "fraud-route", "namespace": "risk"}, "fraud-stable",
                                        "fraud-canary", 30, comparator_service="fraud-mirror")
    assert p.status.canary_weight == 30 and p.status.route is not None
    after_it = plan(canary_spec("8", steps, **block), status(Phase.HEALTHY, stable=2), observed(
        ready(2, 4), revisions=canary_records(steps, **block)[1:]))
    assert after_it.traffic is not None and after_it.traffic.canary_weight == 0


def test_an_explicit_replicas_router_sets_no_route_weights() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    block = {"trafficRouting": {"replicas": {}}}
    p = plan(canary_spec("8", steps, **block), at(1, 25), observed(ready(1, 3), ready(2, 1),
                                                                   revisions=canary_records(steps, **block)))
    assert p.traffic is None and p.status.route is None and p.status.canary_weight == 25


def test_a_route_no_longer_named_is_released_with_its_own_config() -> None:
    old = status(Phase.HEALTHY, stable=1, route=ManagedRoute(router="istio", config={"virtualService": "vs"}))
    p = plan(spec("7"), old, observed(ready(1), revisions=(R1,)))
    assert p.release == rollout.Traffic("istio", {"virtualService": "vs"}, "fraud-stable", "fraud-canary", 0,
                                        comparator_service="fraud-mirror")
    assert p.traffic is None and p.status.route is None


def test_status_keeps_the_last_rollouts_evidence_and_stamps_transitions() -> None:
    evidence = AnalysisStatus(revision=2, runs=2, passed=2)
    p = plan(spec("8"), status(Phase.HEALTHY, stable=2, analysis=evidence), observed(ready(2), revisions=(
        record(1, "7", SUPERSEDED), record(2, "8"))))
    assert p.status.analysis == evidence
    empty = plan(spec("8"), status(Phase.HEALTHY, stable=2, analysis=AnalysisStatus(revision=2)), observed(
        ready(2), revisions=(record(1, "7", SUPERSEDED), record(2, "8"))))
    assert empty.status.analysis is None
    moved = plan(spec("8"), rolling(20), observed(ready(1), ready(2), revisions=(R1, record(2, "8", PROGRESSING))))
    ready_cond = next(c for c in moved.status.conditions if c.type == "Ready")
    assert ready_cond.last_transition_time == rollout.timestamp(NOW)


# -- canary state ---------------------------------------------------------------------------------------------------
def test_a_new_canary_on_a_mesh_starts_at_weight_zero_whatever_the_last_one_had() -> None:
    steps = [{"analysis": {}}, {"setWeight": 50}]
    block = {"trafficRouting": MESH, "analysis": CHECK}
    revs = (*canary_records(steps, **block),)
    p = plan(canary_spec("9", steps, **block), at(1, 50), observed(ready(1, 2), ready(2, 2), revisions=revs,
                                                                   router_weight=50))
    assert p.status.canary_revision == 3 and p.status.step_weight == 0
    assert p.traffic is not None and p.traffic.canary_weight == 0


def test_a_retried_revision_starts_with_a_clean_analysis() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}]
    old = status(Phase.DEGRADED, stable=1, reason="RolledBack",
                 analysis=AnalysisStatus(revision=2, runs=3, failed=3, last_verdict=Verdict.FAIL))
    b = {"steps": steps, "analysis": CHECK}
    revs = (record(1, "7", STABLE, replicas=4, rollout=b),
            replace(record(2, "8", FAILED, reason="failed", replicas=4, rollout=b), released=True))
    p = plan(canary_spec("8", steps, analysis=CHECK), old, observed(ready(1, 4), revisions=revs))
    assert p.status.phase == Phase.PROGRESSING and p.status.canary_revision == 2, p.status.message
    assert p.status.analysis is None  # no runs yet of this attempt


def test_an_analysis_step_and_a_missing_pass_say_what_they_wait_for() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}]
    seen = observed(ready(1, 2), ready(2, 2), revisions=canary_records(steps, analysis=CHECK))
    p = plan(canary_spec("8", steps, analysis=CHECK), at(1, 50), seen)
    assert p.status.message == "revision 2 (model 8) at 50% (step 2/3: waiting for an analysis run to pass)"
    last = plan(canary_spec("8", [{"setWeight": 50}], analysis=CHECK), at(1, 50),
                observed(ready(1, 2), ready(2, 2), revisions=canary_records([{"setWeight": 50}], analysis=CHECK)))
    assert last.status.message == ("revision 2 (model 8) at 50% (final: waiting for a passing analysis run before "
                                   "promotion (none has passed yet))")


def test_a_failure_counted_earlier_points_at_status_when_the_last_run_did_not_fail() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    block = {"analysis": {**CHECK, "failureLimit": 1}}
    old = at(1, 50, analysis=AnalysisStatus(revision=2, runs=3, failed=2, inconclusive=1,
                                            last_verdict=Verdict.INCONCLUSIVE))
    p = plan(canary_spec("8", steps, **block), old, observed(ready(1, 2), ready(2, 2),
                                                             revisions=canary_records(steps, **block)))
    assert p.events[0].message == ("revision 2 (model 8) rolled back: analysis failed 2 of 3 runs (failureLimit 1): "
                                   "see status.analysis; revision 1 serves 100%")


def test_promotion_and_rollback_show_the_run_that_decided() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}]
    seen = observed(ready(1, 2), ready(2, 4), revisions=canary_records(steps, analysis=CHECK),
                    measurements=run(Verdict.PASS, 0.01), measured_revision=2)
    promoted = plan(canary_spec("8", steps, analysis=CHECK), at(1, 50, ago=15), seen)
    assert promoted.status.stable_revision == 2
    assert promoted.status.message == "revision 2 (model 8): 4/4 pods ready"
    assert promoted.status.analysis is not None and promoted.status.analysis.passed == 1
    failing = replace(seen, measurements=run(Verdict.FAIL, 0.4))
    back = plan(canary_spec("8", steps, analysis=CHECK), at(1, 50, ago=15), failing)
    assert ready_reason(back.status) == "RolledBack"
    assert back.status.analysis is not None and back.status.analysis.failed == 1


def test_a_run_is_dated_when_it_began_so_a_run_older_than_the_step_does_not_pass_it() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}, {"pause": {}}]
    # The analysis step began 5 s ago; a passing run that began 8 s ago (before it) finishes now
    seen = observed(ready(1, 2), ready(2, 2), revisions=canary_records(steps, analysis=CHECK),
                    measurements=run(Verdict.PASS, 0.01), measured_revision=2, measured_at=after(-8))
    old = at(1, 50, ago=5)
    p = plan(canary_spec("8", steps, analysis=CHECK), old, seen)
    assert p.status.current_step_index == 1 and p.status.analysis is not None
    assert p.status.analysis.last_run_at == rollout.timestamp(after(-8))
    # The same run begun after the step did pass it
    later = plan(canary_spec("8", steps, analysis=CHECK), old, replace(seen, measured_at=after(-2)))
    assert later.status.current_step_index == 2
