"""Router names to implementations; an unknown name fails loudly instead of falling back."""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import Kube
from modeldeploy.routers.base import RouterFactory, TrafficRouter
from modeldeploy.routers.gateway_api import GatewayAPIRouter
from modeldeploy.routers.istio import IstioRouter

# The replicas router needs no object: its weights are pod counts the planner sets.
ROUTERS: dict[str, RouterFactory] = {
    "gatewayAPI": GatewayAPIRouter,
    "istio": IstioRouter,
}


def router(name: str, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
           canary_service: str, comparator_service: str = "") -> TrafficRouter:
    """The router for a trafficRouting block name."""
    try:
        factory = ROUTERS[name]
    except KeyError:
        raise ValueError(f"unknown traffic router {name!r}; known: {', '.join(sorted(ROUTERS))}") from None
    return factory(kube, namespace, config, stable_service, canary_service, comparator_service)
