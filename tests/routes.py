"""Routes a platform team owns, as the mesh-router tests apply them, and how to read their weights."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from modeldeploy.routers.gateway_api import GatewayAPIRouter
from modeldeploy.routers.istio import IstioRouter


def route_weights(obj: dict[str, Any], kind: str) -> dict[str, int]:
    """Backend -> weight on the first rule of an HTTPRoute (kind "httproute") or VirtualService."""
    if kind == "httproute":
        refs = obj["spec"]["rules"][0]["backendRefs"]
        return {r["name"]: r.get("weight", 1) for r in refs}
    return {d["destination"]["host"]: d.get("weight", 0) for d in obj["spec"]["http"][0]["route"]}


def without_weights(obj: dict[str, Any], kind: str, canary: str) -> dict[str, Any]:
    """A route's spec with the canary backend and every weight taken out: what the operator must leave alone."""
    spec = copy.deepcopy(obj["spec"])
    if kind == "httproute":
        for rule in spec["rules"]:
            rule["backendRefs"] = [{k: v for k, v in r.items() if k != "weight"} for r in rule["backendRefs"]
                                   if r["name"] != canary]
    else:
        for http in spec["http"]:
            http["route"] = [{k: v for k, v in d.items() if k != "weight"} for d in http["route"]
                             if d["destination"]["host"] != canary]
    return spec


ROUTES = {
    "httproute": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "fraud-route", "labels": {"owner": "platform"}},
        "spec": {
            "parentRefs": [{"name": "public-gateway", "namespace": "infra"}],
            "hostnames": ["fraud.example.com"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/v2/models"}}],
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"add": [{"name": "x-team", "value": "risk"}]}}],
                "backendRefs": [{"name": "fraud-stable", "port": 80}],
            }],
        },
    },
    "virtualservice": {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "fraud-vs", "labels": {"owner": "platform"}},
        "spec": {
            "hosts": ["fraud"],
            "gateways": ["mesh"],
            "http": [{"name": "primary", "timeout": "5s", "retries": {"attempts": 2},
                      "route": [{"destination": {"host": "fraud-stable", "port": {"number": 80}}}]}],
        },
    },
}


class Stored:
    """One route object as the API server keeps it, for the routers' unit tests: patches apply in order with the
    JSON Patch library (a failed resourceVersion test refuses the patch), and are counted."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = copy.deepcopy(obj)
        self.obj["metadata"]["resourceVersion"] = "1"
        self.patches = 0

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def json_patch(self, api_version: str, kind: str, namespace: str, name: str, ops: list[Any]) -> dict[str, Any]:
        self.obj = jsonpatch.apply_patch(self.obj, ops)
        self.patches += 1
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        return self.obj


def routers(kube: Stored, kind: str, comparator: str = "") -> Any:
    if kind == "httproute":
        return GatewayAPIRouter(kube, "risk", {"httpRoute": "fraud-route"}, "fraud-stable", "fraud-canary",
                                comparator)
    return IstioRouter(kube, "risk", {"virtualService": "fraud-vs"}, "fraud-stable", "fraud-canary", comparator)
