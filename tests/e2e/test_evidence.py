"""End to end: the evidence a verdict rests on is about the right revision, and a canary judged before it
gets traffic gets none until it passes."""

from __future__ import annotations

import copy
import time
from typing import Any

import yaml
from kubernetes import client

from helpers import wait_for
from modeldeployments import MD, apply, get, manifest, status, wait_phase
from routes import ROUTES, route_weights
from served import ready_endpoints

METRIC = "canary-check"


def body(namespace: str, version: str, steps: list[dict[str, Any]], url: str, **rollout: Any) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=4)
    interval = rollout.pop("interval", "1s")
    b["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 2, **rollout, "analysis": {
        "interval": interval, "failureLimit": 0,
        "metrics": [{"name": METRIC, "webhook": {"url": url, "timeoutSeconds": 2}}]}}
    return b


def outcomes(cluster: Any, namespace: str) -> dict[int, str]:
    return {int(cr["revision"]): cr["metadata"]["annotations"]["modeldeploy.dev/outcome"]
            for cr in get(cluster, namespace, "controllerrevisions")["items"]}


def test_a_run_of_a_superseded_canary_never_counts_for_the_next_one(cluster, namespace, operator, webhooks):
    # Given a check that fails revision 2 and passes every other
    hook = webhooks(lambda asked: 500 if asked.get("revision") == "2" else 200)
    steps = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}]
    apply(cluster, body(namespace, "1", steps, hook.url(), interval="8s"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # And revision 2's canary taking traffic, the operator stopped before its first run
    apply(cluster, body(namespace, "2", steps, hook.url(), interval="8s"))
    wait_for(lambda: status(cluster, namespace), timeout=20, message="revision 2 at 25%",
             until=lambda s: s.get("canaryRevision") == 2 and s.get("canaryWeight") == 25)
    operator.stop()
    assert hook.for_revision(2) == [], "revision 2 was judged before the operator stopped: lengthen the interval"
    # When the spec moves on to revision 3 while the operator is down, and it comes back after a run of
    # revision 2 has fallen due
    time.sleep(8)
    apply(cluster, body(namespace, "3", steps, hook.url(), interval="8s"))
    operator.start()
    st = wait_for(lambda: status(cluster, namespace), timeout=60, message="revision 3 decided",
                  until=lambda s: s.get("stableRevision") == 3 or s.get("phase") == "Degraded")
    # Then the run it took of revision 2 failed ...
    assert hook.for_revision(2), "no run of revision 2 was taken after the restart: the test proves nothing"
    # ... and revision 3 was promoted on its own passing runs, not rolled back on revision 2's failure
    assert (st.get("phase"), st.get("stableRevision")) == ("Healthy", 3), st
    assert st["analysis"]["revision"] == 3 and st["analysis"]["failed"] == 0, st["analysis"]
    assert outcomes(cluster, namespace) == {1: "Superseded", 2: "Aborted", 3: "Stable"}


def test_a_pre_traffic_analysis_judges_ready_canary_pods_that_get_no_traffic(cluster, namespace, operator, mesh_crds,
                                                                          webhooks):
    route = copy.deepcopy(ROUTES["httproute"])
    route["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    routing = {"gatewayAPI": {"httpRoute": "fraud-route"}}
    api = cluster.api_client()
    discovery = client.DiscoveryV1Api(api)
    # What was served the moment the first run of revision 2 arrived: read by the webhook itself, before it answers
    at_judgment: list[tuple[int, int]] = []  # (route weight of the canary, Ready revision-2 pods behind -canary)

    def answer(asked: dict[str, Any]) -> int:
        if asked.get("revision") == "2" and not at_judgment:
            ready = ready_endpoints(discovery, namespace, f"{MD}-canary", f"{MD}-r2-")  # first: it can only grow
            weight = route_weights(get(cluster, namespace, "httproute", "fraud-route"), "httproute").get(
                f"{MD}-canary", 0)
            at_judgment.append((weight, ready))
        return 200

    hook = webhooks(answer)
    # Given a canary whose first step is an analysis step, on a Gateway API route
    steps = [{"analysis": {}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]
    apply(cluster, body(namespace, "1", steps, hook.url(), trafficRouting=routing))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    sampling = cluster.api_client()
    discovery_sampled = client.DiscoveryV1Api(sampling)
    # When revision 2 rolls out, the route's canary weight and the canary's Ready pods are sampled
    apply(cluster, body(namespace, "2", steps, hook.url(), trafficRouting=routing))
    samples: list[tuple[float, int, int]] = []  # (time, route weight, Ready canary endpoints)
    deadline = time.monotonic() + 60
    try:
        while status(cluster, namespace).get("stableRevision") != 2:
            weight = route_weights(get(cluster, namespace, "httproute", "fraud-route"), "httproute").get(
                f"{MD}-canary", 0)
            samples.append((time.monotonic(), weight, ready_endpoints(discovery_sampled, namespace, f"{MD}-canary")))
            assert time.monotonic() < deadline, f"rollout did not finish; samples {samples[-5:]}"
            time.sleep(0.1)
    finally:
        sampling.close()
    judged = hook.for_revision(2)
    assert judged, "revision 2 was never judged"
    first_traffic = next((t for t, w, _ in samples if w > 0), None)
    assert first_traffic is not None, "the canary never got traffic"
    # Then it was judged before it got any traffic ...
    assert judged[0].at < first_traffic, (judged[0].at, first_traffic)
    assert judged[0].json()["canary_weight"] == "0", judged[0].json()
    # ... while its own pods were Ready behind the canary Service and the route gave it nothing
    api.close()
    assert at_judgment and at_judgment[0][0] == 0 and at_judgment[0][1] >= 1, at_judgment
    before = [w for t, w, _ in samples if t <= judged[0].at]
    assert all(w == 0 for w in before), before
    # ... and it took the step weight only after it passed
    assert 50 in [w for _, w, _ in samples], sorted({w for _, w, _ in samples})
