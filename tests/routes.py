"""Routes a platform team owns, as the mesh-router tests apply them, and how to read their weights."""

from __future__ import annotations

import copy
from typing import Any


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
