"""Canary arithmetic: how a traffic weight becomes pod counts.

With the replicas router (no mesh) a weight is the share of Ready pods behind
the one Service. The canary gets ceil(N * w / 100) of the N pods (at least one
for any w > 0), and the stable revision gives up a pod only once a canary pod
has become Ready in its place, so serving capacity never drops below N. The
effective share is canary / N: on 3 replicas a 10% step serves about 33%.
With a mesh router the weight is exact on the route, and the stable revision
keeps all N pods while the canary gets its proportional share.
"""

from __future__ import annotations

import math


def canary_pods(total: int, weight: int) -> int:
    """Canary pods for a weight: proportional, rounded up, at least one when any traffic goes there."""
    if weight <= 0 or total <= 0:
        return 0
    return min(total, max(1, math.ceil(total * weight / 100)))


def replicas_split(total: int, weight: int, canary_ready: int) -> tuple[int, int]:
    """(stable, canary) pod counts for the replicas router; stable shrinks only behind Ready canaries."""
    canary = canary_pods(total, weight)
    stable = total - min(canary, canary_ready)
    return stable, canary


def mesh_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pod counts when a mesh splits traffic: stable keeps everything."""
    return total, canary_pods(total, weight)


def effective_weight(stable_ready: int, canary_ready: int) -> int:
    """The share of Ready pods that are canary pods, in percent."""
    total = stable_ready + canary_ready
    return 0 if total == 0 else round(100 * canary_ready / total)
