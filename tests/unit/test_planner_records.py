"""What the planner writes down and says, pinned by the mutants that survived: the rollback it keeps serving,
old revisions' own pod templates, events and their types, status fields outside a canary, drain order,
re-adopted outcomes, promote requests held for a resume, scale-down times, the PDB floor."""

from __future__ import annotations

from modeldeploy.api import names
from modeldeploy.api.status import Phase, RollbackOverride
from modeldeploy.desired import requests, rollout
from planning import (
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    SUPERSEDED,
    after,
    annotations,
    manifests,
    observed,
    outcomes,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)


def test_a_rollback_keeps_serving_its_revision_on_later_passes() -> None:
    seen = observed(ready(1), ready(2), revisions=(record(1, "7", SUPERSEDED), record(2, "8", STABLE)),
                    annotations={requests.ROLLBACK: "1@t1"})
    first = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=2), seen, SETTINGS)
    assert first.status.rollback is not None and first.status.rollback.revision == 1
    later = rollout.plan(spec("8"), first.status, seen, SETTINGS)
    assert later.status.rollback == first.status.rollback
    assert later.status.stable_revision == 1 or later.status.canary_revision == 1, later.status.message


def test_an_old_revision_keeps_its_own_pod_template() -> None:
    labelled = {"metadata": {"labels": {"team": "risk"}}}
    r1 = record(1, "7", STABLE, template=labelled)
    seen = observed(ready(1), revisions=(r1,))
    p = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=1), seen, SETTINGS)
    pods = manifests(p, "Deployment")["fraud-r1"]["spec"]["template"]["metadata"]["labels"]
    assert pods.get("team") == "risk" and "team" not in \
        manifests(p, "Deployment")["fraud-r2"]["spec"]["template"]["metadata"]["labels"]


def test_events_are_warnings_only_for_trouble() -> None:
    bad = rollout.plan(spec("8"), status(Phase.PROGRESSING, stable=1, canary=2, started_ago=601),
                       observed(ready(1), starting(2), revisions=(record(1, "7"), record(2, "8", PROGRESSING))),
                       SETTINGS)
    assert {(e.type, e.reason) for e in bad.events} == {("Warning", "RolledBack")}
    good = rollout.plan(spec("7"), status(Phase.PENDING), observed(ready(1), revisions=(record(1, "7", PROGRESSING),)),
                        SETTINGS)
    assert [(e.type, e.reason) for e in good.events] == [("Normal", "Healthy")]
    assert good.events[0].message == good.status.message


def test_a_new_reason_in_the_same_phase_is_an_event() -> None:
    old = status(Phase.PROGRESSING, stable=1, reason="Scaling")
    p = rollout.plan(spec("8"), old, observed(ready(1), revisions=(record(1, "7"),)), SETTINGS)
    assert "RollingOut" in [e.reason for e in p.events], p.events


def test_outside_a_canary_status_has_no_step_fields() -> None:
    p = rollout.plan(spec("7"), status(Phase.HEALTHY, stable=1), observed(ready(1), revisions=(record(1, "7"),)),
                     SETTINGS)
    st = p.status
    assert (st.canary_weight, st.step_weight, st.current_step_index, st.step_started_at, st.rollback) == \
        (None, None, None, None, None)


def test_the_revision_with_more_ready_pods_drains_last() -> None:
    steps = {"steps": [{"setWeight": 50}, {"pause": {}}]}
    # Stable (1) is short 3 pods; two superseded canaries still run: 2 with 1 Ready pod, 3 with 2
    seen = observed(starting(1, replicas=4, ready=1), starting(2, replicas=2, ready=1), ready(3, 2),
                    revisions=(record(1, "7", STABLE, replicas=4, rollout=steps),
                               record(2, "8", PROGRESSING, replicas=4, rollout=steps),
                               record(3, "9", PROGRESSING, replicas=4, rollout=steps)))
    old = status(Phase.PAUSED, stable=1, canary=3, reason="Paused", canary_weight=50, step_weight=50,
                 current_step_index=1)
    p = rollout.plan(spec("7", replicas=4, rollout=steps), old, seen, SETTINGS)
    # Then what is kept covers the 3 missing Ready pods, taken from the revision with more Ready pods first
    assert replicas(p) == {1: 4, 2: 1, 3: 2}, replicas(p)


def test_a_canary_deployment_found_without_history_is_adopted_as_in_flight() -> None:
    r1, r2 = record(1, "7", STABLE), record(2, "8", PROGRESSING)
    from dataclasses import replace
    seen = observed(ready(1, carried=replace(r1, outcome="")), starting(2, ready=1, carried=replace(r2, outcome="")))
    p = rollout.plan(spec("8"), status(Phase.PROGRESSING, stable=1, canary=2, started_ago=10), seen, SETTINGS)
    assert outcomes(p) == {1: "Stable", 2: "Progressing"}


def test_a_promote_given_while_held_waits_for_the_resume() -> None:
    steps = {"steps": [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]}
    seen = observed(ready(1, 2), ready(2, 2), revisions=(record(1, "7", STABLE, replicas=4, rollout=steps),
                                                         record(2, "8", PROGRESSING, replicas=4, rollout=steps)),
                    annotations={requests.PROMOTE: "t1", requests.PAUSED: "true"})
    old = status(Phase.PAUSED, stable=1, canary=2, reason="Paused", canary_weight=50, step_weight=50,
                 current_step_index=1)
    p = rollout.plan(spec("8", replicas=4, rollout=steps), old, seen, SETTINGS)
    assert requests.PROMOTE not in p.status.handled_requests and not p.events
    resumed = rollout.plan(spec("8", replicas=4, rollout=steps), p.status,
                           observed(ready(1, 2), ready(2, 2), revisions=seen.revisions,
                                    annotations={requests.PROMOTE: "t1"}), SETTINGS)
    assert resumed.status.current_step_index == 2 and resumed.status.handled_requests[requests.PROMOTE] == "t1"


def test_a_superseded_revision_without_a_scale_down_time_gets_one() -> None:
    seen = observed(ready(1), ready(2), revisions=(record(1, "7", SUPERSEDED), record(2, "8", STABLE)))
    p = rollout.plan(spec("8", rollout={"scaleDownDelaySeconds": 20}), status(Phase.HEALTHY, stable=2), seen,
                     SETTINGS)
    assert replicas(p)[1] == 3 and annotations(p, 1)[names.ANN_SCALE_DOWN_AT] == rollout.timestamp(after(20))


def test_a_superseded_revision_scales_down_the_second_its_time_comes() -> None:
    seen = observed(ready(1, scale_down_at=NOW), ready(2), revisions=(record(1, "7", SUPERSEDED),
                                                                      record(2, "8", STABLE)))
    p = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=2), seen, SETTINGS)
    assert replicas(p)[1] == 0


def test_the_pdb_follows_the_autoscaler_floor_not_spec_replicas() -> None:
    raw = spec("7", replicas=3, autoscaling={"minReplicas": 1, "maxReplicas": 5})
    p = rollout.plan(raw, status(Phase.HEALTHY, stable=1), observed(ready(1), revisions=(record(
        1, "7", replicas=3, autoscaling={"minReplicas": 1, "maxReplicas": 5}),)), SETTINGS)
    assert manifests(p, "PodDisruptionBudget") == {}


def test_a_rollback_request_names_what_it_serves() -> None:
    seen = observed(ready(1), ready(2), revisions=(record(1, "7", SUPERSEDED), record(2, "8", STABLE)),
                    annotations={requests.ROLLBACK: "1@t1"})
    p = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=2), seen, SETTINGS)
    assert p.status.rollback == RollbackOverride(revision=1, spec_hash=record(2, "8").hash)
