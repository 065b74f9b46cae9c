"""Plain rollouts (no steps) and the planner's own words: holds, promotions, supersessions, the served share."""

from __future__ import annotations

import pytest

from modeldeploy.api import names
from modeldeploy.api.status import Phase
from modeldeploy.desired import requests, rollout
from planning import (
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    SUPERSEDED,
    after,
    annotations,
    observed,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)


def rolling(started_ago: float = 30) -> object:
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=started_ago)


@pytest.mark.parametrize(("how", "raw", "ann"), [
    ("spec.paused is true", spec("8", paused=True), {}),
    ("`kubectl modeldeploy resume` continues", spec("8"), {requests.PAUSED: "true"}),
])
def test_a_paused_plain_rollout_in_flight_holds_both_revisions(how: str, raw: dict, ann: dict) -> None:
    seen = observed(ready(1), starting(2, ready=1), revisions=(record(1, "7"), record(2, "8", PROGRESSING)),
                    annotations=ann)
    p = rollout.plan(raw, rolling(), seen, SETTINGS)
    assert replicas(p) == {1: 3, 2: 3}
    assert (p.status.phase, p.status.stable_revision, p.status.canary_revision) == (Phase.PAUSED, 1, 2)
    assert p.status.message == f"revision 2 (model 8) held at 1 ready pods; revision 1 serves ({how})"
    assert p.status.rollout_started_at is None  # the deadline starts again on resume


def test_a_paused_new_revision_waits_and_says_so() -> None:
    seen = observed(ready(1), revisions=(record(1, "7"),))
    p = rollout.plan(spec("8", paused=True), status(Phase.HEALTHY, stable=1), seen, SETTINGS)
    assert p.status.message == ("rollouts are paused: revision 2 (model 8) waits; revision 1 keeps serving "
                                "(spec.paused is true)")


@pytest.mark.parametrize("delay", [0, 45])
def test_promotion_says_which_revision_is_stable_and_when_the_old_one_goes(delay: int) -> None:
    seen = observed(ready(1), ready(2), revisions=(record(1, "7"), record(2, "8", PROGRESSING)))
    p = rollout.plan(spec("8", rollout={"scaleDownDelaySeconds": delay}), rolling(), seen, SETTINGS)
    (promoted,) = [e for e in p.events if e.reason == "Promoted"]
    assert promoted.message == f"revision 2 (model 8) is stable; revision 1 scales down in {delay}s"
    # The old revision records when it stopped serving, which picks the one kept warm later
    assert annotations(p, 1)[names.ANN_SUPERSEDED_AT] == rollout.timestamp(NOW)
    assert annotations(p, 1)[names.ANN_SCALE_DOWN_AT] == rollout.timestamp(after(delay))


def test_a_kept_revision_keeps_when_it_stopped_serving() -> None:
    earlier = after(-100)
    seen = observed(starting(1, replicas=3, ready=3, scale_down_at=after(10), superseded_at=earlier), ready(2),
                    revisions=(record(1, "7", SUPERSEDED), record(2, "8", STABLE)))
    p = rollout.plan(spec("8"), status(Phase.HEALTHY, stable=2), seen, SETTINGS)
    assert annotations(p, 1)[names.ANN_SUPERSEDED_AT] == rollout.timestamp(earlier)


@pytest.mark.parametrize(("goal", "why"), [("7", "the spec went back to it"), ("9", "the spec changed")])
def test_the_superseded_event_names_the_canary_its_weight_and_why(goal: str, why: str) -> None:
    steps = {"steps": [{"setWeight": 50}, {"pause": {}}]}
    old = status(Phase.PAUSED, stable=1, canary=2, started_ago=30, reason="Paused", canary_weight=50, step_weight=50,
                 current_step_index=1)
    seen = observed(ready(1, 2), ready(2, 2), revisions=(record(1, "7", STABLE, replicas=4, rollout=steps),
                                                         record(2, "8", PROGRESSING, replicas=4, rollout=steps)))
    p = rollout.plan(spec(goal, replicas=4, rollout=steps), old, seen, SETTINGS)
    (said,) = [e.message for e in p.events if e.reason == "Superseded"]
    target = "1 (model 7)" if goal == "7" else "3 (model 9)"
    number = target.split()[0]
    assert said == (f"revision 2 (model 8) at 50% superseded by revision {target}: {why}; its pods drain as "
                    f"revision {number}'s become Ready")


def test_a_superseded_plain_rollout_names_no_weight() -> None:
    seen = observed(ready(1), starting(2, ready=1), revisions=(record(1, "7"), record(2, "8", PROGRESSING)))
    p = rollout.plan(spec("9"), rolling(), seen, SETTINGS)
    (said,) = [e.message for e in p.events if e.reason == "Superseded"]
    assert said.startswith("revision 2 (model 8) superseded by revision 3 (model 9): the spec changed")


@pytest.mark.parametrize(("stable_ready", "canary_pods", "kept"), [(3, 2, 0), (1, 3, 2), (2, 1, 1), (0, 3, 3)])
def test_a_rolled_back_canary_keeps_only_what_stable_is_short_of(stable_ready: int, canary_pods: int,
                                                                 kept: int) -> None:
    seen = observed(starting(1, replicas=3, ready=stable_ready), ready(2, canary_pods, max_restarts=5,
                                                                       crashing_pod="fraud-r2-x"),
                    revisions=(record(1, "7"), record(2, "8", PROGRESSING)))
    p = rollout.plan(spec("8"), rolling(), seen, SETTINGS)
    assert p.status.phase == Phase.DEGRADED and replicas(p) == {1: 3, 2: kept}, (p.status.message, replicas(p))
