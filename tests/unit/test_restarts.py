"""Only a pod restart is worth a reconcile; the other pod events are not."""

from __future__ import annotations

from modeldeploy.handlers.restarts import RestartCounts
from modeldeploy.reconcile.observe import pod_restarts


def pod(*counts: int, init: tuple[int, ...] = ()) -> dict:
    return {"metadata": {"name": "p"}, "status": {
        "containerStatuses": [{"restartCount": c} for c in counts],
        "initContainerStatuses": [{"restartCount": c} for c in init]}}


def test_pod_restarts_is_the_highest_count_of_any_container() -> None:
    assert pod_restarts({"metadata": {}}) == 0
    assert pod_restarts(pod(0, 2)) == 2
    assert pod_restarts(pod(1, init=(4,))) == 4  # a model download that keeps failing


def test_only_a_rise_in_the_restart_count_is_news() -> None:
    seen = RestartCounts()
    # A new pod and its status changes before it crashes: nothing to do
    assert [seen.rose("a", t, 0) for t in (None, "ADDED", "MODIFIED", "MODIFIED")] == [False] * 4
    # Each restart is news once, however many status changes come with it
    assert [seen.rose("a", "MODIFIED", n) for n in (1, 1, 1, 2, 2)] == [True, False, False, True, False]
    # Pods are told apart; a pod seen first with restarts (e.g. at start-up) is news
    assert seen.rose("b", None, 3) is True


def test_a_deleted_pod_is_forgotten() -> None:
    seen = RestartCounts()
    seen.rose("a", "MODIFIED", 5)
    assert seen.rose("a", "DELETED", 5) is False
    assert len(seen) == 0
