"""The mesh routers' weight patches, applied to route objects: only our backends change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.routers.backends import Backends, finalize_ops, read_weight, set_ops


def apply(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A small JSON Patch (test/add/remove) for the paths these operations use."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = op["path"].lstrip("/").split("/")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "test":
            assert target[last] == op["value"], "resourceVersion test failed"
        elif op["op"] == "add" and isinstance(target, list):
            target.append(op["value"]) if last == "-" else target.insert(int(last), op["value"])
        elif op["op"] == "add":
            target[last] = op["value"]
        elif op["op"] == "remove":
            del target[int(last)]
    return doc


ROUTE = {"metadata": {"resourceVersion": "7"}, "spec": {"rules": [
    {"matches": [{"path": {"value": "/v2"}}], "backendRefs": [{"name": "fraud-stable", "port": 80}]},
    {"backendRefs": [{"name": "other", "port": 80}]},
]}}


def lists(doc: dict[str, Any]) -> list[Backends]:
    return [Backends("/spec/rules/0/backendRefs", doc["spec"]["rules"][0]["backendRefs"])]


def stable(e: dict[str, Any]) -> bool:
    return bool(e.get("name") == "fraud-stable")


def canary(e: dict[str, Any]) -> bool:
    return bool(e.get("name") == "fraud-canary")


def canary_ref(s: dict[str, Any]) -> dict[str, Any]:
    return {"name": "fraud-canary", "port": s["port"]}


@pytest.mark.parametrize("weight", [0, 10, 50, 100], ids=["0", "10", "50", "100"])
def test_set_then_read_back(weight: int) -> None:
    after = apply(ROUTE, set_ops("7", lists(ROUTE), stable, canary, weight, canary_ref))
    refs = after["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "fraud-stable", "port": 80, "weight": 100 - weight},
                    {"name": "fraud-canary", "port": 80, "weight": weight}]
    assert read_weight(lists(after), stable, canary, 1) == weight
    # Everything else is as it was
    assert after["spec"]["rules"][1] == ROUTE["spec"]["rules"][1]
    assert after["spec"]["rules"][0]["matches"] == ROUTE["spec"]["rules"][0]["matches"]


def test_setting_again_moves_weights_without_adding_a_second_canary() -> None:
    once = apply(ROUTE, set_ops("7", lists(ROUTE), stable, canary, 20, canary_ref))
    twice = apply(once, set_ops("7", lists(once), stable, canary, 60, canary_ref))
    assert [r["weight"] for r in twice["spec"]["rules"][0]["backendRefs"]] == [40, 60]


def test_finalize_removes_the_canary_and_gives_stable_everything() -> None:
    split = apply(ROUTE, set_ops("7", lists(ROUTE), stable, canary, 30, canary_ref))
    final = apply(split, finalize_ops("7", lists(split), stable, canary))
    assert final["spec"]["rules"][0]["backendRefs"] == [{"name": "fraud-stable", "port": 80, "weight": 100}]


def test_a_concurrent_edit_is_never_overwritten() -> None:
    ops = set_ops("6", lists(ROUTE), stable, canary, 30, canary_ref)  # read at an older resourceVersion
    with pytest.raises(AssertionError, match="resourceVersion"):
        apply(ROUTE, ops)


def test_unweighted_stable_only_reads_as_unknown_with_weight_zero_default() -> None:
    assert read_weight(lists(ROUTE), stable, canary, 1) == 0
    assert read_weight(lists(ROUTE), stable, canary, 0) is None
