"""Canary arithmetic as a table: a weight becomes pod counts (desired/weights.py), and Ready pods a share."""

from __future__ import annotations

import pytest

from modeldeploy.desired.weights import canary_pods, effective_weight, mesh_split, replicas_split


@pytest.mark.parametrize(("total", "weight", "pods"), [
    (4, 0, 0), (4, -5, 0), (0, 50, 0),
    (4, 100, 4), (4, 150, 4),
    (1, 10, 1), (1, 99, 1),  # beside the one stable pod, not instead of it
    (3, 10, 1), (3, 50, 2), (3, 90, 2),  # at least one, at most N - 1 below 100
    (4, 12, 1), (4, 13, 1), (4, 37, 1), (4, 38, 2), (4, 50, 2), (4, 62, 2), (4, 63, 3), (4, 99, 3),
    (10, 1, 1), (10, 5, 1), (10, 15, 2), (10, 25, 3), (10, 94, 9), (10, 95, 9),  # 1% still gets a pod
    (2, 50, 1), (2, 75, 1),
])
def test_canary_pods(total: int, weight: int, pods: int) -> None:
    assert canary_pods(total, weight) == pods


@pytest.mark.parametrize(("total", "weight", "canary_ready", "split"), [
    (4, 50, 0, (4, 2)),  # stable gives up nothing before a canary pod is Ready
    (4, 50, 1, (3, 2)),
    (4, 50, 2, (2, 2)),
    (4, 50, 5, (2, 2)),  # never more than the canary's share
    (4, 100, 4, (0, 4)),  # only at 100% may stable give up its last pod
    (4, 100, 3, (1, 4)),
    (4, 99, 4, (1, 3)),  # below 100% stable keeps a pod
    (1, 50, 1, (1, 1)),
    (4, 0, 0, (4, 0)),
])
def test_replicas_split(total: int, weight: int, canary_ready: int, split: tuple[int, int]) -> None:
    assert replicas_split(total, weight, canary_ready) == split


@pytest.mark.parametrize(("total", "weight", "split"), [(4, 0, (4, 0)), (4, 30, (4, 1)), (4, 100, (4, 4))])
def test_mesh_split_keeps_stable_whole(total: int, weight: int, split: tuple[int, int]) -> None:
    assert mesh_split(total, weight) == split


@pytest.mark.parametrize(("stable", "canary", "share"), [(0, 0, 0), (4, 0, 0), (3, 1, 25), (2, 2, 50),
                                                          (0, 3, 100), (2, 1, 33), (1, 2, 67)])
def test_effective_weight(stable: int, canary: int, share: int) -> None:
    assert effective_weight(stable, canary) == share
