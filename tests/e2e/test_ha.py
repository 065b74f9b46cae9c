"""End to end: two operator replicas with `run --peering`; only one ever acts, and a standby takes over.

Which replica acts is read from each process's own Prometheus counter
`modeldeploy_reconciles_total`: a standby's stays where it was.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from helpers import holds_for, wait_for
from modeldeploy.handlers.peering import LIFETIME  # how long a killed replica's keep-alive still counts
from modeldeployments import apply, get, manifest, status, wait_phase

PEERING = "modeldeploy-ha"
PAUSED = "Pausing operations in favour of"  # kopf's log line when an active replica sees a higher one
STANDING_BY = "standing by while"  # the operator's log line when it starts next to a higher one


@pytest.fixture
def replicas(peering_crds: None, start_operator: Any) -> Any:
    """Start an operator replica of this test's namespace in peering PEERING."""

    def start(tag: str, priority: int | None = None) -> Any:
        args = ["--peering", PEERING] + (["--priority", str(priority)] if priority is not None else [])
        return start_operator(*args, tag=tag)

    return start


def reconciles(op: Any) -> float:
    """How many reconciles this replica has run, whatever their result."""
    return sum(op.metric("modeldeploy_reconciles_total", result=r) for r in ("changed", "unchanged", "error"))


def log_of(op: Any) -> str:
    return str(op.log_path.read_text(errors="replace"))


def peers(cluster: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """The peering object's status: one entry per live replica, written by kopf."""
    obj = get(cluster, namespace, "kopfpeerings.kopf.dev", PEERING)
    return dict((obj or {}).get("status") or {})


def identity_of(op: Any, entries: dict[str, dict[str, Any]]) -> str:
    """A replica's peering identity: `<host>/<pid>/<random>` (no POD_ID outside a pod)."""
    assert op.proc is not None
    return next(i for i in entries if i.split("/")[1:2] == [str(op.proc.pid)])


def wait_peers(cluster: Any, namespace: str, count: int) -> dict[str, dict[str, Any]]:
    return wait_for(lambda: peers(cluster, namespace), timeout=20, until=lambda p: len(p) == count,
                    message=f"{count} replica(s) in the peering object")


def holds_past_a_keepalive(cluster: Any, namespace: str, predicate: Any, until: Any, message: str) -> None:
    """`holds_for`, until every replica has renewed its keep-alive once more, and 2 s after.

    The timer that could make a paused replica act is kopf's own: it decides again which replica acts on every
    change of the peering object (a replica renews its entry every LIFETIME - 10 to LIFETIME - 5 s), and with no
    change at all it wakes at the blocking peer's deadline (lastseen + LIFETIME). A fixed window of a few seconds
    can end before any of that; this one lasts past the decisions taken on every peer's next renewal.
    """
    renewed_from = {identity: entry.get("lastseen") for identity, entry in peers(cluster, namespace).items()}
    assert renewed_from, "no replica in the peering object"

    def observe() -> tuple[Any, bool]:
        now = peers(cluster, namespace)
        return predicate(), all(now.get(i, {}).get("lastseen") not in (None, seen) for i, seen in renewed_from.items())

    def still(seen: tuple[Any, bool]) -> bool:
        assert until(seen[0]), f"{message}: stopped holding; observed: {seen[0]!r}"
        return seen[1]

    wait_for(observe, timeout=LIFETIME + 5, until=still, message=f"{message} (until every keep-alive is renewed)")
    holds_for(predicate, duration=2, until=until, message=message)


def test_only_the_higher_priority_replica_acts_and_the_standby_takes_over_when_it_is_killed(
        cluster, namespace, replicas):
    # Given two replicas: the one with the higher priority starts first
    high = replicas("high", priority=200)
    low = replicas("low", priority=100)
    entries = wait_peers(cluster, namespace, 2)
    assert sorted(e["priority"] for e in entries.values()) == [100, 200]
    assert all(e["lifetime"] == LIFETIME for e in entries.values())
    # When a ModelDeployment is applied
    apply(cluster, manifest(namespace, version="1"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # Then only the higher-priority replica reconciles; the other is paused by kopf
    assert reconciles(high) > 0
    holds_past_a_keepalive(cluster, namespace, lambda: reconciles(low), until=lambda n: n == 0,
                           message="the standby does nothing")
    assert STANDING_BY in log_of(low) and STANDING_BY not in log_of(high)

    # When the active replica is killed (no goodbye: its keep-alive just stops) and the model changes
    killed = time.monotonic()
    high.kill()
    apply(cluster, manifest(namespace, version="2"))
    # Then the standby takes over within the keep-alive lifetime, and rolls the change out
    wait_for(lambda: reconciles(low), timeout=LIFETIME + 15, until=lambda n: n > 0,
             message="the standby reconciles")
    first = time.monotonic() - killed
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=2)
    healthy = time.monotonic() - killed
    print(f"\ntakeover: active replica SIGKILLed -> standby's first reconcile {first:.1f} s, "
          f"-> revision 2 Healthy {healthy:.1f} s (peering lifetime {LIFETIME} s)")
    assert first < LIFETIME + 5
    # And the dead replica's entry is cleaned out of the peering object
    wait_for(lambda: peers(cluster, namespace), timeout=10, until=lambda p: len(p) == 1,
             message="only the live replica is left in the peering object")


def test_a_replica_that_loses_the_lead_stops_acting_even_on_its_own_timers(cluster, namespace, replicas):
    steps = [{"setWeight": 50}, {"pause": {"duration": "10s"}}]
    body = manifest(namespace, version="1", replicas=2)
    body["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 2}
    # Given one replica, alone and so active, in the middle of a timed pause step
    low = replicas("low", priority=100)
    apply(cluster, body)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    v2 = manifest(namespace, version="2", replicas=2)
    v2["spec"]["rollout"] = body["spec"]["rollout"]
    apply(cluster, v2)
    wait_for(lambda: status(cluster, namespace), timeout=20,
             until=lambda st: st.get("canaryWeight") == 50 and "pause 10s" in st.get("message", ""),
             message="canary at 50%, in its 10 s pause (a timer of the active replica ends it)")
    # When a replica with a higher priority starts
    high = replicas("high", priority=200)
    wait_for(lambda: reconciles(high), timeout=20, until=lambda n: n > 0, message="the new replica reconciles")
    # Then kopf pauses the old one ...
    wait_for(lambda: PAUSED in log_of(low), timeout=10, message="kopf paused the old replica")
    before = reconciles(low)
    # ... its own pending timers do not act either, and the new one finishes the rollout alone
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=2)
    holds_past_a_keepalive(cluster, namespace, lambda: reconciles(low), until=lambda n: n == before,
                           message="the old replica does not reconcile any more")
    assert "is standby" in log_of(low), "the old replica refused at least one trigger (an event or a timer)"
    assert status(cluster, namespace).get("canaryRevision") is None


def test_replicas_without_priority_draw_distinct_ones_and_exactly_one_acts(cluster, namespace, replicas):
    # Given two replicas started without --priority
    first, second = replicas("a"), replicas("b")
    entries = wait_peers(cluster, namespace, 2)
    # Then they drew different priorities
    priority = {op: entries[identity_of(op, entries)]["priority"] for op in (first, second)}
    assert priority[first] != priority[second], entries
    # And only the one with the higher priority acts
    apply(cluster, manifest(namespace))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    active, standby = sorted((first, second), key=lambda op: priority[op], reverse=True)
    assert reconciles(active) > 0 and reconciles(standby) == 0


def test_equal_explicit_priorities_are_warned_about_and_freeze_until_one_goes(cluster, namespace, replicas):
    # Given a replica with priority 7
    first = replicas("a", priority=7)
    wait_peers(cluster, namespace, 1)
    # When a second replica is started with the same priority (a misconfiguration)
    second = replicas("b", priority=7)
    # Then it warns at start, and kopf pauses both (by design: it cannot tell which should act)
    assert "already run(s) with priority 7" in log_of(second)
    for op in (first, second):
        wait_for(lambda op=op: log_of(op), timeout=20,
                 until=lambda text: "Possibly conflicting operators with the same priority" in text,
                 message="kopf warned about the same priority")
    apply(cluster, manifest(namespace))
    holds_past_a_keepalive(cluster, namespace, lambda: status(cluster, namespace), until=lambda st: not st.get("phase"),
                           message="nobody acts while two replicas share a priority")
    # When one of them stops (cleanly: it takes its entry out), the other resumes at once
    stopped = time.monotonic()
    second.stop()
    wait_for(lambda: reconciles(first), timeout=10, until=lambda n: n > 0, message="the other one reconciles")
    print(f"\nhandover after a clean stop (SIGTERM): {time.monotonic() - stopped:.1f} s to the first reconcile")
    wait_phase(cluster, namespace, "Healthy", timeout=30, stableRevision=1)


def test_a_cluster_wide_operator_gets_its_cluster_peering_object_made(cluster, peering_crds):
    # `run --all-namespaces --peering NAME` peers through a ClusterKopfPeering; it is made at start.
    # (Only the preparation runs here: a cluster-wide operator would act on other tests' namespaces.)
    from kubernetes import client

    from modeldeploy.handlers import peering
    from modeldeploy.k8s.client import Kube

    name = f"t-ha-{time.time_ns()}"
    with cluster.api_client() as api:
        try:
            mine = peering.prepare(Kube(api), name, [], priority=None)
            made = get(cluster, "default", "clusterkopfpeerings.kopf.dev", name)
            assert made is not None and made["kind"] == "ClusterKopfPeering"
            assert mine.scope("any-namespace") is None
            assert peering.PRIORITY_RANGE[0] <= mine.priority <= peering.PRIORITY_RANGE[1]
        finally:
            client.CustomObjectsApi(api).delete_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
