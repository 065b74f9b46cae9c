"""End to end: setHeaderRoute on the real Gateway API HTTPRoute and Istio VirtualService CRDs (their schemas
and validation rules, from the pinned Go modules): testers reach the canary by header while it has no weight,
and the route is as its owner wrote it once the rollout ends."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from helpers import wait_for
from modeldeployments import MD, apply, cli, get, manifest, status, wait_phase
from routes import ROUTES, route_weights, without_weights

STEPS = [{"setHeaderRoute": {"match": [{"name": "x-canary", "value": "testers"}]}}, {"pause": {}},
         {"setWeight": 50}, {"pause": {"duration": "2s"}}]


def canary_manifest(namespace: str, version: str, steps: list[dict[str, Any]], **rollout: Any) -> dict[str, Any]:
    body = manifest(namespace, version=version, replicas=4)
    body["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 3, **rollout}
    return body


def header_rule(obj: dict, kind: str) -> dict | None:
    """The rule or http route the operator added for the header route, if any."""
    if kind == "httproute":
        return next((r for r in obj["spec"]["rules"]
                     if [b["name"] for b in r.get("backendRefs") or []] == ["fraud-canary"]), None)
    return next((h for h in obj["spec"]["http"] if h.get("name") == "fraud-canary-header-route"), None)


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"], ids=["gatewayAPI", "istio"])
def test_testers_reach_the_canary_by_header_before_it_has_any_weight(cluster, namespace, operator, mesh_crds,
                                                                       kind):
    route = copy.deepcopy(ROUTES[kind])
    route["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    name = route["metadata"]["name"]
    routing = ({"gatewayAPI": {"httpRoute": name}} if kind == "httproute"
               else {"istio": {"virtualService": name, "routes": ["primary"]}})
    apply(cluster, canary_manifest(namespace, "1", STEPS, trafficRouting=routing))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    before = get(cluster, namespace, kind, name)
    # When revision 2 starts, it holds at the open pause after its header route
    apply(cluster, canary_manifest(namespace, "2", STEPS, trafficRouting=routing))
    wait_for(lambda: status(cluster, namespace), timeout=30, message="revision 2 held at the pause",
             until=lambda s: s.get("canaryRevision") == 2 and s.get("phase") == "Paused")
    # Then the route sends requests with the header to the canary's Service, which has a Ready pod to answer,
    # and the weighted route still gives it nothing
    obj = wait_for(lambda: get(cluster, namespace, kind, name), timeout=20, message="the header route written",
                   until=lambda o: header_rule(o, kind) is not None)
    rule = header_rule(obj, kind)
    if kind == "httproute":
        assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models"},
                                    "headers": [{"type": "Exact", "name": "x-canary", "value": "testers"}]}], rule
    else:
        assert rule["match"] == [{"headers": {"x-canary": {"exact": "testers"}}}], rule
        assert obj["spec"]["http"][0]["name"] == "fraud-canary-header-route"
    assert route_weights(obj, kind).get("fraud-canary", 0) == 0
    wait_for(lambda: get(cluster, namespace, "deployment", f"{MD}-r2"), timeout=20, message="a canary pod Ready",
             until=lambda d: (d.get("status") or {}).get("readyReplicas", 0) >= 1)
    # When a person promotes it past the pause, it goes on to its weight and is promoted
    assert cli(cluster, "promote", MD, "-n", namespace).returncode == 0
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=2)
    # Then the header route is gone, and the route is as its owner wrote it
    final = wait_for(lambda: get(cluster, namespace, kind, name), timeout=20, message="the header route taken off",
                     until=lambda o: header_rule(o, kind) is None
                     and route_weights(o, kind).get("fraud-canary", 0) == 0)
    assert without_weights(final, kind, "fraud-canary") == without_weights(before, kind, "fraud-canary")
