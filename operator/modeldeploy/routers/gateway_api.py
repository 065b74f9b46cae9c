"""Gateway API: the weights of the stable and canary backendRefs of a named HTTPRoute."""

from __future__ import annotations

from typing import Any

from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.backends import Backends, finalize_ops, guarded, read_weight, set_ops
from modeldeploy.routers.base import RouterError

API_VERSION = "gateway.networking.k8s.io/v1"
# A backendRef without a weight weighs 1 (Gateway API's default).
DEFAULT_WEIGHT = 1


class GatewayAPIRouter:
    def __init__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str, comparator_service: str = "") -> None:
        self.kube = kube
        self.namespace = config.get("namespace") or namespace
        self.name = config["httpRoute"]
        self.stable = stable_service
        self.canary = canary_service
        self.comparator = comparator_service

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

    def _is_our_mirror(self, f: JSON) -> bool:
        ref = (f.get("requestMirror") or {}).get("backendRef") or {}
        return f.get("type") == "RequestMirror" and (self._is_canary(ref) or (bool(self.comparator)
                                                     and ref.get("name") == self.comparator))

    def set_side_routes(self, headers: list[tuple[str, str]], mirror: int, compare: bool = False) -> None:
        route = self._existing()
        # The mirror's operations first: they address the user's rules by index, which the header route's
        # removals would shift.
        ops = self._mirror_ops(route, mirror, self.comparator if compare else self.canary) + \
            self._header_ops(route, headers)
        if ops:
            self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name,
                                 guarded(route["metadata"]["resourceVersion"], ops))

    def _mirror_ops(self, route: JSON, percent: int, to: str = "") -> list[JSON]:
        """A RequestMirror filter to `to` (the canary, or the comparator) on each of the user's rules that reach
        stable (percent 0: none). The rule's other filters stay as they are, in their order."""
        ops: list[JSON] = []
        for i, rule in enumerate(route["spec"].get("rules") or []):
            stable = next((r for r in rule.get("backendRefs") or [] if self._is_stable(r)), None)
            if stable is None or self._is_header_rule(rule):
                continue
            filters = rule.get("filters") or []
            wanted = [f for f in filters if not self._is_our_mirror(f)]
            if percent:
                ref = {k: v for k, v in stable.items() if k in ("group", "kind", "port", "namespace")}
                wanted.append({"type": "RequestMirror",
                               "requestMirror": {"backendRef": {**ref, "name": to or self.canary},
                                                 "percent": percent}})
            if wanted == filters:
                continue
            ops.append({"op": "add", "path": f"/spec/rules/{i}/filters", "value": wanted} if wanted
                       else {"op": "remove", "path": f"/spec/rules/{i}/filters"})
        return ops

    def _header_ops(self, route: JSON, headers: list[tuple[str, str]]) -> list[JSON]:
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
            return []
        ops: list[JSON] = [{"op": "remove", "path": f"/spec/rules/{i}"} for i in reversed(ours)]
        return ops + [{"op": "add", "path": "/spec/rules/-", "value": rule} for rule in wanted]

    def finalize(self) -> None:
        route = self._route()
        if route is None:
            return
        ops = finalize_ops(route["metadata"]["resourceVersion"], self._lists(route), self._is_stable,
                           self._is_canary)
        ops += self._mirror_ops(route, 0) + self._header_ops(route, [])
        self.kube.json_patch(API_VERSION, "HTTPRoute", self.namespace, self.name, ops)
