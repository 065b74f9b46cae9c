"""Istio: the route weights of a named VirtualService.

In each managed HTTP route (all that reach our stable Service, or the ones
named in `routes`), only the destinations with our stable and canary hosts
get their weights set; everything else stays as its owner wrote it.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.base import RouterError

API_VERSION = "networking.istio.io/v1"


class IstioRouter:
    def __init__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = config["virtualService"]
        self.only = set(config.get("routes") or [])
        self.stable = stable_service
        self.canary = canary_service

    def _vs(self) -> JSON:
        vs = self.kube.get(API_VERSION, "VirtualService", self.namespace, self.name)
        if vs is None:
            raise RouterError(f"spec.rollout.trafficRouting.istio.virtualService: VirtualService "
                              f"{self.namespace}/{self.name} does not exist; create it with a route to host "
                              f"{self.stable}")
        return vs

    def _host(self, dest: JSON) -> str:
        return str((dest.get("destination") or {}).get("host", "")).split(".")[0]

    def _routes(self, vs: JSON) -> list[tuple[int, list[JSON]]]:
        found = []
        for i, http in enumerate(vs["spec"].get("http") or []):
            if self.only and http.get("name") not in self.only:
                continue
            dests = http.get("route") or []
            if any(self._host(d) in (self.stable, self.canary) for d in dests):
                found.append((i, dests))
        if not found:
            raise RouterError(f"VirtualService {self.namespace}/{self.name} has no http route to host {self.stable}"
                              + (f" among routes {sorted(self.only)}" if self.only else "")
                              + "; add one so the operator can split its traffic")
        return found

    def get_weight(self) -> int | None:
        weights = set()
        for _, dests in self._routes(self._vs()):
            stable = sum(d.get("weight", 0) for d in dests if self._host(d) == self.stable)
            canary = sum(d.get("weight", 0) for d in dests if self._host(d) == self.canary)
            if stable + canary == 0:
                return 0 if any(self._host(d) == self.stable for d in dests) else None
            weights.add(round(100 * canary / (stable + canary)))
        return weights.pop() if len(weights) == 1 else None

    def set_weight(self, canary_weight: int) -> None:
        vs = self._vs()
        ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
                            "value": vs["metadata"]["resourceVersion"]}]
        for i, dests in self._routes(vs):
            base = f"/spec/http/{i}/route"
            for j, dest in enumerate(dests):
                if self._host(dest) == self.stable:
                    ops.append({"op": "add", "path": f"{base}/{j}/weight", "value": 100 - canary_weight})
                elif self._host(dest) == self.canary:
                    ops.append({"op": "add", "path": f"{base}/{j}/weight", "value": canary_weight})
            if not any(self._host(d) == self.canary for d in dests):
                stable = next(d for d in dests if self._host(d) == self.stable)
                destination = {**stable["destination"], "host": self.canary}
                ops.append({"op": "add", "path": f"{base}/-",
                            "value": {"destination": destination, "weight": canary_weight}})
        self.kube.json_patch(API_VERSION, "VirtualService", self.namespace, self.name, ops)

    def verify(self, canary_weight: int) -> bool | None:
        return self.get_weight() == canary_weight

    def finalize(self) -> None:
        vs = self.kube.get(API_VERSION, "VirtualService", self.namespace, self.name)
        if vs is None:
            return
        ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
                            "value": vs["metadata"]["resourceVersion"]}]
        for i, dests in self._routes(vs):
            for j in reversed(range(len(dests))):
                if self._host(dests[j]) == self.canary:
                    ops.append({"op": "remove", "path": f"/spec/http/{i}/route/{j}"})
                elif self._host(dests[j]) == self.stable:
                    ops.append({"op": "add", "path": f"/spec/http/{i}/route/{j}/weight", "value": 100})
        self.kube.json_patch(API_VERSION, "VirtualService", self.namespace, self.name, ops)
