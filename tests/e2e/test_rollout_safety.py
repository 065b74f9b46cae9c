"""End to end: rollouts that never cost served capacity and never decide on the wrong evidence.

Capacity is measured where clients meet it: the Ready endpoints behind the `<md>` Service, sampled in the
background while the test acts (tests/served.py).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import yaml

from helpers import holds_for, wait_for
from modeldeployments import MD, apply, cli, deployments, events, get, manifest, status, wait_phase
from served import ServedMonitor, endpoints_now

PAUSE_AT_HALF = [{"setWeight": 50}, {"pause": {}}]


def body(namespace: str, version: str, steps: list[dict[str, Any]], replicas: int | None = 4,
         **rollout: Any) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=replicas)
    b["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 3, **rollout}
    return b


def canary_at_half(cluster: Any, namespace: str) -> None:
    """Revision 1 serves 4 pods; revision 2 then holds 50% (2 of the 4 Ready pods) at an open pause."""
    apply(cluster, body(namespace, "1", PAUSE_AT_HALF))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", PAUSE_AT_HALF))
    wait_for(lambda: status(cluster, namespace), timeout=30, message="revision 2 serves 50%",
             until=lambda s: s.get("canaryRevision") == 2 and s.get("canaryWeight") == 50
             and s.get("phase") == "Paused")


@pytest.mark.parametrize("version", ["1", "3"], ids=["git-revert-to-stable", "new-version"])
def test_a_spec_change_mid_canary_costs_no_capacity(cluster, namespace, operator, version):
    # Given revision 2 serves half of the 4 pods (stable gave up 2 to it)
    canary_at_half(cluster, namespace)
    # When the spec goes back to revision 1, or on to a version 3, while the canary holds traffic
    with ServedMonitor(cluster, namespace, MD) as served:
        apply(cluster, body(namespace, version, PAUSE_AT_HALF))
        if version == "1":
            wait_phase(cluster, namespace, "Healthy", stableRevision=1, readyReplicas=4)
        else:
            wait_for(lambda: status(cluster, namespace), timeout=30, message="revision 3 at 50%",
                     until=lambda s: s.get("canaryRevision") == 3 and s.get("canaryWeight") == 50)
        wait_for(lambda: deployments(cluster, namespace).get(f"{MD}-r2", {}).get("status", {}).get("replicas", 0),
                 timeout=30, until=lambda n: n == 0, message="the superseded canary drained")
    # Then the Ready endpoints behind the Service never fell below 4 - 1
    assert served.lowest >= 3, served.dips(3)
    # And an Event said which canary was superseded, and why
    (said,) = events(cluster, namespace, "Superseded")
    assert said.startswith("revision 2 (model 2) at 50% superseded by revision"), said


def test_the_autoscaler_and_a_canary_agree_on_one_number(cluster, namespace, operator):
    # Given autoscaling with spec.replicas left to the autoscaler (not in the manifest)
    def autoscaled(version: str) -> dict[str, Any]:
        b = body(namespace, version, PAUSE_AT_HALF, replicas=None)
        b["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 10}
        return b

    apply(cluster, autoscaled("1"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1, readyReplicas=2)
    hpa = get(cluster, namespace, "hpa", MD)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                             "name": MD}
    # When the autoscaler's path, the scale subresource, asks for 6 (as the HPA writes it)
    cluster.kubectl("scale", "modeldeployment", MD, "-n", namespace, "--replicas=6")
    wait_phase(cluster, namespace, "Healthy", readyReplicas=6)
    scale = json.loads(cluster.kubectl("get", "--raw", f"/apis/modeldeploy.dev/v1alpha1/namespaces/{namespace}/"
                                                      f"modeldeployments/{MD}/scale").stdout)
    assert scale["spec"]["replicas"] == 6 and scale["status"] == {"replicas": 6,
                                                                  "selector": f"modeldeploy.dev/name={MD}"}
    # (the Service's endpoints follow the pods' readiness a moment later: measure from when all 6 serve)
    wait_for(lambda: endpoints_now(cluster, namespace, MD), timeout=15, until=lambda n: n == 6,
             message="6 Ready endpoints behind the Service")
    # And a canary then takes 50%, over more passes than it takes to settle
    with ServedMonitor(cluster, namespace, MD) as served:
        apply(cluster, autoscaled("2"))
        wait_for(lambda: status(cluster, namespace), timeout=30, message="revision 2 at 50% of 6",
                 until=lambda s: s.get("canaryWeight") == 50 and s.get("readyReplicas") == 6)
        holds_for(lambda: sum(d["spec"]["replicas"] for d in deployments(cluster, namespace).values()),
                  duration=5, until=lambda n: n >= 6, message="stable and canary share the autoscaled 6")
    # Then the served capacity never fell below the autoscaled size minus one
    assert served.lowest >= 5, served.dips(5)
    # And promotion starts the new revision at the autoscaled size
    assert cli(cluster, "promote", MD, "-n", namespace).returncode == 0
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=30)
    assert deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"] == 6


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_inconclusive_analysis_pauses_for_a_person_and_is_not_a_failure(cluster, namespace, operator):
    # Given analysis against a Prometheus that does not answer (nothing listens on that loopback port)
    address = f"http://127.0.0.1:{_closed_port()}"
    analysis = {"interval": "1s", "inconclusiveLimit": 1, "metrics": [
        {"name": "error-rate", "prometheus": {"address": address, "query": "up"}, "thresholdRange": {"max": 0.05}}]}
    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    apply(cluster, body(namespace, "1", steps, analysis=analysis, progressDeadlineSeconds=4))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When a canary is judged by it
    apply(cluster, body(namespace, "2", steps, analysis=analysis, progressDeadlineSeconds=4))
    st = wait_phase(cluster, namespace, "Paused", timeout=30, canaryRevision=2)
    # Then it waits for a person, quoting the provider's error, with its pods and weight
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "AnalysisInconclusive", st
    assert "did not answer" in st["message"] and address in st["message"], st["message"]
    # And it is neither promoted nor failed, well past its progress deadline and scale-down delay
    holds_for(lambda: status(cluster, namespace), duration=8, message="held for a person",
              until=lambda s: s.get("phase") == "Paused" and s.get("stableRevision") == 1
              and s.get("canaryRevision") == 2 and s.get("canaryWeight") == 50)
    rows = json.loads(cli(cluster, "history", MD, "-n", namespace, "-o", "json").stdout)
    assert rows[-1]["outcome"] == "Progressing", rows
    # And `abort` takes it back to stable
    assert cli(cluster, "abort", MD, "-n", namespace).returncode == 0
    wait_phase(cluster, namespace, "Degraded", timeout=20, stableRevision=1)


def test_auto_rollback_off_holds_a_failed_canary_with_its_pods(cluster, namespace, operator):
    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    apply(cluster, body(namespace, "1", steps, autoRollback=False, progressDeadlineSeconds=4))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When revision 2's pods never become Ready, with autoRollback off
    bad = body(namespace, "2", steps, autoRollback=False, progressDeadlineSeconds=4)
    bad["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "never-ready"}}}
    apply(cluster, bad)
    st = wait_phase(cluster, namespace, "Degraded", timeout=30, canaryRevision=2)
    assert "held" in st["message"] and "progressDeadlineSeconds 4" in st["message"], st["message"]
    # Then nothing is scaled down or deleted, past the scale-down delay (3 s), without a person
    holds_for(lambda: {n: d["spec"]["replicas"] for n, d in deployments(cluster, namespace).items()},
              duration=8, message="both revisions keep their pods",
              until=lambda r: r.get(f"{MD}-r1", 0) >= 2 and r.get(f"{MD}-r2", 0) == 2)
    # And `abort` rolls it back
    assert cli(cluster, "abort", MD, "-n", namespace).returncode == 0
    wait_phase(cluster, namespace, "Degraded", timeout=20, stableRevision=1)
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"], timeout=20,
             until=lambda n: n == 0, message="the aborted canary drains")


REFUSED = [
    pytest.param({"metadata": {"name": "m" * 57}}, "metadata.name must be at most 56 characters", id="long-name"),
    pytest.param({"spec": {"template": {"metadata": {"labels": {"modeldeploy.dev/revision": "9"}}}}},
                 "spec.template.metadata", id="reserved-label"),
    pytest.param({"spec": {"runtime": {"image": "x", "env": [{"name": "MODEL_DIR", "value": "/x"}]}}},
                 "spec.runtime.env[0]", id="reserved-env"),
    pytest.param({"spec": {"rollout": {"steps": [{"analysis": {}}, {"setWeight": 10}]}}},
                 "the replicas router cannot do", id="pre-traffic-analysis-without-a-mesh"),
    pytest.param({"spec": {"rollout": {"analysis": {"metrics": [
        {"name": "a", "webhook": {"url": "http://checks/a"}}, {"name": "a", "webhook": {"url": "http://checks/b"}}]}}}},
        'spec.rollout.analysis.metrics[1]: Duplicate value: {"name":"a"}', id="duplicate-metric-name"),
]


@pytest.mark.parametrize(("change", "says"), REFUSED)
def test_bad_names_and_reserved_keys_are_refused_at_admission(cluster, namespace, crd, change, says):
    b = manifest(namespace)
    b["metadata"].update(change.get("metadata", {}))
    b["spec"].update(change.get("spec", {}))
    proc = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(b), check=False)
    assert proc.returncode != 0 and says in proc.stderr, proc.stderr


def test_deleting_the_history_never_touches_what_serves(cluster, namespace, operator):
    # Given revision 2 serves, revision 1 kept for a fast way back (a 1 s scale-down delay: a history rebuilt
    # wrong would take pods from the revision it took for the old one within that, inside the 3 s window below)
    apply(cluster, body(namespace, "1", PAUSE_AT_HALF, scaleDownDelaySeconds=1))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", [], scaleDownDelaySeconds=1))
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, readyReplicas=4)
    pods = {p["metadata"]["uid"] for p in get(cluster, namespace, "pods")["items"]
            if p["metadata"]["labels"].get("modeldeploy.dev/revision") == "2"}
    # When every ControllerRevision is deleted (a cleanup, a restore from a backup without them)
    with ServedMonitor(cluster, namespace, MD) as served:
        cluster.kubectl("delete", "controllerrevisions", "--all", "-n", namespace)
        rows = wait_for(lambda: json.loads(cli(cluster, "history", MD, "-n", namespace, "-o", "json").stdout or "[]"),
                        timeout=20, until=lambda r: len(r) == 2, message="the history is rebuilt")
        holds_for(lambda: status(cluster, namespace), duration=3, message="revision 2 keeps serving",
                  until=lambda s: s.get("stableRevision") == 2 and s.get("phase") == "Healthy")
    # Then the history is rebuilt from the Deployments under the same numbers, nothing is restarted or deleted
    assert [(r["revision"], r["outcome"]) for r in rows] == [(1, "Superseded"), (2, "Stable")], rows
    assert set(deployments(cluster, namespace)) == {f"{MD}-r1", f"{MD}-r2"}
    now = {p["metadata"]["uid"] for p in get(cluster, namespace, "pods")["items"]
           if p["metadata"]["labels"].get("modeldeploy.dev/revision") == "2"}
    assert now == pods
    assert served.lowest >= 4, served.dips(4)


def test_healthy_only_once_the_pods_match(cluster, namespace, operator):
    # Given a promoted revision 2, whose predecessor scales down 3 s later, and revision 1's pods slow to go
    # (a finalizer holds them in Terminating, as a long graceful shutdown would)
    apply(cluster, body(namespace, "1", []))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", []))
    wait_phase(cluster, namespace, "Healthy", stableRevision=2)
    held = [p["metadata"]["name"] for p in get(cluster, namespace, "pods")["items"]
            if p["metadata"]["labels"].get("modeldeploy.dev/revision") == "1"]
    for name in held:
        cluster.kubectl("patch", "pod", name, "-n", namespace, "--type=merge",
                        "-p", '{"metadata":{"finalizers":["test.modeldeploy.dev/hold"]}}')
    # When revision 1 is ordered down, its pods are still there: status is not Healthy
    st = wait_phase(cluster, namespace, "Progressing", timeout=20)
    assert "revision 1 scaling to 0 pods" in st["message"], st["message"]
    holds_for(lambda: status(cluster, namespace).get("phase"), duration=3, until=lambda p: p == "Progressing",
              message="not Healthy while revision 1's pods remain")
    # Then, once they are gone, it is
    for name in held:
        cluster.kubectl("patch", "pod", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_phase(cluster, namespace, "Healthy", timeout=20, stableRevision=2)


def httproute(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "public-gateway"}],
                     "rules": [{"backendRefs": [{"name": f"{MD}-stable", "port": 80}]}]}}


def backends(cluster: Any, namespace: str, route: str) -> dict[str, int]:
    refs = get(cluster, namespace, "httproute", route)["spec"]["rules"][0]["backendRefs"]
    return {r["name"]: r.get("weight", 1) for r in refs}


def test_a_route_the_operator_no_longer_manages_gets_its_backends_back(cluster, namespace, operator, mesh_crds):
    for route in ("route-a", "route-b"):
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(httproute(namespace, route)))
    on_a = {"trafficRouting": {"gatewayAPI": {"httpRoute": "route-a"}}}
    apply(cluster, body(namespace, "1", PAUSE_AT_HALF, **on_a))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # Given a canary at 50% on route-a
    apply(cluster, body(namespace, "2", PAUSE_AT_HALF, **on_a))
    wait_for(lambda: backends(cluster, namespace, "route-a"), timeout=30, message="route-a splits 50/50",
             until=lambda b: b.get(f"{MD}-canary") == 50)
    assert "modeldeploy.dev/route-weights" in get(cluster, namespace, "modeldeployment", MD)["metadata"].get(
        "finalizers", [])
    # When the spec moves the split to route-b
    apply(cluster, body(namespace, "2", PAUSE_AT_HALF, trafficRouting={"gatewayAPI": {"httpRoute": "route-b"}}))
    # Then route-a has its own backends back, all traffic to stable, and route-b carries the split
    wait_for(lambda: backends(cluster, namespace, "route-a"), timeout=20, message="route-a released",
             until=lambda b: b == {f"{MD}-stable": 100})
    wait_for(lambda: backends(cluster, namespace, "route-b"), timeout=20, message="route-b splits 50/50",
             until=lambda b: b.get(f"{MD}-canary") == 50)
    # And deleting the ModelDeployment takes its backend off route-b before it goes
    cluster.kubectl("delete", "modeldeployment", MD, "-n", namespace, "--wait=true", timeout=60)
    assert backends(cluster, namespace, "route-b") == {f"{MD}-stable": 100}
    assert get(cluster, namespace, "modeldeployment", MD) is None
