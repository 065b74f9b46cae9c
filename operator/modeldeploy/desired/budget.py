"""The pod budget of rollout.maxSurge, over every revision's pods. Pure.

A large model's pod holds GPUs from when it is scheduled until it is gone, and a
terminating pod still holds them. So the budget (serving size + maxSurge) counts
the pods that exist, not the replicas asked for: a revision grows only into pods
that are free now, and one that shrinks frees its share only once its pods have
gone (the next pass, woken by their deletion, sees that). The moves decide the
serving and rolling-out revisions' pods within the budget already
(weights.budgeted_split); this fits the rest around them: a superseded revision
kept warm, or a canary draining after a rollback, gives up its pods when the
revisions that serve need the room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from modeldeploy.desired.state import Pods, World


def fit(world: World, planned: Mapping[int, Pods], first: tuple[int, ...]) -> dict[int, Pods]:
    """The planned pods cut to the budget: `first` (the serving revision, revisions draining while it is short,
    then the rolling-out one) get theirs before the others (newest first); none grows past the pods free now.
    Unchanged without a budget."""
    budget = world.budget
    if budget is None:
        return dict(planned)
    order = sorted(planned, key=lambda n: (first.index(n) if n in first else len(first), -n))
    holding = {n: world.holding(n) for n in world.obs.deployments}
    # Shared out in priority order. A revision takes from what is left what it can start now; one that cannot
    # start a pod for want of room claims one more, so those after it give a pod up (else both would wait on
    # each other), but no more: their pods may be serving.
    left = budget
    out: dict[int, Pods] = {}
    for number in order:
        asked = min(planned[number].replicas, max(0, left))
        now = world.pods(number)
        granted = asked
        if asked > now:
            granted = now + max(0, min(asked - now, budget - sum(holding.values())))
        left -= granted if granted > now or asked <= now else min(asked, now + 1)
        f = world.facts(number)
        holding[number] = max(granted, f.live_pods if f else 0)
        out[number] = replace(planned[number], replicas=granted)
    return out
