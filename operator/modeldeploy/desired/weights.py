"""Canary arithmetic: how a traffic weight becomes pod counts.

With the replicas router (no mesh) a weight is the share of Ready pods behind
the one Service. Below 100% the canary gets the nearest whole number of the N
pods, at least one and at most N - 1, so the stable revision always keeps a
pod; it gives up a pod only once a canary pod has become Ready in its place, so
serving capacity never drops below N. The effective share is canary / N: on 3
replicas a 10% step serves about 33%. With a single replica the canary's pod
comes in addition to the stable one (50%).
With a mesh router the weight is exact on the route, and the stable revision
keeps all N pods while the canary gets its proportional share.

With a pod budget (rollout.maxSurge = s) both revisions hold at most N + s pods
between them. The new revision starts at most max(s, 1) pods beyond its Ready
ones, and the stable revision gives up what that needs: nothing while s covers
it, and with s = 0 one pod before each new one (one pod fewer serves meanwhile).
"""

from __future__ import annotations

import math


def canary_pods(total: int, weight: int) -> int:
    """Canary pods for a weight: the nearest share of N, at least one, and all N only at 100%."""
    if weight <= 0 or total <= 0:
        return 0
    if weight >= 100:
        return total
    if total == 1:
        return 1  # beside the one stable pod, not instead of it
    return min(total - 1, max(1, math.floor(total * weight / 100 + 0.5)))


def replicas_split(total: int, weight: int, canary_ready: int) -> tuple[int, int]:
    """(stable, canary) pod counts for the replicas router; stable shrinks only behind Ready canaries,
    and keeps at least one pod until the canary takes all the traffic."""
    canary = canary_pods(total, weight)
    stable = total - min(canary, canary_ready)
    if weight < 100:
        stable = max(stable, 1)
    return stable, canary


def mesh_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pod counts when a mesh splits traffic: stable keeps everything."""
    return total, canary_pods(total, weight)


def effective_weight(stable_ready: int, canary_ready: int) -> int:
    """The share of Ready pods that are canary pods, in percent."""
    total = stable_ready + canary_ready
    return 0 if total == 0 else round(100 * canary_ready / total)


def budgeted_split(total: int, surge: int, goal: int, ready: int, keeps_all: bool, has: int = 0) -> tuple[int, int]:
    """(stable, new) pod counts when both may hold at most total + surge pods: the new revision wants `goal`
    pods, has `has` and `ready` Ready ones; stable keeps all of `total` (`keeps_all`, a mesh) or only what Ready
    new pods do not yet replace, and less when that leaves the new revision no room for its next pod.

    The new revision never gives back pods it has (short of its goal): a Deployment reads 0 Ready pods for a
    moment after each change of its spec, and taking a starting pod back then would delete it, again and again."""
    new = min(goal, max(has, ready + max(surge, 1)))
    stable = total if keeps_all else total - min(goal, ready)
    return max(0, min(stable, total + surge - new)), new
