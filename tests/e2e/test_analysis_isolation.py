"""End to end: analysis runs off the reconcile workers, so endpoints that never answer delay nobody else."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from helpers import wait_for
from modeldeployments import MD, apply, get, manifest, status, wait_phase
from served import Sampler

HOLES = 8  # more than the operator's reconcile workers (6 on 2 CPUs): they would all be held


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL on loopback whose port takes connections and never answers (nothing ever accepts them)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"
    finally:
        sock.close()


def named(body: dict[str, Any], name: str) -> dict[str, Any]:
    b = copy.deepcopy(body)
    b["metadata"]["name"] = name
    return b


class Timeline(Sampler):
    """When revision 2's pods first reached the restart limit, and when the rollback was (sampled every 50 ms)."""

    def __init__(self, cluster: Any, namespace: str, limit: int = 3) -> None:
        super().__init__(cluster)
        self.namespace, self.limit = namespace, limit
        self.limit_at: float | None = None
        self.rolled_back_at: float | None = None

    def sample(self, api: Any, elapsed: float) -> bool:
        pods = client.CoreV1Api(api).list_namespaced_pod(
            self.namespace, label_selector=f"modeldeploy.dev/name={MD},modeldeploy.dev/revision=2")
        restarts = max([cs.restart_count for p in pods.items for cs in p.status.container_statuses or []], default=0)
        now = time.monotonic()
        if self.limit_at is None and restarts >= self.limit:
            self.limit_at = now
        md = client.CustomObjectsApi(api).get_namespaced_custom_object("modeldeploy.dev", "v1alpha1", self.namespace,
                                                                      "modeldeployments", MD)
        if (md.get("status") or {}).get("phase") == "Degraded":
            self.rolled_back_at = now
        return self.rolled_back_at is None


def test_endpoints_that_never_answer_do_not_delay_another_models_rollback(cluster, namespace, operator, black_hole):
    steps = [{"setWeight": 25}, {"analysis": {}}, {"pause": {}}]
    hole = manifest(namespace, version="1", replicas=2)
    hole["spec"]["rollout"] = {"steps": steps, "analysis": {"interval": "1s", "metrics": [
        {"name": "never", "webhook": {"url": black_hole, "timeoutSeconds": 300}}]}}
    # Given models whose canaries are judged by an endpoint that never answers (300 s timeouts) ...
    for i in range(HOLES):
        apply(cluster, named(hole, f"hole-{i}"))
    fraud = manifest(namespace, version="1", replicas=2)
    fraud["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {"duration": "60s"}}]}
    apply(cluster, fraud)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    for i in range(HOLES):
        wait_for(lambda i=i: get(cluster, namespace, "modeldeployment", f"hole-{i}").get("status") or {},
                 timeout=30, until=lambda s: s.get("phase") == "Healthy", message=f"hole-{i} serving")
    for i in range(HOLES):
        b = named(hole, f"hole-{i}")
        b["spec"]["model"] = {"uri": "s3://models/fraud/v2", "version": "2"}
        apply(cluster, b)
    # ... each with a run going (its canary served, its first run due 1 s later)
    time.sleep(4)
    stuck = [json.dumps(get(cluster, namespace, "modeldeployment", f"hole-{i}")["status"].get("analysis"))
             for i in range(HOLES)]
    assert all(s == "null" for s in stuck), stuck  # no run has finished: they are all waiting on the hole
    # When another model's canary crash-loops
    bad = manifest(namespace, version="2", replicas=2)
    bad["spec"]["rollout"] = fraud["spec"]["rollout"]
    bad["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "crash-loop"}}}
    with Timeline(cluster, namespace) as timeline:
        apply(cluster, bad)
        timeline.wait(timeout=90)
    assert timeline.rolled_back_at is not None, f"not rolled back; status {status(cluster, namespace)}"
    # Then it is rolled back as soon as its pods say so, as if the other models were not there
    assert timeline.limit_at is not None, "rolled back before the restart limit was seen"
    reaction = timeline.rolled_back_at - timeline.limit_at
    print(f"rollback {reaction:.1f} s after the restart limit, with {HOLES} analysis runs hanging")
    assert reaction < 5, reaction
