"""A periodic LIST of everything the operator watches, into the cache: the safety net for a watch event that
never arrived.

The cache learns of changes from watch events. A watch that loses one (a bug, an API server restarted behind
a load balancer, a proxy) leaves the cache on an older view, and nothing corrects it until the object changes
again: a rollout waiting for pods that are long Ready waits forever, a spec change is never acted on. Every
`--resync-seconds` (default 300) the operator lists each kind it watches, in each namespace it watches, and
reconciles the ModelDeployments whose view that changed. When no event was lost the lists change nothing and
wake nothing. (kopf's watches list only when they start again after an error, not on a schedule.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from modeldeploy.api import names
from modeldeploy.handlers import metrics
from modeldeploy.handlers.queue import Gate
from modeldeploy.k8s.client import Kube

log = logging.getLogger("modeldeploy.resync")
# Everything the watches feed the cache with (handlers/operator.py), ModelDeployments first.
KINDS = [(names.API_VERSION, names.KIND), ("apps/v1", "Deployment"), ("v1", "Service"),
         ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
         ("apps/v1", "ControllerRevision"), ("v1", "Pod"), ("discovery.k8s.io/v1", "EndpointSlice")]


def resync(kube: Kube, namespaces: list[str] | None) -> set[tuple[str, str]]:
    """One pass: every kind, in each watched namespace (None: all at once). The ModelDeployments to wake."""
    woken: set[tuple[str, str]] = set()
    scopes: list[str | None] = list(namespaces) if namespaces else [None]
    for api_version, kind in KINDS:
        for namespace in scopes:
            woken |= kube.relist(api_version, kind, namespace)
    return woken


async def keep_resyncing(kube: Kube, namespaces: list[str] | None, every: float,
                         trigger: Callable[[str, str], Awaitable[None]], gate: Gate | None = None) -> None:
    """Resync every `every` seconds, for as long as the operator runs. With a gate (peering), a standby replica
    skips the pass: it would not act on what the lists told, and its paused watches catch up with a full list
    when it takes over. (One read of the peering object per pass, instead of every kind's LIST.)"""
    while True:
        await asyncio.sleep(every)
        try:
            if gate is not None and all([await gate(ns) for ns in namespaces or [""]]):
                log.debug("resync skipped: this replica is not the active one")
                continue
            woken = await asyncio.to_thread(resync, kube, namespaces)
        except Exception as exc:  # the API server's trouble; the next pass tries again
            log.warning("resync failed (%s: %s); next in %gs", type(exc).__name__, exc, every)
            continue
        metrics.RESYNC_NEWS.inc(len(woken))
        if woken:
            log.warning("resync: the watches had not told of changes to %s; reconciling them",
                        ", ".join(f"{ns}/{name}" for ns, name in sorted(woken)))
        for namespace, name in sorted(woken):
            await trigger(namespace, name)
