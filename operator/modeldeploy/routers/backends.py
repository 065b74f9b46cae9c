"""Weights on a list of backends inside a user's route object, as JSON Patch operations.

Both mesh routers work the same way on different shapes: a route has lists of
backends (HTTPRoute rules' backendRefs, VirtualService http routes'
destinations); in each list the operator sets the weights of the stable and
canary entries, adds the canary entry when missing, and touches nothing else.
Every patch starts with a test of the resourceVersion that was read, so a
concurrent edit by the route's owner is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
Match = Callable[[JSON], bool]


@dataclass(frozen=True)
class Backends:
    path: str  # JSON Pointer of the list, e.g. /spec/rules/0/backendRefs
    entries: list[JSON]


def guarded(resource_version: str, ops: list[JSON]) -> list[JSON]:
    """The operations, after a test of the resourceVersion they were worked out from."""
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}, *ops]


def read_weight(lists: list[Backends], stable: Match, canary: Match, default: int) -> int | None:
    """The canary's share in percent, when every list agrees; None when they differ or carry nothing."""
    seen = set()
    for b in lists:
        s = sum(e.get("weight", default) for e in b.entries if stable(e))
        c = sum(e.get("weight", default) for e in b.entries if canary(e))
        if s + c == 0:
            return None
        seen.add(round(100 * c / (s + c)))
    return seen.pop() if len(seen) == 1 else None


def set_ops(resource_version: str, lists: list[Backends], stable: Match, canary: Match, weight: int,
            canary_entry: Callable[[JSON], JSON]) -> list[JSON]:
    """Operations giving the canary `weight` percent and the stable entry the rest."""
    ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}]
    for b in lists:
        for j, e in enumerate(b.entries):
            if stable(e):
                ops.append({"op": "add", "path": f"{b.path}/{j}/weight", "value": 100 - weight})
            elif canary(e):
                ops.append({"op": "add", "path": f"{b.path}/{j}/weight", "value": weight})
        if not any(canary(e) for e in b.entries):
            first_stable = next(e for e in b.entries if stable(e))
            ops.append({"op": "add", "path": f"{b.path}/-", "value": {**canary_entry(first_stable), "weight": weight}})
    return ops


def finalize_ops(resource_version: str, lists: list[Backends], stable: Match, canary: Match) -> list[JSON]:
    """Operations removing the canary entries and giving stable everything."""
    ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}]
    for b in lists:
        # Highest index first, so a removal does not shift the paths still to come.
        for j in reversed(range(len(b.entries))):
            if canary(b.entries[j]):
                ops.append({"op": "remove", "path": f"{b.path}/{j}"})
            elif stable(b.entries[j]):
                ops.append({"op": "add", "path": f"{b.path}/{j}/weight", "value": 100})
    return ops
