"""A spec change while a canary holds traffic: the superseded canary drains only as the target's pods
become Ready, so the pods Ready behind `<md>` never drop by more than one."""

from __future__ import annotations

import pytest

from modeldeploy.api.status import Phase
from modeldeploy.desired import rollout
from planning import (
    PROGRESSING,
    R1,
    SETTINGS,
    STABLE,
    observed,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)

STEPS = {"steps": [{"setWeight": 50}, {"pause": {}}]}
AT_HALF = status(Phase.PAUSED, stable=1, canary=2, started_ago=30, reason="Paused", canary_weight=50, step_weight=50,
                 current_step_index=1, step_started_at=rollout.timestamp(rollout.parse_timestamp(
                     "2025-06-01T11:59:50Z")))  # type: ignore[arg-type]
R2 = record(2, "8", PROGRESSING, rollout=STEPS)


@pytest.mark.parametrize(("version", "target_ready", "want"), [
    pytest.param("7", 2, {1: 4, 2: 2}, id="revert-stable-short-2-keeps-2-canary-pods"),
    pytest.param("7", 3, {1: 4, 2: 1}, id="revert-stable-short-1-keeps-1"),
    pytest.param("9", 2, {1: 4, 2: 2, 3: 2}, id="new-version-keeps-the-old-canary-while-stable-regains"),
], )
def test_superseded_canary_drains_as_the_target_becomes_ready(version: str, target_ready: int,
                                                              want: dict[int, int]) -> None:
    # Given revision 2 at 50% of 4 pods (the replicas router: stable gave up 2 pods)
    r1 = starting(1, replicas=4, ready=target_ready)
    seen = observed(r1, ready(2, 2), revisions=(record(1, "7", STABLE, rollout=STEPS), R2))
    # When the spec goes back to revision 1, or on to a new version
    p = rollout.plan(spec(version, replicas=4, rollout=STEPS), AT_HALF, seen, SETTINGS)
    # Then the canary keeps the pods stable is short of, and an Event names what was superseded
    assert replicas(p) == want
    assert [e for e in p.events if e.reason == "Superseded"], p.events
    assert not [d for d in p.delete if d.kind == "Deployment"]


def test_superseded_canary_goes_once_the_target_is_ready() -> None:
    seen = observed(ready(1, 4), ready(2, 2), revisions=(record(1, "7", STABLE, rollout=STEPS), R2))
    old = AT_HALF.model_copy(update={"phase": Phase.HEALTHY, "canary_revision": None})
    p = rollout.plan(spec("7", replicas=4, rollout=STEPS), old, seen, SETTINGS)
    assert replicas(p) == {1: 4}
    assert [d.name for d in p.delete if d.kind == "Deployment"] == ["fraud-r2"]


def test_a_revert_after_a_full_weight_step_keeps_the_canary_serving() -> None:
    # Given a setWeight: 100 step left stable with no pods
    steps = {"steps": [{"setWeight": 100}, {"pause": {}}]}
    old = AT_HALF.model_copy(update={"canary_weight": 100, "step_weight": 100})
    seen = observed(starting(1, replicas=0), ready(2, 4),
                    revisions=(record(1, "7", STABLE, rollout=steps), record(2, "8", PROGRESSING, rollout=steps)))
    # When git reverts to revision 1, the canary keeps all 4 pods until revision 1's are Ready
    p = rollout.plan(spec("7", replicas=4, rollout=steps), old, seen, SETTINGS)
    assert replicas(p) == {1: 4, 2: 4}
    assert R1.number == 1
