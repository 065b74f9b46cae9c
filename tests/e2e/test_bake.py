"""End to end: rollout.bake keeps the previous revision's pods warm while the canary serves 100% under analysis.

What is measured is what clients reach: the Ready endpoints behind `<md>`, per revision, and the pods behind
`<md>-stable`. The webhook stands for the analysis: it passes until the test makes it fail.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from kubernetes import client

from helpers import wait_for
from modeldeployments import MD, apply, manifest, status, wait_phase
from served import Sampler, ready_endpoints


def body(namespace: str, version: str, url: str, bake: str) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=2)
    b["spec"]["rollout"] = {
        "steps": [{"setWeight": 50}, {"analysis": {}}], "bake": {"duration": bake}, "scaleDownDelaySeconds": 2,
        "analysis": {"interval": "1s", "failureLimit": 0,
                     "metrics": [{"name": "errors", "webhook": {"url": url, "timeoutSeconds": 2}}]}}
    return b


def by_revision(discovery: client.DiscoveryV1Api, namespace: str, service: str) -> dict[int, int]:
    """Ready endpoints behind a Service, per revision (its pods are named `<md>-r<N>-...`); zeros left out."""
    counts = {n: ready_endpoints(discovery, namespace, service, f"{MD}-r{n}-") for n in (1, 2)}
    return {n: c for n, c in counts.items() if c}


class Clients(Sampler):
    """What `<md>` serves, per revision, every 50 ms: the moments it changed."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        super().__init__(cluster)
        self.namespace = namespace
        self.changes: list[tuple[float, dict[int, int]]] = []

    def sample(self, api: Any, elapsed: float) -> bool:
        now = by_revision(client.DiscoveryV1Api(api), self.namespace, MD)
        if not self.changes or self.changes[-1][1] != now:
            self.changes.append((time.monotonic(), now))
        return True


def pods_of(cluster: Any, namespace: str, revision: int) -> dict[str, str]:
    """The revision's pods: name -> uid."""
    api = cluster.api_client()
    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace,
                                                         label_selector=f"modeldeploy.dev/revision={revision}")
        return {p.metadata.name: p.metadata.uid for p in pods.items if not p.metadata.deletion_timestamp}
    finally:
        api.close()


def served(cluster: Any, namespace: str, service: str) -> dict[int, int]:
    api = cluster.api_client()
    try:
        return by_revision(client.DiscoveryV1Api(api), namespace, service)
    finally:
        api.close()


def baking(cluster: Any, namespace: str) -> dict[str, Any]:
    return wait_for(lambda: status(cluster, namespace), timeout=60, message="revision 2 baking",
                    until=lambda s: s.get("bakeStartedAt") and s.get("canaryRevision") == 2)


def test_a_failure_during_the_bake_rolls_back_at_once_to_the_pods_kept_warm(cluster, namespace, operator,
                                                                            webhooks):
    failing = threading.Event()
    hook = webhooks(lambda b: 500 if failing.is_set() and b.get("revision") == "2" else 200)
    apply(cluster, body(namespace, "1", hook.url(), "5m"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", hook.url(), "5m"))
    st = baking(cluster, namespace)
    assert "baking until" in st["message"] and "revision 1 keeps its pods to roll back to" in st["message"], st
    # While it bakes, clients reach the canary's 2 pods alone, and the stable revision's 2 are Ready behind
    # `<md>-stable`, serving nothing
    wait_for(lambda: served(cluster, namespace, MD), timeout=20, message="clients on the canary alone",
             until=lambda s: s == {2: 2})
    wait_for(lambda: served(cluster, namespace, f"{MD}-stable"), timeout=20, message="stable warm at full size",
             until=lambda s: s == {1: 2})
    warm = pods_of(cluster, namespace, 1)
    # When the analysis fails during the bake
    with Clients(cluster, namespace) as clients:
        failing.set()
        began = time.monotonic()
        st = wait_phase(cluster, namespace, "Degraded", stableRevision=1, timeout=30)
        wait_for(lambda: served(cluster, namespace, MD), timeout=20, message="clients back on stable",
                 until=lambda s: s == {1: 2})
    # Then clients are back on the warm stable pods within seconds, and no pod was made for them (no cold start)
    assert "analysis failed 1 of" in st["message"], st["message"]
    assert st.get("bakeStartedAt") is None, st
    reached = next(t for t, s in clients.changes if s.get(1) == 2) - began
    alone = next(t for t, s in clients.changes if s == {1: 2}) - began
    print(f"\nbake rollback: revision 1's {len(warm)} warm pods behind `{MD}` {reached:.1f} s after the webhook began "
          f"to fail, alone {alone:.1f} s after; what `{MD}` served: {[s for _, s in clients.changes]}")
    assert alone < 10, clients.changes
    assert pods_of(cluster, namespace, 1) == warm
    # and at no moment did `<md>` have fewer Ready endpoints than its size (a selector switched straight from the
    # canary's pods to stable's left it with none for 100-200 ms)
    assert all(sum(s.values()) >= 2 for _, s in clients.changes), clients.changes


def test_a_bake_that_passes_promotes_at_its_end_on_runs_taken_during_it(cluster, namespace, operator, webhooks):
    hook = webhooks(200)
    apply(cluster, body(namespace, "1", hook.url(), "8s"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", hook.url(), "8s"))
    st = baking(cluster, namespace)
    began = datetime.fromisoformat(st["bakeStartedAt"].replace("Z", "+00:00"))
    runs_before = (st.get("analysis") or {}).get("runs", 0)
    # Still baking some seconds in: not promoted before the bake ends
    time.sleep(4)
    assert status(cluster, namespace)["canaryRevision"] == 2
    st = wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=30)
    promoted = datetime.now(tz=began.tzinfo)
    baked = (promoted - began).total_seconds()
    runs = st["analysis"]["runs"] - runs_before
    print(f"\nbake of 8s: promoted {baked:.1f} s after it began, on {runs} analysis runs taken during it")
    assert baked >= 8 - 1, baked  # bakeStartedAt keeps whole seconds
    assert runs >= 5 and st["analysis"]["failed"] == 0, st["analysis"]
