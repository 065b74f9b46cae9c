"""End to end: rollouts within a GPU budget (rollout.maxSurge), on the KWOK node that advertises 4 GPUs.

What is measured is what the scheduler sees: every pod of the namespace, from the API server's own watch
stream (no moment between two events is missed), summed over the GPUs their containers ask for, from when a
pod is created until it is gone (a terminating pod still holds its GPU).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from kubernetes import client, watch

from helpers import wait_for
from modeldeployments import MD, apply, events, manifest, status, wait_phase
from served import ServedMonitor

GPU = "nvidia.com/gpu"
NODE_GPUS = 4  # kwok-node-2 (tests/cluster/nodes.yaml), the only node with any


def gpu_model(namespace: str, version: str, surge: int | None, steps: list[dict[str, Any]] | None = None,
              deadline: int = 60) -> dict[str, Any]:
    body = manifest(namespace, version=version, replicas=3)
    body["spec"]["runtime"]["resources"] = {"limits": {GPU: "1"}}
    rollout: dict[str, Any] = {"scaleDownDelaySeconds": 2, "progressDeadlineSeconds": deadline}
    if surge is not None:
        rollout["maxSurge"] = surge
    if steps is not None:
        rollout["steps"] = steps
    body["spec"]["rollout"] = rollout
    return body


def gpus_of(pod: Any) -> int:
    return sum(int(((c.resources and c.resources.limits) or {}).get(GPU, 0)) for c in pod.spec.containers)


class GpuMonitor:
    """The GPUs the namespace's pods ask for, after every change the API server reports; keeps the most."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.namespace = namespace
        self._api = cluster.api_client()
        self._core = client.CoreV1Api(self._api)
        self._watch = watch.Watch()
        self.pods: dict[str, int] = {}
        self.most = 0
        self.history: list[str] = []  # each change: the GPUs asked for after it, and what changed
        self.unschedulable: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started, self._stopping = threading.Event(), threading.Event()
        self.broken = ""  # a watch that broke saw only part of the rollout

    def _see(self, kind: str, pod: Any) -> None:
        name = pod.metadata.name
        if kind == "DELETED" or pod.status.phase in ("Succeeded", "Failed"):
            self.pods.pop(name, None)
        else:
            self.pods[name] = gpus_of(pod)
        self.most = max(self.most, sum(self.pods.values()))
        gone = " (terminating)" if pod.metadata.deletion_timestamp else ""
        self.history.append(f"{sum(self.pods.values())} GPUs: {kind} {name} {pod.status.phase}{gone}")
        if any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in pod.status.conditions or []):
            self.unschedulable.add(name)

    def _run(self) -> None:
        listed = self._core.list_namespaced_pod(self.namespace)
        for pod in listed.items:
            self._see("ADDED", pod)
        self._started.set()
        try:
            for event in self._watch.stream(self._core.list_namespaced_pod, self.namespace,
                                            resource_version=listed.metadata.resource_version, timeout_seconds=300):
                self._see(event["type"], event["object"])
        except Exception as exc:  # the stream also ends so when the test stops it
            if not self._stopping.is_set():
                self.broken = f"the pod watch failed: {exc!r}"

    def __enter__(self) -> GpuMonitor:
        self._thread.start()
        assert self._started.wait(30), "the pod watch did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._watch.stop()
        self._api.close()
        self._thread.join(timeout=5)


def one_serves(revision: int) -> Any:
    return lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == revision \
        and not s.get("canaryRevision") and s.get("readyReplicas") == 3 and s.get("replicas") == 3


CANARY = [{"setWeight": 34}, {"pause": {"duration": "1s"}}, {"setWeight": 67}, {"pause": {"duration": "1s"}}]


@pytest.mark.parametrize(("surge", "steps"), [(1, None), (0, None), (0, CANARY)],
                         ids=["surge-1", "in-place", "in-place-canary"])
def test_a_rollout_never_asks_for_more_gpus_than_its_budget(cluster, namespace, operator, surge, steps):
    # Given revision 1 serves 3 pods of 1 GPU each, on a node with 4 GPUs
    apply(cluster, gpu_model(namespace, "1", surge, steps))
    wait_for(lambda: status(cluster, namespace), timeout=60, until=one_serves(1), message="revision 1 serves")
    # When revision 2 rolls out within maxSurge
    with GpuMonitor(cluster, namespace) as gpus, ServedMonitor(cluster, namespace, MD) as served:
        apply(cluster, gpu_model(namespace, "2", surge, steps))
        wait_for(lambda: status(cluster, namespace), timeout=90, until=one_serves(2), message="revision 2 serves")
        wait_for(lambda: dict(gpus.pods), timeout=30, until=lambda p: sum(p.values()) == 3,
                 message="revision 1's pods gone")
    # Then the pods asked for at most 3 + maxSurge GPUs at any moment, and none waited for a GPU
    assert not gpus.broken, gpus.broken
    assert gpus.most <= 3 + surge, "\n".join(gpus.history)
    assert gpus.most == 3 + surge, "\n".join(gpus.history)  # and the budget was used: the monitor saw the surge
    assert not gpus.unschedulable, gpus.unschedulable
    # And clients lost one Ready endpoint at most, and only in place (maxSurge 0)
    assert served.lowest >= 3 - (1 if surge == 0 else 0), served.dips(3)


def test_without_a_budget_pods_that_find_no_gpu_are_reported_in_the_schedulers_words(cluster, namespace, operator):
    # Given revision 1 serves 3 pods of 1 GPU each, on a node with 4 GPUs, and no maxSurge
    apply(cluster, gpu_model(namespace, "1", None, deadline=15))
    wait_for(lambda: status(cluster, namespace), timeout=60, until=one_serves(1), message="revision 1 serves")
    # When revision 2 asks for 3 more GPUs beside them
    apply(cluster, gpu_model(namespace, "2", None, deadline=15))
    # Then status says which pod waits, and why, in the scheduler's words
    st = wait_for(lambda: status(cluster, namespace), timeout=30, message="the pods waiting for GPUs reported",
                  until=lambda s: "cannot be scheduled" in (s.get("message") or ""))
    assert re.match(r"revision 2 \(model 2\): [01]/3 pods ready; pod fraud-r2-\S+ cannot be scheduled: "
                    rf"0/\d+ nodes are available: .*Insufficient {GPU}", st["message"]), st["message"]
    assert any(c["type"] == "Progressing" and c["reason"] == "PodsCannotStart" for c in st["conditions"]), st
    # And at the progress deadline revision 2 is rolled back, and revision 1 serves on with all its pods
    st = wait_phase(cluster, namespace, "Degraded", timeout=40, stableRevision=1)
    assert "revision 2 (model 2) failed: 1/3 pods ready" in st["message"], st["message"]
    wait_for(lambda: status(cluster, namespace), timeout=30, until=lambda s: s.get("readyReplicas") == 3,
             message="revision 1 keeps its 3 pods")
    assert any(e.startswith("revision 2 (model 2) rolled back") for e in events(cluster, namespace, "RolledBack"))
