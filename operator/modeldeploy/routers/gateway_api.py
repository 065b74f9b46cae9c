"""Gateway API: the weights of the stable and canary backendRefs of a named HTTPRoute.

Only the backendRefs naming our stable and canary Services are touched, with a
JSON Patch guarded by the object's resourceVersion; every other field of the
route stays as its owner wrote it.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.base import RouterError

API_VERSION = "gateway.networking.k8s.io/v1"


class GatewayAPIRouter:
    def __init__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str) -> None:
        self.kube = kube
        self.namespace = config.get("namespace") or namespace
        self.name = config["httpRoute"]
        self.stable = stable_service
        self.canary = canary_service

    def _route(self) -> JSON:
        route = self.kube.get(API_VERSION, "HTTPRoute", self.namespace, self.name)
        if route is None:
            raise RouterError(f"spec.rollout.trafficRouting.gatewayAPI.httpRoute: HTTPRoute "
                              f"{self.namespace}/{self.name} does not exist; create it with a backendRef to "
                              f"Service {self.stable}")
        return route

    def _rules(self, route: JSON) -> list[tuple[int, list[JSON]]]:
        rules = [(i, rule.get("backendRefs") or []) for i, rule in enumerate(route["spec"].get("rules") or [])]
        ours = [(i, refs) for i, refs in rules if any(r.get("name") in (self.stable, self.canary) for r in refs)]
        if not ours:
            raise RouterError(f"HTTPRoute {self.namespace}/{self.name} has no rule with a backendRef to Service "
                              f"{self.stable}; add one so the operator can split its traffic")
        return ours

    def get_weight(self) -> int | None:
        weights = set()
        for _, refs in self._rules(self._route()):
            stable = sum(r.get("weight", 1) for r in refs if r.get("name") == self.stable)
            canary = sum(r.get("weight", 1) for r in refs if r.get("name") == self.canary)
            if stable + canary == 0:
                return None
            weights.add(round(100 * canary / (stable + canary)))
        return weights.pop() if len(weights) == 1 else None

    def set_weight(self, canary_weight: int) -> None:
        route = self._route()
        ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
                            "value": route["metadata"]["resourceVersion"]}]
        for i, refs in self._rules(route):
            base = f"/spec/rules/{i}/backendRefs"
            names = [r.get("name") for r in refs]
            for j, ref in enumerate(refs):
                if ref.get("name") == self.stable:
                    ops.append({"op": "add", "path": f"{base}/{j}/weight", "value": 100 - canary_weight})
                elif ref.get("name") == self.canary:
                    ops.append({"op": "add", "path": f"{base}/{j}/weight", "value": canary_weight})
            if self.canary not in names:
                stable_ref = next(r for r in refs if r.get("name") == self.stable)
                ref = {k: v for k, v in stable_ref.items() if k in ("group", "kind", "port", "namespace")}
                ops.append({"op": "add", "path": f"{base}/-",
                            "value": {**ref, "name": self.canary, "weight": canary_weight}})
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)

    def verify(self, canary_weight: int) -> bool | None:
        return self.get_weight() == canary_weight

    def finalize(self) -> None:
        route = self.kube.get(API_VERSION, "HTTPRoute", self.namespace, self.name)
        if route is None:
            return
        ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
                            "value": route["metadata"]["resourceVersion"]}]
        for i, refs in self._rules(route):
            # Highest index first, so earlier removals do not shift later paths.
            for j in reversed(range(len(refs))):
                if refs[j].get("name") == self.canary:
                    ops.append({"op": "remove", "path": f"/spec/rules/{i}/backendRefs/{j}"})
                elif refs[j].get("name") == self.stable:
                    ops.append({"op": "add", "path": f"/spec/rules/{i}/backendRefs/{j}/weight", "value": 100})
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)
