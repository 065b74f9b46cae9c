"""Pod restarts: only a rise is worth a reconcile, and a crash loop is told with the container and its exit."""

from __future__ import annotations

from modeldeploy.handlers.restarts import RestartCounts
from modeldeploy.reconcile.observe import deployments, last_exit, pod_restarts


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
    assert [seen.matters("a", t, 0) for t in (None, "ADDED", "MODIFIED", "MODIFIED")] == [False] * 4
    # Each restart is news once, however many status changes come with it
    assert [seen.matters("a", "MODIFIED", n) for n in (1, 1, 1, 2, 2)] == [True, False, False, True, False]
    # Pods are told apart; a pod seen first with restarts (e.g. at start-up) is news
    assert seen.matters("b", None, 3) is True


def test_a_deleted_pod_is_forgotten_and_news() -> None:
    seen = RestartCounts()
    seen.matters("a", "MODIFIED", 5)
    assert seen.matters("a", "DELETED", 5) is True
    assert len(seen) == 0


def crashed(name: str, restarts: int, **terminated: object) -> dict:
    return {"name": name, "restartCount": restarts, "lastState": {"terminated": terminated} if terminated else {}}


def test_how_a_container_last_ended_is_told_with_its_name() -> None:
    assert last_exit(crashed("server", 3, exitCode=137, reason="OOMKilled")) == \
        "container server last exited 137 (OOMKilled)"
    assert last_exit(crashed("storage-initializer", 2, exitCode=1, reason="Error",
                             message="403 Forbidden:\n  s3://models/fraud/v9")) == \
        "container storage-initializer last exited 1 (Error): 403 Forbidden: s3://models/fraud/v9"
    assert last_exit(crashed("server", 0)) == "container server"


def test_the_crash_loop_names_the_pod_and_the_container_that_restarts_most() -> None:
    pods = [
        {"metadata": {"name": "fraud-r2-a", "labels": {"modeldeploy.dev/revision": "2"}},
         "status": {"initContainerStatuses": [crashed("storage-initializer", 4, exitCode=1, reason="Error")],
                    "containerStatuses": [crashed("server", 0)]}},
        {"metadata": {"name": "fraud-r2-b", "labels": {"modeldeploy.dev/revision": "2"}},
         "status": {"containerStatuses": [crashed("server", 1, exitCode=2, reason="Error")]}},
    ]
    dep = {"metadata": {"name": "fraud-r2", "generation": 1, "labels": {"modeldeploy.dev/revision": "2"}},
           "spec": {"replicas": 2}, "status": {"observedGeneration": 1}}
    facts = deployments([dep], pods)[2]
    assert (facts.max_restarts, facts.crashing_pod) == (4, "fraud-r2-a")
    assert facts.crash_loop(5) is None
    assert facts.crash_loop(3) == ("pod fraud-r2-a restarted 4 times (limit 3): crash-looping; "
                                   "container storage-initializer last exited 1 (Error)")


def test_a_change_in_why_a_pod_cannot_start_is_news() -> None:
    # The rollout waits for pods on events, not by polling: the reason shown in status must follow the pod's.
    seen = RestartCounts()
    assert seen.matters("a", "ADDED", 0) is False
    assert seen.matters("a", "MODIFIED", 0, "pod a: container server ErrImagePull") is True
    assert seen.matters("a", "MODIFIED", 0, "pod a: container server ErrImagePull") is False
    assert seen.matters("a", "MODIFIED", 0, "pod a: container server ImagePullBackOff") is True
    assert seen.matters("a", "MODIFIED", 0) is True  # it started after all
