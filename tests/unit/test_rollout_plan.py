"""The serving planner: spec + observed facts + time -> what one reconcile applies, deletes and reports.

Every test builds the world by hand (a fixed `NOW`, hand-made Observed values) and
reads the plan the way the reconciler would: manifests to apply, refs to delete,
the status to write and the events to emit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import Outcome, revision_name
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.runtime import PRESETS
from modeldeploy.desired.settings import Settings
from planning import (  # noqa: F401
    FAILED,
    GENERATION,
    HEALTHY_1,
    IMAGE,
    MD,
    NOW,
    NS,
    PROGRESSING,
    R1,
    REASONS,
    SETTINGS,
    STABLE,
    SUPERSEDED,
    UID,
    after,
    annotations,
    condition,
    deleted,
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

# -- the serving state machine, as a table ------------------------------------------------

@dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    old: ModelDeploymentStatus
    seen: Observed
    phase: Phase
    stable: int | None
    canary: int | None = None
    replicas: dict[int, int] = field(default_factory=dict)  # every planned Deployment
    outcomes: dict[int, str] = field(default_factory=dict)  # every ControllerRevision written
    events: tuple[str, ...] = ()
    deleted: frozenset[tuple[str, str]] = frozenset()  # Deployments deleted


CASES: dict[str, Case] = {
    "first-apply": Case(
        spec(), status(), observed(),
        Phase.PENDING, stable=None, replicas={1: 3}, outcomes={1: "Progressing"}, events=("Deploying",)),
    "first-apply-pods-starting": Case(
        spec(), status(Phase.PENDING), observed(starting(1, ready=2), revisions=(record(1, outcome=PROGRESSING),)),
        Phase.PENDING, stable=None, replicas={1: 3}),
    "first-apply-ready": Case(
        spec(), status(Phase.PENDING), observed(ready(1), revisions=(record(1, outcome=PROGRESSING),)),
        Phase.HEALTHY, stable=1, replicas={1: 3}, outcomes={1: "Stable"}, events=("Healthy",)),
    "steady": Case(
        spec(), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.HEALTHY, stable=1, replicas={1: 3}),
    "replicas-only-change": Case(
        spec(replicas=5), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.PROGRESSING, stable=1, replicas={1: 5}, events=("Scaling",)),
    "replicas-only-change-done": Case(
        spec(replicas=5), status(Phase.PROGRESSING, stable=1), observed(ready(1, 5), revisions=(R1,)),
        Phase.HEALTHY, stable=1, replicas={1: 5}, events=("Healthy",)),
    "model-version-change": Case(
        spec("8"), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}, outcomes={2: "Progressing"},
        events=("RollingOut",)),
    "model-uri-change-same-version": Case(
        spec(model={"uri": "gs://other/fraud/v7", "version": "7"}), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}, outcomes={2: "Progressing"},
        events=("RollingOut",)),
    "runtime-change": Case(
        spec(runtime={"image": f"{IMAGE}-patched"}), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}, outcomes={2: "Progressing"},
        events=("RollingOut",)),
    "new-revision-starting": Case(
        spec("8"), rolling(60), observed(ready(1), starting(2, ready=2),
                                         revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}),
    "new-revision-ready-is-promoted": Case(
        spec("8"), rolling(60), observed(ready(1), ready(2), revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.HEALTHY, stable=2, replicas={1: 3, 2: 3}, outcomes={1: "Superseded", 2: "Stable"},
        events=("Promoted", "Healthy")),
    "superseded-keeps-pods-until-scale-down-at": Case(
        spec("8"), status(Phase.HEALTHY, stable=2),
        observed(ready(1, scale_down_at=after(10)), ready(2),
                 revisions=(record(1, "7", SUPERSEDED), record(2, "8"))),
        Phase.HEALTHY, stable=2, replicas={1: 3, 2: 3}),
    "superseded-scaled-to-zero-after-scale-down-at": Case(
        spec("8"), status(Phase.HEALTHY, stable=2),
        observed(ready(1, scale_down_at=after(-1)), ready(2),
                 revisions=(record(1, "7", SUPERSEDED), record(2, "8"))),
        Phase.PROGRESSING, stable=2, replicas={1: 0, 2: 3}, events=("ScalingDown",)),
    "healthy-once-the-scaled-down-pods-are-gone": Case(
        spec("8"), status(Phase.PROGRESSING, stable=2, reason="ScalingDown"),
        observed(starting(1, replicas=0, scale_down_at=after(-5)), ready(2),
                 revisions=(record(1, "7", SUPERSEDED), record(2, "8"))),
        Phase.HEALTHY, stable=2, replicas={1: 0, 2: 3}, events=("Healthy",)),
    "not-healthy-while-scaled-down-pods-still-run": Case(
        spec("8"), status(Phase.PROGRESSING, stable=2, reason="ScalingDown"),
        observed(starting(1, replicas=0, scale_down_at=after(-5), settled=False), ready(2),
                 revisions=(record(1, "7", SUPERSEDED), record(2, "8"))),
        Phase.PROGRESSING, stable=2, replicas={1: 0, 2: 3}),
    "progress-deadline-rolls-back": Case(
        spec("8"), rolling(601), observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.DEGRADED, stable=1, replicas={1: 3, 2: 0}, outcomes={2: "Failed"}, events=("RolledBack",)),
    "before-progress-deadline-keeps-waiting": Case(
        spec("8"), rolling(599), observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}),
    "failed-revision-is-not-retried": Case(
        spec("8"), status(Phase.DEGRADED, stable=1),
        observed(ready(1), starting(2, replicas=0), revisions=(R1, record(2, "8", FAILED, "0/3 pods ready"))),
        Phase.DEGRADED, stable=1, replicas={1: 3, 2: 0}),
    "crash-looping-rolls-back": Case(
        spec("8"), rolling(60),
        observed(ready(1), starting(2, ready=1, max_restarts=3, crashing_pod="fraud-r2-7d9-x2"),
                 revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.DEGRADED, stable=1, replicas={1: 3, 2: 0}, outcomes={2: "Failed"}, events=("RolledBack",)),
    "restarts-below-limit-keep-waiting": Case(
        spec("8"), rolling(60),
        observed(ready(1), starting(2, ready=1, max_restarts=2, crashing_pod="fraud-r2-7d9-x2"),
                 revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.PROGRESSING, stable=1, canary=2, replicas={1: 3, 2: 3}),
    "auto-rollback-off-is-stuck": Case(
        spec("8", rollout={"autoRollback": False}), rolling(601),
        observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.DEGRADED, stable=1, canary=2, replicas={1: 3, 2: 3}, events=("RolloutStuck",)),
    "revert-during-rollout-reuses-revision-1": Case(
        spec("7"), rolling(60), observed(ready(1), starting(2, ready=1), revisions=(R1, record(2, "8", PROGRESSING))),
        Phase.HEALTHY, stable=1, replicas={1: 3}, outcomes={2: "Aborted"}, events=("Superseded", "Healthy"),
        deleted=frozenset({("Deployment", "fraud-r2")})),
    "revert-after-promotion-reuses-revision-1": Case(
        spec("7"), status(Phase.HEALTHY, stable=2),
        observed(starting(1, replicas=0, scale_down_at=after(-60)), ready(2),
                 revisions=(record(1, "7", SUPERSEDED), record(2, "8"))),
        Phase.PROGRESSING, stable=2, canary=1, replicas={1: 3, 2: 3}, events=("RollingOut",)),
    "paused-holds-new-revision": Case(
        spec("8", paused=True), HEALTHY_1, observed(ready(1), revisions=(R1,)),
        Phase.PAUSED, stable=1, replicas={1: 3}, outcomes={2: "Progressing"}, events=("Paused",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_serving_plan(case: Case) -> None:
    # Given the spec, the last status and what the reconciler observed
    # When the planner runs
    p = plan(case.spec, case.old, case.seen)
    # Then phase, revisions, Deployments, history and events are as the rollout semantics say
    assert (p.status.phase, p.status.stable_revision, p.status.canary_revision) == \
        (case.phase, case.stable, case.canary), p.status.message
    assert replicas(p) == case.replicas
    assert outcomes(p) == case.outcomes
    assert reasons(p) == list(case.events)
    assert {d for d in deleted(p) if d[0] == "Deployment"} == case.deleted
    assert p.status.observed_generation == GENERATION
    assert {c.observed_generation for c in p.status.conditions} == {GENERATION}


# -- first apply ------------------------------------------------------------------------

def test_first_apply_creates_revision_deployment_and_services() -> None:
    # Given a new ModelDeployment with nothing deployed yet
    # When it is planned
    p = plan(spec(), status(), observed())
    # Then revision 1 is recorded as a ControllerRevision named after its template hash
    (cr,) = manifests(p, "ControllerRevision").values()
    assert cr["metadata"]["name"] == revision_name(MD, record(1).hash)
    assert (cr["revision"], cr["data"]) == (1, record(1).template)
    # And the Deployment fraud-r1 runs it at spec.replicas
    deployment = manifests(p, "Deployment")["fraud-r1"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["labels"][names.LABEL_REVISION] == "1"
    # And the Services are the client endpoint and the stable one
    services = manifests(p, "Service")
    assert set(services) == {"fraud", "fraud-stable"}
    # (the client one selects every revision until the serving one has all its pods Ready)
    assert services["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD}
    assert services["fraud-stable"]["spec"]["selector"] == {names.LABEL_MD: MD, names.LABEL_REVISION: "1"}
    # And the status says Pending, with no stable revision yet
    assert p.status.phase == Phase.PENDING and p.status.stable_revision is None
    assert p.status.url == "http://fraud.risk.svc.cluster.local"
    assert p.delete == []


def test_first_apply_ready_is_healthy() -> None:
    # Given revision 1 was applied and all its pods are Ready
    seen = observed(ready(1), revisions=(record(1, outcome=PROGRESSING),))
    # When planned
    p = plan(spec(), status(Phase.PENDING), seen)
    # Then revision 1 is stable and the ModelDeployment Ready for this generation
    assert (p.status.phase, p.status.stable_revision, p.status.model_version) == (Phase.HEALTHY, 1, "7")
    assert (p.status.replicas, p.status.ready_replicas) == (3, 3)
    ready_condition = condition(p.status, "Ready")
    assert (ready_condition.status, ready_condition.observed_generation) == ("True", GENERATION)
    assert condition(p.status, "Reconciling").status == "False"
    assert condition(p.status, "Stalled").status == "False"
    assert outcomes(p) == {1: "Stable"}
    assert p.requeue_after is None


def test_first_apply_with_zero_replicas_is_deployed() -> None:
    # Given a new ModelDeployment asking for 0 replicas
    first = plan(spec(replicas=0), status(), observed())
    # Then its Deployment is created at 0 ...
    assert replicas(first) == {1: 0}
    # ... and once it exists, the ModelDeployment is Healthy at 0/0
    later = plan(spec(replicas=0), first.status, observed(ready(1, 0), revisions=(record(1, outcome=PROGRESSING),)))
    assert later.status.phase == Phase.HEALTHY


@pytest.mark.parametrize(("r1", "started_ago", "says"), [
    (starting(1), 700, "0/3 pods ready after 700s"),
    (starting(1, max_restarts=5, crashing_pod="fraud-r1-5c9d-x0"), 60, "fraud-r1-5c9d-x0 restarted 5 times"),
], ids=["never-ready-past-deadline", "crash-looping"])
def test_first_revision_that_cannot_start_is_reported(r1: DeploymentFacts, started_ago: float, says: str) -> None:
    # Given the first revision was applied a while ago and its pods do not get Ready
    began = rollout.timestamp(NOW - timedelta(seconds=started_ago))
    seen = observed(r1, revisions=(replace(record(1, outcome=PROGRESSING), created=began),))
    # When planned
    p = plan(spec(), status(Phase.PENDING, started_ago=started_ago), seen)
    # Then the status says it is stuck, and why, with numbers
    assert p.status.phase == Phase.DEGRADED
    assert says in (p.status.message or "")


# -- in-place changes ---------------------------------------------------------------------

def test_replicas_only_change_changes_only_the_replica_count() -> None:
    # Given revision 1 serving at 3 replicas
    seen = observed(ready(1), revisions=(R1,))
    # When only spec.replicas changes
    before = manifests(plan(spec(replicas=3), HEALTHY_1, seen), "Deployment")
    after_ = manifests(plan(spec(replicas=5), HEALTHY_1, seen), "Deployment")
    # Then it is the same revision's Deployment, with the same pod template, at the new size
    assert set(before) == set(after_) == {"fraud-r1"}
    old, new = before["fraud-r1"], after_["fraud-r1"]
    assert new["spec"]["replicas"] == 5
    assert {**new, "spec": {**new["spec"], "replicas": 3}} == old
    # And the serving template hash is unchanged, so there is no new revision
    assert template_hash(ModelDeploymentSpec.model_validate(spec(replicas=5)).serving_template()) == R1.hash


# -- rollout and promotion ------------------------------------------------------------------

def test_new_revision_runs_beside_stable_at_full_size() -> None:
    # Given revision 1 serving at 3 replicas
    # When the model version changes
    p = plan(spec("8"), HEALTHY_1, observed(ready(1), revisions=(R1,)))
    # Then revision 2 starts at full size while revision 1 keeps all of its pods
    assert replicas(p) == {1: 3, 2: 3}
    assert manifests(p, "Service")["fraud-stable"]["spec"]["selector"][names.LABEL_REVISION] == "1"
    # And the rollout start is recorded, and the planner asks to be woken at the deadline
    assert p.status.rollout_started_at == rollout.timestamp(NOW)
    assert p.requeue_after == pytest.approx(600.5)
    assert "revision 2 (model 8)" in (p.status.message or "")


def test_rollout_keeps_its_start_time() -> None:
    # Given revision 2 has been rolling out for 100s
    seen = observed(ready(1), starting(2, ready=1), revisions=(R1, record(2, "8", PROGRESSING)))
    # When planned again
    p = plan(spec("8"), rolling(100), seen)
    # Then the start time is kept, and the wake-up is at the original deadline
    assert p.status.rollout_started_at == rollout.timestamp(NOW - timedelta(seconds=100))
    assert p.requeue_after == pytest.approx(500.5)


@pytest.mark.parametrize("delay", [30, 120], ids=["default-delay", "delay-120s"])
def test_promotion_schedules_scale_down_of_previous_stable(delay: int) -> None:
    # Given revision 2 fully Ready beside stable revision 1
    raw = spec("8", rollout={"scaleDownDelaySeconds": delay})
    seen = observed(ready(1), ready(2), revisions=(R1, record(2, "8", PROGRESSING)))
    # When planned
    p = plan(raw, rolling(60), seen)
    # Then revision 2 is stable and the stable Service points at it
    assert (p.status.phase, p.status.stable_revision, p.status.canary_revision) == (Phase.HEALTHY, 2, None)
    assert manifests(p, "Service")["fraud-stable"]["spec"]["selector"][names.LABEL_REVISION] == "2"
    assert manifests(p, "HorizontalPodAutoscaler") == {}
    # And revision 1 keeps its pods, marked to scale down after the delay, but clients reach revision 2 alone
    assert replicas(p)[1] == 3
    assert manifests(p, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD, names.LABEL_REVISION: "2"}
    assert annotations(p, 1)[names.ANN_SCALE_DOWN_AT] == rollout.timestamp(after(delay))
    assert names.ANN_SCALE_DOWN_AT not in annotations(p, 2)
    assert p.requeue_after == pytest.approx(delay + 0.5)
    # And a Normal "Promoted" event names both revisions
    promoted = next(e for e in p.events if e.reason == "Promoted")
    assert promoted.type == "Normal"
    assert "revision 2 (model 8) is stable" in promoted.message and f"revision 1 scales down in {delay}s" \
        in promoted.message


def test_previous_stable_is_kept_scaled_down_for_a_fast_way_back() -> None:
    # Given revision 1 superseded and already scaled to zero
    seen = observed(starting(1, replicas=0, scale_down_at=after(-3600)), ready(2),
                    revisions=(record(1, "7", SUPERSEDED), record(2, "8")))
    # When planned long after the scale-down time
    p = plan(spec("8"), status(Phase.HEALTHY, stable=2), seen)
    # Then revision 1's Deployment is kept at zero (not deleted), with no wake-up pending
    assert replicas(p) == {1: 0, 2: 3}
    assert deleted(p) == set()
    assert p.requeue_after is None


# -- automatic rollback ---------------------------------------------------------------------

def test_progress_deadline_rollback_says_why_with_numbers() -> None:
    # Given revision 2 has had 0/3 Ready pods for 601s (deadline 600s)
    seen = observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))
    # When planned
    p = plan(spec("8"), rolling(601), seen)
    # Then revision 2 is recorded Failed with the numbers, scaled to zero; revision 1 stays stable
    cr = manifests(p, "ControllerRevision")[revision_name(MD, record(2, "8").hash)]
    reason = cr["metadata"]["annotations"][names.ANN_OUTCOME_REASON]
    assert "0/3 pods ready after 601s" in reason and "600" in reason
    assert replicas(p) == {1: 3, 2: 0}
    assert p.status.stable_revision == 1 and p.status.canary_revision is None
    assert p.status.rollout_started_at is None
    # And the status and a Warning event say so
    assert "0/3 pods ready after 601s" in (p.status.message or "")
    (event,) = p.events
    assert (event.type, event.reason) == ("Warning", "RolledBack")
    assert "0/3 pods ready after 601s" in event.message and "revision 1 serves 100%" in event.message
    assert condition(p.status, "Degraded").status == "True"
    assert condition(p.status, "Ready").status == "False"


def test_crash_looping_rollback_names_pod_and_restart_count() -> None:
    # Given a pod of revision 2 restarted 4 times (limit 3)
    seen = observed(ready(1), starting(2, ready=2, max_restarts=4, crashing_pod="fraud-r2-7d9f-x2"),
                    revisions=(R1, record(2, "8", PROGRESSING)))
    # When planned, well before the progress deadline
    p = plan(spec("8"), rolling(30), seen)
    # Then it is rolled back, and the reason names the pod and the count
    assert (p.status.phase, replicas(p)) == (Phase.DEGRADED, {1: 3, 2: 0})
    event = next(e for e in p.events if e.reason == "RolledBack")
    assert "fraud-r2-7d9f-x2" in event.message and "4 times" in event.message and "limit 3" in event.message


def test_crash_restart_limit_comes_from_settings() -> None:
    seen = observed(ready(1), starting(2, ready=2, max_restarts=4, crashing_pod="p"),
                    revisions=(R1, record(2, "8", PROGRESSING)))
    p = plan(spec("8"), rolling(30), seen, Settings(crash_restart_limit=5, allow_inline_analysis_urls=True))
    assert p.status.phase == Phase.PROGRESSING


def world_after(p: rollout.Plan, seen: Observed, now: datetime) -> Observed:
    """The next observation: the plan's ControllerRevisions and Deployment sizes taken as written."""
    revisions = {r.number: r for r in seen.revisions}
    for cr in manifests(p, "ControllerRevision").values():
        ann = cr["metadata"]["annotations"]
        revisions[cr["revision"]] = RevisionRecord(
            number=cr["revision"], hash=cr["metadata"]["labels"][names.LABEL_REVISION_HASH],
            model_version=ann[names.ANN_MODEL_VERSION], outcome=ann[names.ANN_OUTCOME],
            reason=ann.get(names.ANN_OUTCOME_REASON, ""), released=ann.get(names.ANN_RELEASED) == "true",
            template=cr["data"])
    deployments = dict(seen.deployments)
    for dep in manifests(p, "Deployment").values():
        n, size = int(dep["metadata"]["labels"][names.LABEL_REVISION]), dep["spec"]["replicas"]
        old = deployments.get(n) or DeploymentFacts(revision=n, replicas=0, ready_replicas=0)
        deployments[n] = replace(old, replicas=size, ready_replicas=min(old.ready_replicas, size),
                                 scale_down_at=rollout.parse_timestamp(
                                     dep["metadata"].get("annotations", {}).get(names.ANN_SCALE_DOWN_AT)))
    for ref in p.delete:
        if ref.kind == "Deployment":
            deployments.pop(int(ref.name.rsplit("-r", 1)[1]), None)
        if ref.kind == "ControllerRevision":
            revisions = {n: r for n, r in revisions.items() if revision_name(MD, r.hash) != ref.name}
    return replace(seen, now=now, deployments=deployments, revisions=tuple(sorted(revisions.values(),
                                                                                 key=lambda r: r.number)))


def test_rolled_back_revision_is_not_retried_on_later_passes() -> None:
    # Given revision 2 was rolled back after its progress deadline
    seen = observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))
    first = plan(spec("8"), rolling(601), seen)
    # When the same spec is reconciled again, a minute and then an hour later
    for later in (after(60), after(3600)):
        again = plan(spec("8"), first.status, world_after(first, seen, later))
        # Then revision 2 stays at zero, nothing new is started, no event repeats
        assert again.status.phase == Phase.DEGRADED
        assert (again.status.stable_revision, again.status.canary_revision) == (1, None)
        assert replicas(again)[2] == 0
        assert outcomes(again) == {}
        assert again.events == []
        assert again.status.message == first.status.message


def test_stable_keeps_serving_after_a_rollback() -> None:
    # Given revision 2 was rolled back and revision 1 serves
    seen = observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))
    first = plan(spec("8"), rolling(601), seen)
    # When the unchanged spec is reconciled again, now and after the scale-down delay
    second = plan(spec("8"), first.status, world_after(first, seen, after(1)))
    third = plan(spec("8"), second.status, world_after(second, world_after(first, seen, after(1)), after(120)))
    # Then revision 1 keeps all its pods and is never marked for scale-down
    assert [replicas(p)[1] for p in (second, third)] == [3, 3]
    assert [names.ANN_SCALE_DOWN_AT in annotations(p, 1) for p in (second, third)] == [False, False]


def test_failed_revision_is_retried_after_the_spec_changes_away_and_back() -> None:
    # Given revision 2 (model 8) was rolled back, then the spec went back to model 7
    r2_failed = record(2, "8", FAILED, "0/3 pods ready after 601s (progressDeadlineSeconds 600)")
    seen = observed(ready(1), starting(2, replicas=0), revisions=(R1, r2_failed))
    back = plan(spec("7"), status(Phase.DEGRADED, stable=1), seen)
    assert back.status.phase == Phase.HEALTHY
    # When model 8 is applied again (say, once the cluster has room for it)
    again = plan(spec("8"), back.status, world_after(back, seen, after(600)))
    # Then it is rolled out again rather than refused
    assert again.status.phase == Phase.PROGRESSING, again.status.message
    assert again.status.canary_revision is not None
    assert replicas(again)[again.status.canary_revision] == 3


def test_auto_rollback_off_leaves_the_stuck_revision_running() -> None:
    # Given autoRollback is off and revision 2 missed its deadline
    raw = spec("8", rollout={"autoRollback": False})
    seen = observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))
    # When planned
    p = plan(raw, rolling(601), seen)
    # Then it is Degraded/RolloutStuck with revision 2 untouched and not recorded Failed
    assert (p.status.phase, condition(p.status, "Degraded").reason) == (Phase.DEGRADED, "RolloutStuck")
    assert replicas(p) == {1: 3, 2: 3}
    assert outcomes(p) == {}
    assert "autoRollback is off" in (p.status.message or "")
    assert "kubectl modeldeploy abort fraud" in (p.status.message or "")
    assert p.events[0].type == "Warning"
    # And the rollout keeps its start time (it is still in flight)
    assert p.status.rollout_started_at == rollout.timestamp(NOW - timedelta(seconds=601))


# -- going back -----------------------------------------------------------------------------

def test_git_revert_reuses_the_revision_number() -> None:
    # Given revision 2 (model 8) stable and revision 1 (model 7) superseded, scaled down
    seen = observed(starting(1, replicas=0, scale_down_at=after(-60)), ready(2),
                    revisions=(record(1, "7", SUPERSEDED), record(2, "8")))
    # When the spec goes back to model 7, as `git revert` would
    p = plan(spec("7"), status(Phase.HEALTHY, stable=2), seen)
    # Then revision 1 is scaled back up beside 2: no revision 3, no new ControllerRevision
    assert p.status.canary_revision == 1
    assert replicas(p) == {1: 3, 2: 3}
    assert manifests(p, "ControllerRevision") == {}
    assert names.ANN_SCALE_DOWN_AT not in annotations(p, 1)


def test_revision_numbers_are_never_reused_for_another_template() -> None:
    # Given revision 1 superseded (kept scaled down), 2 stable, 3 failed, and a history limit of 2
    limit = {"revisionHistoryLimit": 2}
    seen = observed(starting(1, replicas=0, scale_down_at=after(-60)), ready(2), starting(3, replicas=0),
                    revisions=(record(1, "7", SUPERSEDED, **limit), record(2, "8", **limit),
                               record(3, "9", FAILED, "crash-looping", **limit)))
    # When the spec goes back to model 8, then on to a new model 10
    back = plan(spec("8", **limit), status(Phase.DEGRADED, stable=2), seen)
    later = plan(spec("10", **limit), back.status, world_after(back, seen, after(60)))
    # Then model 10 does not get revision 3, which the history knew as model 9
    assert later.status.canary_revision != 3


def test_abandoned_revision_is_closed_and_can_be_tried_again() -> None:
    # Given revision 2 rolling out
    seen = observed(ready(1), starting(2, ready=1), revisions=(R1, record(2, "8", PROGRESSING)))
    # When the spec returns to revision 1's template before 2 is Ready
    back = plan(spec("7"), rolling(60), seen)
    # Then revision 2's history entry no longer says it is progressing
    cr = manifests(back, "ControllerRevision")[revision_name(MD, record(2, "8").hash)]
    assert cr["metadata"]["annotations"][names.ANN_OUTCOME] == "Aborted"
    assert "spec moved on" in cr["metadata"]["annotations"][names.ANN_OUTCOME_REASON]
    # And applying model 8 again later rolls it out again under the same number
    again = plan(spec("8"), back.status, world_after(back, seen, after(60)))
    assert (again.status.phase, again.status.canary_revision) == (Phase.PROGRESSING, 2)
    assert replicas(again) == {1: 3, 2: 3}


# -- pausing ----------------------------------------------------------------------------------

def test_paused_holds_the_new_revision() -> None:
    # Given revision 1 serving and spec.paused
    # When the model changes
    p = plan(spec("8", paused=True), HEALTHY_1, observed(ready(1), revisions=(R1,)))
    # Then the new revision is recorded but gets no Deployment, and the status says why
    assert p.status.phase == Phase.PAUSED
    assert "fraud-r2" not in manifests(p, "Deployment")
    assert outcomes(p) == {2: "Progressing"}
    assert "spec.paused" in (p.status.message or "")
    assert p.status.stable_revision == 1 and p.status.canary_revision is None


@pytest.mark.parametrize("delay", [0, 30], ids=["scale-down-delay-0", "scale-down-delay-30"])
def test_paused_stable_keeps_serving(delay: int) -> None:
    # Given revision 1 serving, spec.paused, and a new model waiting
    raw = spec("8", paused=True, rollout={"scaleDownDelaySeconds": delay})
    seen = observed(ready(1), revisions=(record(1, "7", rollout={"scaleDownDelaySeconds": delay}),))
    first = plan(raw, HEALTHY_1, seen)
    # When reconciled again after the delay
    later = plan(raw, first.status, world_after(first, seen, after(delay + 1)))
    # Then revision 1 keeps all its pods
    for p in (first, later):
        assert replicas(p) == {1: 3}
        assert names.ANN_SCALE_DOWN_AT not in annotations(p, 1)


@pytest.mark.parametrize(("r2", "started_ago"), [(ready(2), 60), (starting(2), 700)],
                         ids=["ready-is-not-promoted", "deadline-does-not-roll-back"])
def test_pausing_holds_a_rollout_in_flight(r2: DeploymentFacts, started_ago: float) -> None:
    # Given revision 2 rolling out beside stable revision 1 (no canary steps)
    seen = observed(ready(1), r2, revisions=(R1, record(2, "8", PROGRESSING)))
    # When spec.paused is set
    p = plan(spec("8", paused=True), rolling(started_ago), seen)
    # Then nothing moves: revision 1 stays stable, revision 2 is neither promoted nor failed
    assert (p.status.phase, p.status.stable_revision) == (Phase.PAUSED, 1)
    assert outcomes(p) == {}
    assert replicas(p) == {1: 3, 2: 3}


def test_pause_request_holds_a_rollout_without_steps() -> None:
    # Given `kubectl modeldeploy pause fraud` and revision 1 serving
    seen = observed(ready(1), revisions=(R1,), annotations={requests.PAUSED: "true"})
    # When the model changes
    p = plan(spec("8"), HEALTHY_1, seen)
    # Then the new revision waits
    assert p.status.phase == Phase.PAUSED
    assert replicas(p) == {1: 3}


def test_unpausing_starts_the_rollout() -> None:
    seen = observed(ready(1), revisions=(R1, record(2, "8", PROGRESSING)))
    p = plan(spec("8", paused=False), status(Phase.PAUSED, stable=1), seen)
    assert (p.status.phase, p.status.canary_revision, replicas(p)) == (Phase.PROGRESSING, 2, {1: 3, 2: 3})


# -- specs that cannot be honoured ------------------------------------------------------------

SERVING_WORLD = observed(ready(1), ready(2, scale_down_at=after(-10)),
                         revisions=(record(1, "7", SUPERSEDED), record(2, "7", runtime={"image": IMAGE + "b"})),
                         services=frozenset({"fraud", "fraud-stable", "fraud-canary"}), has_hpa=True, has_pdb=True,
                         missing_secrets=("s3-creds",), missing_claims=("models",))
SERVING_STATUS = status(Phase.HEALTHY, stable=2, model_version="7")

UNHONOURABLE: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "unknown-runtime-preset": (
        spec(runtime={"preset": "tritonn"}), "UnknownRuntimePreset",
        ["spec.runtime.preset", "'tritonn'", *sorted(PRESETS), "spec.runtime.image"]),
    "missing-credentials-secret": (
        spec(model={"uri": "s3://models/fraud/v8", "version": "8", "credentialsSecret": "s3-creds"}),
        "CredentialsSecretNotFound", ["spec.model.credentialsSecret", "'s3-creds'", "'risk'"]),
    "missing-model-claim": (
        spec(model={"uri": "pvc://models/fraud/v8", "version": "8"}),
        "ModelClaimNotFound", ["spec.model.uri", "'models'", "'risk'"]),
    "negative-replicas": (spec(replicas=-1), "InvalidSpec", ["spec.replicas"]),
    "missing-model": (spec(model=None), "InvalidSpec", ["spec.model", "required"]),
    "missing-model-version": (spec(model={"uri": "s3://m/x"}), "InvalidSpec", ["spec.model.version"]),
    "bad-uri-scheme": (spec(model={"uri": "ftp://m/x", "version": "8"}), "InvalidSpec", ["spec.model.uri"]),
    "image-and-preset": (spec(runtime={"image": IMAGE, "preset": "mlserver"}), "InvalidSpec",
                         ["spec.runtime", "exactly one of runtime.image or runtime.preset"]),
    "unknown-field": (spec(replica=3), "InvalidSpec", ["spec.replica: Extra inputs are not permitted"]),
}


@pytest.mark.parametrize(("raw", "reason", "mentions"), UNHONOURABLE.values(), ids=UNHONOURABLE.keys())
def test_unhonourable_spec_fails_and_touches_nothing(raw: dict[str, Any], reason: str, mentions: list[str]) -> None:
    # Given revision 2 serving
    # When the spec cannot be honoured
    p = plan(raw, SERVING_STATUS, SERVING_WORLD)
    # Then the phase is Failed with a reason and a message that says where and what
    assert p.status.phase == Phase.FAILED
    stalled = condition(p.status, "Stalled")
    assert (stalled.status, stalled.reason, stalled.observed_generation) == ("True", reason, GENERATION)
    for needle in mentions:
        assert needle in (p.status.message or ""), needle
    assert "Revision 2 (model 7) keeps serving" in (p.status.message or "")
    # And nothing is applied or deleted: the serving objects are left as they are
    assert p.apply == [] and p.delete == []
    assert p.status.stable_revision == 2
    # And one Warning event says the same
    (event,) = p.events
    assert (event.type, event.reason, event.message) == ("Warning", reason, p.status.message)


def test_unhonourable_spec_reports_once() -> None:
    raw = spec(runtime={"preset": "tritonn"})
    first = plan(raw, SERVING_STATUS, SERVING_WORLD)
    again = plan(raw, first.status, replace(SERVING_WORLD, now=after(300)))
    assert again.events == []
    assert again.status == first.status


def test_invalid_spec_on_first_apply_names_the_field() -> None:
    p = plan(spec(replicas=-1), status(), observed())
    assert (p.status.phase, p.apply, p.delete) == (Phase.FAILED, [], [])
    assert (p.status.message or "").startswith("spec.replicas: ")


# -- autoscaling and disruption budget -----------------------------------------------------------

AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70}


def test_autoscaling_targets_the_modeldeployment() -> None:
    # Given autoscaling on, revision 1 serving
    p = plan(spec(replicas=None, autoscaling=AUTOSCALING), HEALTHY_1, observed(ready(1, 2), revisions=(R1,)))
    # Then an HPA scales the ModelDeployment itself (its scale subresource) within the bounds
    (hpa,) = manifests(p, "HorizontalPodAutoscaler").values()
    assert hpa["metadata"]["name"] == MD
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                             "name": MD}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    # And status carries the selector of every serving pod, for the scale subresource
    assert p.status.selector == "modeldeploy.dev/name=fraud"


@pytest.mark.parametrize(("raw", "seen", "expected"), [
    (spec(replicas=None, autoscaling=AUTOSCALING), observed(revisions=()), {1: 2}),
    (spec(replicas=4, autoscaling=AUTOSCALING), observed(revisions=()), {1: 4}),
    (spec(replicas=7, autoscaling=AUTOSCALING), observed(ready(1, 4), revisions=(R1,)), {1: 7}),
    (spec(replicas=20, autoscaling=AUTOSCALING), observed(ready(1, 4), revisions=(R1,)), {1: 10}),
    (spec(replicas=4), observed(ready(1, 7), revisions=(R1,)), {1: 4}),
], ids=["first-apply-at-min", "first-apply-at-replicas", "follows-the-hpa-through-spec-replicas",
        "clamped-to-max", "deployment-size-never-read-back"])
def test_deployment_replicas_follow_spec_replicas(raw: dict[str, Any], seen: Observed,
                                                  expected: dict[int, int]) -> None:
    # Given the HPA writes spec.replicas (the scale subresource), never the Deployments
    p = plan(raw, HEALTHY_1 if seen.revisions else status(), seen)
    # Then the planned size is spec.replicas within the autoscaler's bounds, whatever a Deployment says
    assert replicas(p) == expected


@pytest.mark.parametrize("passes", [1, 5], ids=["one-pass", "five-passes"])
def test_a_canary_with_autoscaling_never_shrinks_the_total(passes: int) -> None:
    # Given the HPA set spec.replicas to 8 and a canary takes 25% with the replicas router
    steps = {"steps": [{"setWeight": 25}, {"pause": {}}]}
    raw = spec("8", replicas=8, autoscaling={"minReplicas": 2, "maxReplicas": 10}, rollout=steps)
    old = HEALTHY_1
    r1 = record(1, "7", STABLE, replicas=8, autoscaling={"minReplicas": 2, "maxReplicas": 10}, rollout=steps)
    deps = {1: ready(1, 8)}
    # When the operator plans pass after pass, the pods doing what it planned
    for _ in range(passes):
        seen = observed(*deps.values(), revisions=(r1, record(2, "8", PROGRESSING, replicas=8,
                                                             autoscaling={"minReplicas": 2, "maxReplicas": 10},
                                                             rollout=steps)))
        p = plan(raw, old, seen)
        deps = {n: ready(n, count) for n, count in replicas(p).items()}
        old = p.status
    # Then stable and canary share the autoscaled 8 between them: capacity never drops (8 -> 4 -> 2 -> 1 before)
    assert sum(replicas(p).values()) >= 8 and replicas(p)[1] >= 6, replicas(p)


@pytest.mark.parametrize(("raw", "has_hpa", "has_pdb", "hpa", "pdb"), [
    (spec(replicas=1), False, False, "absent", "absent"),
    (spec(replicas=2), False, False, "absent", "applied"),
    (spec(replicas=1), False, True, "absent", "deleted"),
    (spec(replicas=3), True, False, "deleted", "applied"),
    (spec(replicas=None, autoscaling={"minReplicas": 1, "maxReplicas": 5}), True, True, "applied", "deleted"),
    (spec(replicas=None, autoscaling={"minReplicas": 2, "maxReplicas": 5}), False, False, "applied", "applied"),
], ids=["one-replica", "two-replicas-pdb", "down-to-one-deletes-pdb", "autoscaling-removed-deletes-hpa",
        "autoscaling-min-1-no-pdb", "autoscaling-min-2-pdb"])
def test_hpa_and_pdb(raw: dict[str, Any], has_hpa: bool, has_pdb: bool, hpa: str, pdb: str) -> None:
    # Given revision 1 serving and an HPA/PDB that may exist
    seen = observed(ready(1, 3), revisions=(R1,), has_hpa=has_hpa, has_pdb=has_pdb)
    # When planned
    p = plan(raw, HEALTHY_1, seen)

    # Then each is applied, deleted, or absent from the plan
    def fate(kind: str, api_version: str) -> str:
        if manifests(p, kind):
            return "applied"
        return "deleted" if rollout.Ref(api_version, kind, MD) in p.delete else "absent"

    assert fate("HorizontalPodAutoscaler", "autoscaling/v2") == hpa
    assert fate("PodDisruptionBudget", "policy/v1") == pdb
    if pdb == "applied":
        budget = manifests(p, "PodDisruptionBudget")[MD]
        assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {names.LABEL_MD: MD}}}


def test_leftover_canary_service_is_deleted() -> None:
    seen = observed(ready(1), revisions=(R1,), services=frozenset({"fraud", "fraud-stable", "fraud-canary"}))
    p = plan(spec(), HEALTHY_1, seen)
    assert deleted(p) == {("Service", "fraud-canary")}


# -- idempotence ----------------------------------------------------------------------------------

STEADY: dict[str, tuple[dict[str, Any], ModelDeploymentStatus, Observed]] = {
    "healthy": (spec(), HEALTHY_1, observed(ready(1), revisions=(R1,))),
    "scaling": (spec(replicas=5), HEALTHY_1, observed(ready(1), revisions=(R1,))),
    "rolling-out": (spec("8"), rolling(60), observed(ready(1), starting(2, ready=1),
                                                     revisions=(R1, record(2, "8", PROGRESSING)))),
    "rolled-back": (spec("8"), status(Phase.DEGRADED, stable=1),
                    observed(ready(1), starting(2, replicas=0),
                             revisions=(R1, record(2, "8", FAILED, "0/3 pods ready")))),
    "stuck": (spec("8", rollout={"autoRollback": False}), rolling(700),
              observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))),
    "paused": (spec("8", paused=True), HEALTHY_1, observed(ready(1), revisions=(R1, record(2, "8", PROGRESSING)))),
    "invalid-spec": (spec(replicas=-1), HEALTHY_1, observed(ready(1), revisions=(R1,))),
    "unknown-preset": (spec(runtime={"preset": "nope"}), HEALTHY_1, observed(ready(1), revisions=(R1,))),
}


@pytest.mark.parametrize(("raw", "old", "seen"), STEADY.values(), ids=STEADY.keys())
def test_replanning_with_its_own_status_changes_nothing(raw: dict[str, Any], old: ModelDeploymentStatus,
                                                        seen: Observed) -> None:
    # Given a plan made from some earlier status
    first = plan(raw, old, seen)
    # When its own status is fed back with the same observations
    again = plan(raw, first.status, seen)
    # Then the status is identical (conditions keep their lastTransitionTime) and there are no events
    assert again.status == first.status
    assert again.events == []


def test_healthy_status_is_stable_over_time() -> None:
    seen = observed(ready(1), revisions=(R1,))
    first = plan(spec(), HEALTHY_1, seen)
    later = plan(spec(), first.status, replace(seen, now=after(86400)))
    assert later.status == first.status
    assert later.events == []
    assert [c.last_transition_time for c in later.status.conditions] == \
        [c.last_transition_time for c in HEALTHY_1.conditions]


# -- revision history -----------------------------------------------------------------------------

def history(*outcomes_: Outcome) -> tuple[RevisionRecord, ...]:
    """Revisions 1..n with models 1..n and the given outcomes."""
    return tuple(record(n, str(n), o) for n, o in enumerate(outcomes_, start=1))


@pytest.mark.parametrize(("limit", "records", "deployed", "stable", "pruned"), [
    (10, history(SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED, STABLE), {4, 5}, 5, set()),
    (3, history(SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED, STABLE), {4, 5}, 5, {1, 2}),
    (2, history(SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED, STABLE), {4, 5}, 5, {1, 2, 3}),
    (1, history(SUPERSEDED, SUPERSEDED, SUPERSEDED, SUPERSEDED, STABLE), {4, 5}, 5, {1, 2, 3}),
    (2, history(STABLE, FAILED, FAILED, FAILED), {1}, 1, {2, 3}),
    (2, history(SUPERSEDED, STABLE, FAILED), {1, 2}, 2, set()),
], ids=["within-limit", "limit-3", "limit-2-keeps-previous", "limit-1-keeps-deployed", "stable-is-oldest",
        "newest-is-kept-so-its-number-is-not-reused"])
def test_revision_history_limit(limit: int, records: tuple[RevisionRecord, ...], deployed: set[int],
                                stable: int, pruned: set[int]) -> None:
    # Given more ControllerRevisions than the limit, some still deployed
    raw = spec(str(stable), revisionHistoryLimit=limit)
    seen = observed(*(ready(n) if n == stable else starting(n, replicas=0, scale_down_at=after(-60))
                      for n in sorted(deployed)), revisions=records)
    # When planned
    p = plan(raw, status(Phase.HEALTHY, stable=stable), seen)
    # Then the oldest records not deployed are deleted, never the stable one, a deployed one or the newest
    by_name = {revision_name(MD, r.hash): r.number for r in records}
    assert {by_name[name] for kind, name in deleted(p) if kind == "ControllerRevision"} == pruned
    assert stable not in pruned and not deployed & pruned


# -- a write the API server did not take (5xx, quota, conflict): reported, phase kept, retried -----------------
def test_a_refused_write_keeps_the_phase_and_says_what_failed() -> None:
    from modeldeploy.desired.validity import retrying

    why = "the API server did not take Service fraud-stable: 403 exceeded quota: services"
    plan = retrying(HEALTHY_1, observed(ready(1)), why)
    st = plan.status
    # What serves still serves: phase, Ready and observedGeneration stay; the message says what failed
    assert st.phase == Phase.HEALTHY and st.stable_revision == 1
    assert st.observed_generation == HEALTHY_1.observed_generation
    assert st.message == why + "; retrying"
    by_type = {c.type: c for c in st.conditions}
    assert by_type["Ready"] == next(c for c in HEALTHY_1.conditions if c.type == "Ready")
    # kstatus reads the retry as work in progress, not as settled or failed
    assert (by_type["Reconciling"].status, by_type["Reconciling"].reason) == ("True", "ApplyFailed")
    assert by_type["Stalled"].status == "False"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "ApplyFailed")]
    # The same failure again (the next retry) writes no new Event
    assert retrying(st, observed(ready(1)), why).events == []


def test_after_a_refused_write_goes_through_no_event_repeats() -> None:
    from modeldeploy.desired.validity import retrying

    # Given revision 2 was rolled back, and a later write was refused, then retried
    seen = observed(ready(1), starting(2), revisions=(R1, record(2, "8", PROGRESSING)))
    first = plan(spec("8"), rolling(601), seen)
    assert reasons(first) == ["RolledBack"]
    world = world_after(first, seen, after(60))
    refused = retrying(first.status, world, "the API server did not take PodDisruptionBudget fraud: 500 "
                                            "etcdserver: request timed out")
    again = plan(spec("8"), refused.status, world)
    # Then the rollback is not announced (nor counted in the metrics) a second time
    assert again.events == []
    assert again.status.phase == Phase.DEGRADED and again.status.message == first.status.message
    assert condition(again.status, "Reconciling").status == "False"


def test_a_refused_first_write_leaves_a_new_modeldeployment_pending() -> None:
    from modeldeploy.desired.validity import retrying

    st = retrying(ModelDeploymentStatus(), observed(), "the API server did not take Service fraud: 500 range is full")
    assert st.status.phase == Phase.PENDING and st.status.observed_generation is None
    assert "range is full; retrying" in (st.status.message or "")
    assert {c.type: c.status for c in st.status.conditions}["Reconciling"] == "True"
    # (only Reconciling quotes the server: a transient fault belongs there, not in Ready or Progressing)
    assert {c.type: "range is full" in c.message for c in st.status.conditions} == {
        "Ready": False, "Progressing": False, "Degraded": False, "Reconciling": True, "Stalled": False}


def test_a_settled_client_service_stays_on_the_serving_revision_when_a_pod_turns_unready() -> None:
    # Given revision 1 serving, with one of its 3 pods unready, and the client Service on it alone
    seen = observed(starting(1, replicas=3, ready=2), revisions=(R1,), client_selects=1)
    p = plan(spec(), status(Phase.HEALTHY, stable=1), seen)
    # Then it stays so: no write each time a pod's readiness changes, and no warm old pods brought back
    assert manifests(p, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD, names.LABEL_REVISION: "1"}
    # Whereas one that still selects every revision (a rollback in progress) waits for all 3 pods to narrow
    widened = plan(spec(), status(Phase.HEALTHY, stable=1), replace(seen, client_selects=None))
    assert manifests(widened, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD}
    # And one left on another revision (the one that served before) selects every revision meanwhile
    other = plan(spec(), status(Phase.HEALTHY, stable=1), replace(seen, client_selects=2))
    assert manifests(other, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD}


def test_a_rolled_back_revision_serves_no_request_while_the_stable_one_regains_its_pods() -> None:
    # Given revision 2 mid-rollout while revision 1 has 2 of its 3 pods Ready (it lent one), and 2 misses its
    # deadline
    seen = observed(starting(1, replicas=3, ready=2), starting(2, ready=1),
                    revisions=(R1, record(2, "8", PROGRESSING)))
    p = plan(spec("8"), rolling(601), seen)
    assert reasons(p) == ["RolledBack"]
    # Then clients reach revision 1's pods alone at once, though not all are Ready yet: no request goes to the
    # failed model while its pods are scaled away
    assert manifests(p, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: MD, names.LABEL_REVISION: "1"}
