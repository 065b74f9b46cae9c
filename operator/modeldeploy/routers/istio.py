"""Istio: the route weights of a named VirtualService.

In each managed HTTP route (all that reach our stable Service, or the ones
named in `routes`), only the destinations with our stable and canary hosts
get their weights set; everything else stays as its owner wrote it.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.backends import Backends, finalize_ops, guarded, read_weight, set_ops
from modeldeploy.routers.base import RouterError

API_VERSION = "networking.istio.io/v1"
# A destination without a weight takes what the others leave; with two of ours, count it as 0.
DEFAULT_WEIGHT = 0


class IstioRouter:
    def __init__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str, comparator_service: str = "") -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = config["virtualService"]
        self.only = set(config.get("routes") or [])
        self.stable = stable_service
        self.canary = canary_service
        self.comparator = comparator_service

    def _host(self, dest: JSON) -> str:
        # "fraud-stable", "fraud-stable.ns" and "fraud-stable.ns.svc.cluster.local" all name our Service.
        return str((dest.get("destination") or {}).get("host", "")).split(".")[0]

    def _is_stable(self, dest: JSON) -> bool:
        return self._host(dest) == self.stable

    def _is_canary(self, dest: JSON) -> bool:
        return self._host(dest) == self.canary

    def _is_our_mirror(self, m: JSON) -> bool:
        return self._is_canary(m) or (bool(self.comparator) and self._host(m) == self.comparator)

    def _vs(self) -> JSON | None:
        return self.kube.get(API_VERSION, "VirtualService", self.namespace, self.name)

    @property
    def header_route_name(self) -> str:
        return f"{self.canary}-header-route"

    def _lists(self, vs: JSON) -> list[Backends]:
        lists = [Backends(f"/spec/http/{i}/route", http.get("route") or [])
                 for i, http in enumerate(vs["spec"].get("http") or [])
                 if (not self.only or http.get("name") in self.only) and http.get("name") != self.header_route_name]
        ours = [b for b in lists if any(self._is_stable(d) or self._is_canary(d) for d in b.entries)]
        if not ours:
            raise RouterError(f"VirtualService {self.namespace}/{self.name} has no http route to host {self.stable}"
                              + (f" among routes {sorted(self.only)}" if self.only else "")
                              + "; add one so the operator can split its traffic")
        return ours

    def _existing(self) -> JSON:
        vs = self._vs()
        if vs is None:
            raise RouterError(f"spec.rollout.trafficRouting.istio.virtualService: VirtualService "
                              f"{self.namespace}/{self.name} does not exist; create it with a route to host "
                              f"{self.stable}")
        return vs

    def get_weight(self) -> int | None:
        lists = self._lists(self._existing())
        weight = read_weight(lists, self._is_stable, self._is_canary, DEFAULT_WEIGHT)
        if weight is None and all(not any(self._is_canary(d) for d in b.entries) for b in lists):
            return 0  # only the stable destination, unweighted: all traffic is stable's
        return weight

    def set_weight(self, canary_weight: int) -> None:
        vs = self._existing()

        def canary_destination(stable: JSON) -> JSON:
            return {"destination": {**stable["destination"], "host": self.canary}}

        ops = set_ops(vs["metadata"]["resourceVersion"], self._lists(vs), self._is_stable, self._is_canary,
                      canary_weight, canary_destination)
        self.kube.json_patch(API_VERSION, "VirtualService", self.namespace, self.name, ops)

    def verify(self, canary_weight: int) -> bool | None:
        return self.get_weight() == canary_weight

    def set_side_routes(self, headers: list[tuple[str, str]], mirror: int, compare: bool = False) -> None:
        vs = self._existing()
        # The mirror's operations first: they address http routes by index, which the header route's shifts.
        ops = self._mirror_ops(vs, mirror, self.comparator if compare else self.canary) + \
            self._header_ops(vs, headers)
        if ops:
            self.kube.json_patch(API_VERSION, "VirtualService", self.namespace, self.name,
                                 guarded(vs["metadata"]["resourceVersion"], ops))

    def _mirror_ops(self, vs: JSON, percent: int, to: str = "") -> list[JSON]:
        """An entry for `to` (the canary, or the comparator) in `mirrors` of each managed http route that reaches
        stable (percent 0: none); the route's other mirrors stay."""
        ops: list[JSON] = []
        for i, http in enumerate(vs["spec"].get("http") or []):
            if (self.only and http.get("name") not in self.only) or http.get("name") == self.header_route_name:
                continue
            stable = next((d for d in http.get("route") or [] if self._is_stable(d)), None)
            if stable is None:
                continue
            mirrors = http.get("mirrors") or []
            wanted = [m for m in mirrors if not self._is_our_mirror(m)]
            if percent:
                if http.get("mirror"):
                    raise RouterError(f"VirtualService {self.namespace}/{self.name}: http route {i} mirrors with "
                                      f"`mirror`, which Istio does not take beside `mirrors`; write it as an entry "
                                      f"of `mirrors` so the operator can add the canary's")
                wanted.append({"destination": {**stable["destination"], "host": to or self.canary},
                               "percentage": {"value": percent}})
            if wanted == mirrors:
                continue
            ops.append({"op": "add", "path": f"/spec/http/{i}/mirrors", "value": wanted} if wanted
                       else {"op": "remove", "path": f"/spec/http/{i}/mirrors"})
        return ops

    def _header_ops(self, vs: JSON, headers: list[tuple[str, str]]) -> list[JSON]:
        http = vs["spec"].get("http") or []
        at = next((i for i, h in enumerate(http) if h.get("name") == self.header_route_name), None)
        wanted: JSON | None = None
        if headers:
            stable = next(d for b in self._lists(vs) for d in b.entries if self._is_stable(d))
            # First: Istio takes the first http route that matches.
            wanted = {"name": self.header_route_name,
                      "match": [{"headers": {name: {"exact": value} for name, value in headers}}],
                      "route": [{"destination": {**stable["destination"], "host": self.canary}}]}
        if (http[at] if at is not None else None) == wanted:
            return []
        ops: list[JSON] = []
        if at is not None:
            ops.append({"op": "remove", "path": f"/spec/http/{at}"})
        if wanted is not None:
            ops.append({"op": "add", "path": "/spec/http/0", "value": wanted})
        return ops

    def finalize(self) -> None:
        vs = self._vs()
        if vs is None:
            return
        ops = finalize_ops(vs["metadata"]["resourceVersion"], self._lists(vs), self._is_stable, self._is_canary)
        ops += self._mirror_ops(vs, 0) + self._header_ops(vs, [])
        self.kube.json_patch(API_VERSION, "VirtualService", self.namespace, self.name, ops)
