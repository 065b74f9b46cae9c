"""End to end: the mirror step on the real Gateway API HTTPRoute and Istio VirtualService CRDs (their schemas and
validation rules, from the pinned Go modules): the route copies requests to the canary's Service while clients
are still routed to stable alone, the operator writes it once, and the route is as its owner wrote it once the
rollout ends. (What a mesh then does with the copies is the mesh's; there is no mesh data plane here.)"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from apiproxy import ApiProxy
from helpers import wait_for
from modeldeployments import MD, apply, cli, get, manifest, status, wait_phase
from routes import ROUTES, route_weights, without_weights

PLURALS = {"httproute": "httproutes", "virtualservice": "virtualservices"}
STEPS = [{"mirror": {"percent": 25}}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]


def ours(obj: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The copies the route sends to the canary's Service: Gateway API's RequestMirror filters, Istio's mirrors."""
    if kind == "httproute":
        return [f for r in obj["spec"]["rules"] for f in r.get("filters") or []
                if f.get("type") == "RequestMirror" and f["requestMirror"]["backendRef"]["name"] == "fraud-canary"]
    return [m for h in obj["spec"]["http"] for m in h.get("mirrors") or []
            if m["destination"]["host"] == "fraud-canary"]


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"], ids=["gatewayAPI", "istio"])
def test_the_canary_gets_a_copy_of_requests_while_clients_stay_on_stable(cluster, namespace, start_operator,
                                                                         mesh_crds, tmp_path, kind):
    # The operator talks through the test's proxy, which records its writes
    proxy = ApiProxy(cluster.kubeconfig, tmp_path)
    operator = start_operator("--allow-inline-analysis-urls", kubeconfig=proxy.kubeconfig)
    try:
        rollout_with_a_mirror(cluster, namespace, operator, kind,
                              lambda: [str(w) for w in proxy.writes if f"/{PLURALS[kind]}/" in w.path])
    finally:
        operator.stop()  # first: the proxy waits for the watches it relays to end
        proxy.close()


def rollout_with_a_mirror(cluster: Any, namespace: str, operator: Any, kind: str,
                          route_writes: Callable[[], list[str]]) -> None:
    route = copy.deepcopy(ROUTES[kind])
    route["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    name = route["metadata"]["name"]
    routing = ({"gatewayAPI": {"httpRoute": name}} if kind == "httproute"
               else {"istio": {"virtualService": name, "routes": ["primary"]}})

    def body(version: str) -> dict[str, Any]:
        b = manifest(namespace, version=version, replicas=4)
        b["spec"]["rollout"] = {"steps": STEPS, "scaleDownDelaySeconds": 3, "trafficRouting": routing}
        return b

    apply(cluster, body("1"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    before = get(cluster, namespace, kind, name)
    # When revision 2 starts, it holds at the open pause after its mirror step
    apply(cluster, body("2"))
    wait_for(lambda: status(cluster, namespace), timeout=30, message="revision 2 held at the pause",
             until=lambda s: s.get("canaryRevision") == 2 and s.get("phase") == "Paused")
    # Then the route (as the API server took it, past the CRD's rules) copies 25% to the canary's Service, beside
    # the owner's own filters, and still sends clients' requests to stable alone
    obj = wait_for(lambda: get(cluster, namespace, kind, name), timeout=20, message="the mirror written",
                   until=lambda o: ours(o, kind))
    mirror = ours(obj, kind)
    if kind == "httproute":
        assert [(m["requestMirror"]["percent"], m["requestMirror"]["backendRef"]["port"]) for m in mirror] \
            == [(25, 80)], mirror
        assert obj["spec"]["rules"][0]["filters"][0] == before["spec"]["rules"][0]["filters"][0]
    else:
        assert [(m["percentage"]["value"], m["destination"]["port"]["number"]) for m in mirror] == [(25, 80)]
    assert route_weights(obj, kind).get("fraud-canary", 0) == 0
    wait_for(lambda: get(cluster, namespace, "deployment", f"{MD}-r2"), timeout=20, message="a canary pod Ready",
             until=lambda d: (d.get("status") or {}).get("readyReplicas", 0) >= 1)
    # and writes it once: the reconciles that follow (woken here by an annotation of someone else's) find the
    # route as the API server stored it, defaults and all, and send it nothing. (A patch that changes nothing
    # leaves the resourceVersion alone: the proxy's record of writes is what tells.)
    writes = route_writes()
    reconciles = operator.metric("modeldeploy_reconciles_total", result="unchanged") + \
        operator.metric("modeldeploy_reconciles_total", result="changed")
    for poke in range(3):
        cluster.kubectl("annotate", "modeldeployment", MD, "-n", namespace, f"example.com/poke={poke}",
                        "--overwrite")
    wait_for(lambda: operator.metric("modeldeploy_reconciles_total", result="unchanged")
             + operator.metric("modeldeploy_reconciles_total", result="changed"), timeout=10,
             message="the pokes reconciled", until=lambda n: n >= reconciles + 1)
    time.sleep(1)
    assert route_writes() == writes, route_writes()
    # When a person promotes it past the pause, the copies go on beside its weight, and it is promoted
    assert cli(cluster, "promote", MD, "-n", namespace).returncode == 0
    wait_for(lambda: get(cluster, namespace, kind, name), timeout=30, message="the canary weighted, still mirrored",
             until=lambda o: route_weights(o, kind).get("fraud-canary") == 50 and ours(o, kind))
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=2)
    # Then the mirror is gone, and the route is as its owner wrote it
    final = wait_for(lambda: get(cluster, namespace, kind, name), timeout=20, message="the mirror taken off",
                     until=lambda o: not ours(o, kind) and route_weights(o, kind).get("fraud-canary", 0) == 0)
    assert without_weights(final, kind, "fraud-canary") == without_weights(before, kind, "fraud-canary")
