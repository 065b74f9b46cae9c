"""What the operator tells a person, word for word: status messages and Events for each move of the rollout
table (docs/rollouts.md). Each names the revision and model, gives the numbers, and says what to do next; a
change to one of these texts is a change to the product, reviewed here."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.status import Phase
from modeldeploy.desired import requests
from modeldeploy.desired.validity import ready_reason
from planning import (
    FAILED,
    HEALTHY_1,
    PROGRESSING,
    R1,
    STABLE,
    SUPERSEDED,
    after,
    observed,
    plan,
    ready,
    record,
    rolling,
    spec,
    starting,
    status,
)


def said(p: Any) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in p.events]


def test_a_first_revision_deploying_then_stuck() -> None:
    first = status()
    p = plan(spec("7"), first, observed(starting(1, 3, 1), revisions=(record(1, "7", PROGRESSING),)))
    assert (p.status.phase, ready_reason(p.status)) == (Phase.PENDING, "Deploying")
    assert p.status.message == "revision 1 (model 7): 1/3 pods ready"
    stuck = plan(spec("7"), status(Phase.PENDING, started_ago=700), observed(starting(1, 3, 1), revisions=(
        record(1, "7", PROGRESSING),)))
    assert stuck.status.message == ("revision 1 (model 7): 1/3 pods ready after 700s (progressDeadlineSeconds 600); "
                                    "fix the spec")
    assert said(stuck) == [("Warning", "RolloutStuck", stuck.status.message)]


def test_healthy_scaling_and_scaling_down() -> None:
    p = plan(spec("7"), HEALTHY_1, observed(ready(1), revisions=(R1,)))
    assert p.status.message == "revision 1 (model 7): 3/3 pods ready" and said(p) == []
    short = plan(spec("7"), HEALTHY_1, observed(starting(1, 3, 2), revisions=(R1,)))
    assert (ready_reason(short.status), short.status.message) == ("Scaling", "revision 1 (model 7): 2/3 pods ready")
    # The old revision was told to scale down but its pods still run
    old = plan(spec("8"), status(Phase.HEALTHY, stable=2), observed(
        ready(2), ready(1, scale_down_at=after(-5)), revisions=(record(1, "7", SUPERSEDED), record(2, "8"))))
    assert (ready_reason(old.status), old.status.message) == (
        "ScalingDown", "revision 2 (model 8): 3/3 pods ready; revision 1 scaling to 0 pods")


def test_a_plain_rollout_its_promotion_and_its_rollback() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    going = plan(spec("8"), rolling(20), observed(ready(1), starting(2, 3, 1), revisions=revs))
    assert going.status.message == "revision 2 (model 8): 1/3 pods ready; revision 1 serves until then"
    done = plan(spec("8"), rolling(20), observed(ready(1), ready(2), revisions=revs))
    assert said(done) == [("Normal", "Promoted", "revision 2 (model 8) is stable; revision 1 scales down in 30s"),
                          ("Normal", "Healthy", "revision 2 (model 8): 3/3 pods ready")]
    late = plan(spec("8"), rolling(700), observed(ready(1), starting(2, 3, 1), revisions=revs))
    why = "1/3 pods ready after 700s (progressDeadlineSeconds 600)"
    assert said(late) == [("Warning", "RolledBack", f"revision 2 (model 8) rolled back: {why}; revision 1 serves 100%")]
    assert late.status.message == (f"revision 2 (model 8) failed: {why}; revision 1 serves. "
                                   "Change the spec to try again")


def test_a_crash_loop_names_the_pod_and_how_it_ended() -> None:
    revs = (R1, record(2, "8", PROGRESSING))
    crash = starting(2, 3, 1, max_restarts=5, crashing_pod="fraud-r2-abc", crash_exit="container server last exited 1")
    p = plan(spec("8"), rolling(20), observed(ready(1), crash, revisions=revs))
    assert p.status.message == ("revision 2 (model 8) failed: pod fraud-r2-abc restarted 5 times (limit 3): "
                                "crash-looping; container server last exited 1; revision 1 serves. "
                                "Change the spec to try again")


def test_without_auto_rollback_a_failure_is_held_for_a_person() -> None:
    off = {"autoRollback": False}
    revs = (record(1, "7", rollout=off), record(2, "8", PROGRESSING, rollout=off))
    p = plan(spec("8", rollout=off), rolling(700),
             observed(ready(1), starting(2, 3, 1), revisions=revs))
    assert p.status.message == (
        "revision 2 (model 8) at 0%: 1/3 pods ready after 700s (progressDeadlineSeconds 600); autoRollback is off, "
        "so it is held: `kubectl modeldeploy abort fraud` rolls back, `kubectl modeldeploy promote fraud` goes on")


def test_a_stopped_revision_and_an_abort() -> None:
    failed = (R1, record(2, "8", FAILED, reason="the canary crashed"))
    p = plan(spec("8"), status(Phase.DEGRADED, stable=1, reason="RolledBack"), observed(ready(1), revisions=failed))
    assert p.status.message == ("revision 2 (model 8) failed: the canary crashed; revision 1 serves. "
                                "Change the spec to try again")
    revs = (R1, record(2, "8", PROGRESSING))
    aborted = plan(spec("8"), rolling(20), observed(ready(1), starting(2, 3, 1), revisions=revs,
                                                     annotations={requests.ABORT: "t1"}))
    assert said(aborted)[0] == ("Warning", "Aborted", "revision 2 (model 8) aborted; revision 1 serves 100%")
    assert aborted.status.message == ("revision 2 (model 8) was aborted: aborted by `kubectl modeldeploy abort`; "
                                      "revision 1 serves. Change the spec to try again")


@pytest.mark.parametrize(("by", "how"), [("spec", "spec.paused is true"),
                                         ("request", "`kubectl modeldeploy resume` continues")])
def test_paused_rollouts_say_who_holds_them(by: str, how: str) -> None:
    raw = spec("8", paused=True) if by == "spec" else spec("8")
    notes = {requests.PAUSED: "true"} if by == "request" else {}
    waits = plan(raw, HEALTHY_1, observed(ready(1), revisions=(R1,), annotations=notes))
    assert waits.status.message == f"rollouts are paused: revision 2 (model 8) waits; revision 1 keeps serving ({how})"
    revs = (R1, record(2, "8", PROGRESSING))
    held = plan(raw, rolling(20), observed(ready(1), starting(2, 3, 2), revisions=revs, annotations=notes))
    assert held.status.message == f"revision 2 (model 8) held at 2 ready pods; revision 1 serves ({how})"


def test_rollback_requests_accepted_and_refused() -> None:
    revs = (record(1, "7", SUPERSEDED), record(2, "8"))
    back = plan(spec("8"), status(Phase.HEALTHY, stable=2), observed(ready(2), revisions=revs,
                                                                      annotations={requests.ROLLBACK: "1@t1"}))
    assert ("Normal", "RollbackRequested", "rolling back to revision 1 (model 7); it serves until the spec's "
            "serving template changes") in said(back)
    nowhere = plan(spec("8"), status(Phase.HEALTHY, stable=2), observed(ready(2), revisions=revs,
                                                                         annotations={requests.ROLLBACK: "9@t2"}))
    assert said(nowhere) == [("Warning", "RollbackRejected", "revision 9 is not in the history (known: 1, 2); "
                              "see `kubectl modeldeploy history fraud`")]
    failed = (R1, record(2, "8", FAILED, reason="too slow"))
    again = plan(spec("7"), status(Phase.DEGRADED, stable=1), observed(ready(1), revisions=failed,
                                                                        annotations={requests.ROLLBACK: "2@t3"}))
    assert ("Normal", "RollbackRequested", "rolling back to revision 2 (model 8); it failed before (too slow), so "
            "this is a new attempt; it serves until the spec's serving template changes") in said(again)


def test_a_promote_with_nothing_to_promote_is_spent_with_a_warning() -> None:
    p = plan(spec("7"), HEALTHY_1, observed(ready(1), revisions=(R1,), annotations={requests.PROMOTE: "t1"}))
    assert said(p) == [("Warning", "PromoteIgnored", "`kubectl modeldeploy promote` found no canary step to finish")]
    assert p.status.handled_requests == {requests.PROMOTE: "t1"}
    again = plan(spec("7"), p.status, observed(ready(1), revisions=(R1,), annotations={requests.PROMOTE: "t1"}))
    assert said(again) == []


STEPS = [{"setWeight": 25}, {"pause": {"duration": "1m"}}, {"pause": {}}]


def canary_world(*deps: Any, **more: Any) -> Any:
    block = {"steps": STEPS}
    return observed(*deps, revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                      record(2, "8", PROGRESSING, replicas=4, rollout=block)), **more)


def at_step(index: int, weight: int) -> Any:
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=10, reason="Canary", step_weight=weight,
                  canary_weight=weight, current_step_index=index,
                  step_started_at=status(started_ago=10).rollout_started_at)


def test_canary_steps_say_what_they_wait_for() -> None:
    raw = spec("8", replicas=4, rollout={"steps": STEPS})
    first = plan(raw, HEALTHY_1, canary_world(ready(1, 4)))
    assert first.status.message == ("revision 2 (model 8) at 25% (step 1/3: waiting for 1 canary pods and the "
                                    "traffic split)")
    pause = plan(raw, at_step(0, 25), canary_world(ready(1, 3), ready(2, 1)))
    assert pause.status.message == "revision 2 (model 8) at 25% (step 2/3: pause 1m)"
    open_pause = plan(raw, at_step(2, 25), canary_world(ready(1, 3), ready(2, 1)))
    assert (open_pause.status.phase, open_pause.status.message) == (
        Phase.PAUSED, "revision 2 (model 8) at 25% (step 3/3: paused until `kubectl modeldeploy promote fraud`)")
    final = plan(raw, at_step(2, 25), canary_world(ready(1, 3), ready(2, 1), annotations={requests.PROMOTE: "t"}))
    assert final.status.message == "revision 2 (model 8) at 100% (final: promoting: 1/4 pods ready)"
    held = plan(raw, at_step(1, 25), canary_world(ready(1, 3), ready(2, 1), annotations={requests.PAUSED: "true"}))
    assert held.status.message == ("revision 2 (model 8) at 25%; held by a pause request "
                                   "(`kubectl modeldeploy resume fraud` continues)")


def test_a_superseded_canary_is_named_with_its_weight_and_why() -> None:
    raw = spec("9", replicas=4, rollout={"steps": STEPS})
    p = plan(raw, at_step(1, 25), canary_world(ready(1, 3), ready(2, 1)))
    assert ("Normal", "Superseded", "revision 2 (model 8) at 25% superseded by revision 3 (model 9): the spec "
            "changed; its pods drain as revision 3's become Ready") in said(p)
    back = plan(spec("7", replicas=4, rollout={"steps": STEPS}), at_step(1, 25), canary_world(ready(1, 3), ready(2, 1)))
    assert ("Normal", "Superseded", "revision 2 (model 8) at 25% superseded by revision 1 (model 7): the spec went "
            "back to it; its pods drain as revision 1's become Ready") in said(back)


def test_a_step_deadline_says_which_step_and_how_long() -> None:
    raw = spec("8", replicas=4, rollout={"steps": STEPS, "progressDeadlineSeconds": 60})
    old = at_step(0, 25).model_copy(update={"step_started_at": status(started_ago=90).rollout_started_at})
    p = plan(raw, old, canary_world(ready(1, 3), starting(2, 1, 0)))
    assert said(p)[0] == ("Warning", "RolledBack", "revision 2 (model 8) rolled back: step 1 made no progress in 90s "
                          "(progressDeadlineSeconds 60): 0 canary pods ready; revision 1 serves 100%")
