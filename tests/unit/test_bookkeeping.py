"""Bookkeeping that survives what users and restores do: which revision is kept warm, failures that stay on
record, history rebuilt from the Deployments, crash loops counted in a recent window."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from modeldeploy.api.status import Phase
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.history import Outcome
from modeldeploy.reconcile.observe import deployments as deployment_facts
from planning import (
    FAILED,
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    SUPERSEDED,
    after,
    deleted,
    observed,
    outcomes,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)


def test_the_revision_that_was_serving_is_kept_warm_not_the_highest_numbered() -> None:
    # Given revision 1 serves again after a rollback from 3 (3 kept at 0), and revision 4 now rolls out
    seen = observed(ready(1, 3), starting(3, replicas=0, scale_down_at=after(-600)), ready(4, 3),
                    revisions=(record(1, "7", STABLE), record(3, "9", SUPERSEDED), record(4, "10", PROGRESSING)))
    p = rollout.plan(spec("10"), status(Phase.PROGRESSING, stable=1, canary=4, started_ago=20), seen, SETTINGS)
    # When revision 4 is promoted
    assert p.status.stable_revision == 4, p.status.message
    # Then revision 1, which was serving, keeps its pods for the scale-down delay; 3 is the one let go
    assert replicas(p)[1] == 3
    assert ("Deployment", "fraud-r1") not in deleted(p)


def test_rolling_back_to_a_failed_revision_says_so() -> None:
    # Given revision 2 failed and revision 3 is stable
    seen = observed(ready(3), starting(2, replicas=0),
                    revisions=(record(1, "7", SUPERSEDED), record(2, "8", FAILED, reason="crash-looping"),
                               record(3, "9", STABLE)), annotations={requests.ROLLBACK: "2@t1"})
    p = rollout.plan(spec("9"), status(Phase.HEALTHY, stable=3), seen, SETTINGS)
    # Then the rollback goes ahead as asked, and its Event says that revision failed before, and why
    said = [e for e in p.events if e.reason == "RollbackRequested"]
    assert said and "failed before" in said[0].message and "crash-looping" in said[0].message, p.events
    # And the history does not claim it served: it is a new attempt, not "Superseded"
    assert outcomes(p).get(2) != Outcome.SUPERSEDED.value


def test_lost_history_is_rebuilt_from_the_deployments_and_nothing_serving_is_deleted() -> None:
    # Given the ControllerRevisions were deleted (a cleanup, a restore) while revision 1 serves
    r1 = record(1, "7", STABLE)
    seen = observed(ready(1, carried=replace(r1, outcome="")), revisions=())
    p = rollout.plan(spec("7"), status(Phase.HEALTHY, stable=1), seen, SETTINGS)
    # Then revision 1 is re-adopted under its own number: not deleted, not restarted, history written again
    assert replicas(p) == {1: 3} and not deleted(p)
    assert p.status.phase == Phase.HEALTHY and p.status.stable_revision == 1
    assert outcomes(p) == {1: Outcome.STABLE.value}


def test_a_record_named_in_status_but_gone_does_not_crash() -> None:
    seen = observed(revisions=())
    p = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=5, canary=6, started_ago=5), seen, SETTINGS)
    assert p.status.phase in (Phase.PENDING, Phase.PROGRESSING), p.status.message


def pod(name: str, restarts: int, finished: str) -> dict:
    return {"metadata": {"name": name, "labels": {"modeldeploy.dev/revision": "2"}},
            "status": {"containerStatuses": [{"name": "server", "restartCount": restarts, "lastState": {
                "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}}]}}


DEPLOYMENT = {"metadata": {"name": "fraud-r2", "labels": {"modeldeploy.dev/revision": "2"}, "generation": 1},
              "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}


def test_restarts_long_ago_do_not_count_as_a_crash_loop() -> None:
    old = (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    facts = deployment_facts([DEPLOYMENT], [pod("fraud-r2-a", 7, old)], now=NOW)
    assert facts[2].crash_loop(SETTINGS.crash_restart_limit) is None


def test_recent_restarts_count_as_a_crash_loop() -> None:
    recent = (NOW - timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    facts = deployment_facts([DEPLOYMENT], [pod("fraud-r2-a", 7, recent)], now=NOW)
    assert "restarted 7 times" in (facts[2].crash_loop(SETTINGS.crash_restart_limit) or "")




MESH_A = {"gatewayAPI": {"httpRoute": "route-a"}}


def test_a_route_no_longer_named_is_released() -> None:
    # Given the operator manages weights on route-a
    first = rollout.plan(spec("7", rollout={"steps": [{"setWeight": 50}], "trafficRouting": MESH_A}),
                         status(Phase.HEALTHY, stable=1), observed(ready(1), revisions=(record(
                             1, "7", STABLE, rollout={"steps": [{"setWeight": 50}], "trafficRouting": MESH_A}),),
                             router_weight=0), SETTINGS)
    assert first.status.route is not None and first.status.route.config == {"httpRoute": "route-a"}
    assert first.release is None
    # When the spec names route-b, or no mesh at all
    for routing, now in (({"gatewayAPI": {"httpRoute": "route-b"}}, {"httpRoute": "route-b"}), (None, None)):
        block = {"steps": [{"setWeight": 50}], **({"trafficRouting": routing} if routing else {})}
        p = rollout.plan(spec("7", rollout=block), first.status, observed(ready(1), revisions=(record(
            1, "7", STABLE, rollout=block),), router_weight=0), SETTINGS)
        # Then route-a is released (its canary backend taken off), and status names what is managed now
        assert p.release is not None and p.release.config == {"httpRoute": "route-a"}
        assert (p.status.route.config if p.status.route else None) == now


def test_the_last_superseded_is_kept_even_when_an_older_one_has_a_later_scale_down_time() -> None:
    # Given revision 1 was superseded 4 s ago with a 30 s delay, and revision 2 just now with a 2 s delay
    steps = {"steps": [{"setWeight": 50}], "scaleDownDelaySeconds": 2}
    r1 = starting(1, replicas=4, ready=4, scale_down_at=after(26), superseded_at=after(-4))
    r2 = ready(2, 4, scale_down_at=after(2), superseded_at=NOW)
    seen = observed(r1, r2, ready(3, 4), revisions=(record(1, "1", SUPERSEDED, replicas=4),
                                                    record(2, "2", SUPERSEDED, replicas=4),
                                                    record(3, "3", STABLE, replicas=4, rollout=steps)))
    p = rollout.plan(spec("3", replicas=4, rollout=steps), status(Phase.HEALTHY, stable=3), seen, SETTINGS)
    # Then revision 2, which served last, is the one kept
    assert 2 in replicas(p) and ("Deployment", "fraud-r2") not in deleted(p), (replicas(p), deleted(p))
