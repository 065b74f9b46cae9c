"""Gateway API: the weights of the stable and canary backendRefs of a named HTTPRoute."""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.backends import Backends, finalize_ops, read_weight, set_ops
from modeldeploy.routers.base import RouterError

API_VERSION = "gateway.networking.k8s.io/v1"
# A backendRef without a weight weighs 1 (Gateway API's default).
DEFAULT_WEIGHT = 1


class GatewayAPIRouter:
    def __init__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str) -> None:
        self.kube = kube
        self.namespace = config.get("namespace") or namespace
        self.name = config["httpRoute"]
        self.stable = stable_service
        self.canary = canary_service

    def _is_stable(self, ref: JSON) -> bool:
        return ref.get("name") == self.stable

    def _is_canary(self, ref: JSON) -> bool:
        return ref.get("name") == self.canary

    def _route(self) -> JSON | None:
        return self.kube.get(API_VERSION, "HTTPRoute", self.namespace, self.name)

    def _is_header_rule(self, rule: JSON) -> bool:
        """A rule the operator added for a header route: every match names headers, every backend is the
        canary."""
        refs, matches = rule.get("backendRefs") or [], rule.get("matches") or []
        return bool(refs and matches) and all(self._is_canary(r) for r in refs) and all(m.get("headers")
                                                                                         for m in matches)

    def _lists(self, route: JSON) -> list[Backends]:
        rules = route["spec"].get("rules") or []
        lists = [Backends(f"/spec/rules/{i}/backendRefs", rule.get("backendRefs") or [])
                 for i, rule in enumerate(rules) if not self._is_header_rule(rule)]
        ours = [b for b in lists if any(self._is_stable(r) or self._is_canary(r) for r in b.entries)]
        if not ours:
            raise RouterError(f"HTTPRoute {self.namespace}/{self.name} has no rule with a backendRef to Service "
                              f"{self.stable}; add one so the operator can split its traffic")
        return ours

    def _existing(self) -> JSON:
        route = self._route()
        if route is None:
            raise RouterError(f"spec.rollout.trafficRouting.gatewayAPI.httpRoute: HTTPRoute "
                              f"{self.namespace}/{self.name} does not exist; create it with a backendRef to "
                              f"Service {self.stable}")
        return route

    def get_weight(self) -> int | None:
        return read_weight(self._lists(self._existing()), self._is_stable, self._is_canary, DEFAULT_WEIGHT)

    def set_weight(self, canary_weight: int) -> None:
        route = self._existing()

        def canary_ref(stable_ref: JSON) -> JSON:
            kept = {k: v for k, v in stable_ref.items() if k in ("group", "kind", "port", "namespace")}
            return {**kept, "name": self.canary}

        ops = set_ops(route["metadata"]["resourceVersion"], self._lists(route), self._is_stable, self._is_canary,
                      canary_weight, canary_ref)
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)

    def verify(self, canary_weight: int) -> bool | None:
        return self.get_weight() == canary_weight

    def set_header_route(self, headers: list[tuple[str, str]]) -> None:
        route = self._existing()
        rules = route["spec"].get("rules") or []
        ours = [i for i, rule in enumerate(rules) if self._is_header_rule(rule)]
        wanted: list[JSON] = []
        if headers:
            extra = [{"type": "Exact", "name": name, "value": value} for name, value in headers]
            for i, rule in enumerate(rules):
                stable = next((r for r in rule.get("backendRefs") or [] if self._is_stable(r)), None)
                if i in ours or stable is None:
                    continue
                # Each of the user's matches, narrowed by the headers: more header matches win in Gateway API,
                # so these rules take those requests whatever the order.
                matches = [{**m, "headers": [*(m.get("headers") or []), *extra]} for m in rule.get("matches") or [{}]]
                ref = {k: v for k, v in stable.items() if k in ("group", "kind", "port", "namespace")}
                wanted.append({"matches": matches, "backendRefs": [{**ref, "name": self.canary}]})
        if [rules[i] for i in ours] == wanted:
            return
        ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
                            "value": route["metadata"]["resourceVersion"]}]
        ops += [{"op": "remove", "path": f"/spec/rules/{i}"} for i in reversed(ours)]
        ops += [{"op": "add", "path": "/spec/rules/-", "value": rule} for rule in wanted]
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)

    def finalize(self) -> None:
        route = self._route()
        if route is None:
            return
        ops = finalize_ops(route["metadata"]["resourceVersion"], self._lists(route), self._is_stable,
                           self._is_canary)
        rules = route["spec"].get("rules") or []
        ops += [{"op": "remove", "path": f"/spec/rules/{i}"} for i in reversed(range(len(rules)))
                if self._is_header_rule(rules[i])]
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)
