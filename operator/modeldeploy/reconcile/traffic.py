"""Mesh routers in the reconcile: read the weight before planning, set it after."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from kubernetes.client.rest import ApiException

from modeldeploy.desired.facts import Observed
from modeldeploy.desired.rollout import Traffic
from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.routers.base import RouterError
from modeldeploy.routers.registry import router


@contextmanager
def _explained(name: str) -> Iterator[None]:
    """A refused request on the user's route becomes a status the user can act on, not a silent retry."""
    try:
        yield
    except ApiException as exc:
        if exc.status in (401, 403):
            raise RouterError(f"the operator may not read or patch the {name} route ({exc.status} {exc.reason}); "
                              f"grant it get and patch on that route, or check spec.rollout.trafficRouting") from exc
        raise

log = logging.getLogger("modeldeploy.traffic")


def _block(spec: JSON) -> tuple[str, JSON] | None:
    routing = ((spec.get("rollout") or {}).get("trafficRouting")) or {}
    for name in ("gatewayAPI", "istio"):
        if routing.get(name):
            return name, routing[name]
    return None


def observe_weight(kube: Kube, observed: Observed, spec: JSON) -> Observed:
    """The canary weight the user's route carries now (mesh routers only)."""
    block = _block(spec)
    if block is None:
        return observed
    name, config = block
    r = router(name, kube, observed.namespace, config, f"{observed.name}-stable", f"{observed.name}-canary")
    with _explained(name):
        return replace(observed, router_weight=r.get_weight())


def apply_weight(kube: Kube, namespace: str, traffic: Traffic | None) -> None:
    """Set the planned weight on the route when it carries another one."""
    if traffic is None:
        return
    r = router(traffic.router, kube, namespace, traffic.config, traffic.stable_service, traffic.canary_service,
               traffic.comparator_service)
    with _explained(traffic.router):
        if not r.verify(traffic.canary_weight):
            log.info("%s: canary weight %s%% on %s", namespace, traffic.canary_weight, traffic.router)
            r.set_weight(traffic.canary_weight)
        r.set_side_routes(list(traffic.headers), traffic.mirror, traffic.compare)


def release(kube: Kube, namespace: str, traffic: Traffic | None) -> None:
    """Take the operator's canary backend off a route it no longer manages; a route already gone, or with no
    backend of ours left, needs nothing."""
    if traffic is None:
        return
    r = router(traffic.router, kube, namespace, traffic.config, traffic.stable_service, traffic.canary_service,
               traffic.comparator_service)
    with _explained(traffic.router):
        try:
            r.finalize()
        except RouterError:
            return
    log.info("%s: canary backend taken off the %s route", namespace, traffic.router)
