"""kopf handlers. Each one only routes its trigger to the one reconcile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import kopf

from modeldeploy.api import names
from modeldeploy.api.status import Phase
from modeldeploy.desired.settings import Settings
from modeldeploy.handlers import metrics
from modeldeploy.handlers.peering import LIFETIME, Peering
from modeldeploy.handlers.queue import Coalescer, Key
from modeldeploy.handlers.restarts import RestartCounts
from modeldeploy.handlers.resync import keep_resyncing
from modeldeploy.handlers.workers import Workers, priority
from modeldeploy.k8s.cache import RELIST_SECONDS, Cache
from modeldeploy.k8s.client import Kube
from modeldeploy.reconcile.core import Result, reconcile
from modeldeploy.reconcile.observe import pod_restarts, stuck
from modeldeploy.reconcile.runs import ANALYSIS_WORKERS, AnalysisRuns

log = logging.getLogger("modeldeploy.handlers")
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
MANAGED_SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
# Children whose changes can need a reconcile of their ModelDeployment (pods: only a restart, see pod_changed).
CHILDREN = [("apps", "v1", "deployments"), ("", "v1", "services"),
            ("autoscaling", "v2", "horizontalpodautoscalers"), ("policy", "v1", "poddisruptionbudgets"),
            ("apps", "v1", "controllerrevisions")]
POD = ("", "v1", "pods")
ENDPOINT_SLICE = ("discovery.k8s.io", "v1", "endpointslices")
KIND_OF = {"deployments": "Deployment", "services": "Service", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
           "poddisruptionbudgets": "PodDisruptionBudget", "controllerrevisions": "ControllerRevision"}


def make_memo(kube: Kube, settings: Settings, peering: Peering | None = None,
              analysis_workers: int = ANALYSIS_WORKERS, namespaces: list[str] | None = None,
              resync_seconds: float = RELIST_SECONDS) -> kopf.Memo:
    """What every handler needs: the API client (reading through the cache the watches feed), the per-object
    queue, the reconcile threads (protective work first) and the analysis pool.

    With peering (several replicas), the queue asks it before every reconcile, so a
    standby replica's own timers cannot act either (kopf pauses only its watches).
    A finished analysis run asks for a reconcile of its ModelDeployment from the pool's
    thread, so the request crosses to the event loop the reconciles are queued on.
    """
    loop: list[asyncio.AbstractEventLoop] = []

    def notify(namespace: str, name: str) -> None:
        if loop:
            asyncio.run_coroutine_threadsafe(memo.queue.trigger(namespace, name), loop[0])

    runs = AnalysisRuns(analysis_workers, notify)
    cache = kube.cache = kube.cache or Cache()
    memo = kopf.Memo(kube=kube, cache=cache, settings=settings, peering=peering, restarts=RestartCounts(),
                     runs=runs, namespaces=namespaces, resync_seconds=resync_seconds)

    workers = Workers()

    async def run(namespace: str, name: str) -> Result:
        if not loop:
            loop.append(asyncio.get_running_loop())
        _, md = cache.get(names.KIND, namespace, name)
        urgency = priority(md, runs.finished((namespace, name)))
        failing = memo.queue.failing(namespace, name)
        cache.take_woken(namespace, name)  # this reconcile reads whatever an earlier answer showed
        result = await workers.run(urgency, lambda: reconcile(kube, namespace, name, settings, runs,
                                                              failing=failing))
        if cache.take_woken(namespace, name):
            # A write's answer showed a change this reconcile did not plan on, whose watch event is no longer news.
            result = replace(result, requeue_after=0)
        return result

    def observe(key: Key, result: Result | None, error: BaseException | None) -> None:
        if error is not None or result is None:
            metrics.RECONCILES.labels("error").inc()
            return
        metrics.RECONCILES.labels("changed" if result.writes else "unchanged").inc()
        if result.gone:
            metrics.forget(*key)
            runs.forget(key)
            return
        metrics.RECONCILE_SECONDS.observe(result.seconds)
        metrics.CANARY_WEIGHT.labels(key[0], key[1]).set(result.canary_weight)
        metrics.count_rollouts(key[0], key[1], list(result.events))
        for phase in Phase:
            metrics.PHASE.labels(key[0], key[1], phase.value).set(1 if phase.value == result.phase else 0)

    memo.queue = Coalescer(run, observe, gate=peering.hold if peering is not None else None)
    return memo


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf keeps no state of its own in the objects (the operator uses event handlers only, see
    modeldeployment_changed), and posts no events."""
    settings.posting.enabled = False  # the reconciler writes its own, meaningful Events
    settings.watching.server_timeout = 270
    # Children are filtered by the API server, not here: a handler's `labels=` filters in Python, after every
    # Pod and Deployment of the cluster has been sent over. This selector makes the watch carry only ours.
    for group, version, plural in (*CHILDREN, POD, ENDPOINT_SLICE):
        settings.watching.label_selectors[group, version, plural] = MANAGED_SELECTOR
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # Peering (only with `run --peering`; kopf.run sets its name, priority and scope): a short
    # keep-alive lifetime, so a standby takes over within LIFETIME seconds of the active replica's
    # death, and no log line for every keep-alive (pauses and resumes are still logged).
    settings.peering.lifetime = LIFETIME
    settings.peering.stealth = True


@kopf.on.startup(id="resync")
async def start_resync(memo: Any, **_: Any) -> None:
    """The periodic resync (handlers/resync.py), for as long as the operator runs; 0 seconds: none."""
    if memo.get("resync_seconds"):
        memo.resync = asyncio.create_task(keep_resyncing(
            memo.kube, memo.namespaces, memo.resync_seconds, memo.queue.trigger,
            memo.peering.hold if memo.peering is not None else None))


@kopf.on.cleanup(id="resync")
async def stop_resync(memo: Any, **_: Any) -> None:
    task = memo.get("resync")
    if task is not None:
        task.cancel()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: its ServiceAccount; elsewhere: $KUBECONFIG, read when the operator starts."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.event(names.GROUP, names.VERSION, names.PLURAL, id="modeldeployments")
async def modeldeployment_changed(event: Mapping[str, Any], namespace: str | None, name: str, memo: Any,
                                  **_: Any) -> None:
    # An event handler, not kopf's create/update/resume ones: those keep a copy of the spec in the object (a
    # diff base) and patch it at every change, and diff every event against it, where the cache already tells
    # what changed (its essence: spec, labels, annotations, finalizers, deletion) from what did not (status
    # alone, as the operator's own writes). Into the cache before the reconcile reads it.
    news = memo.cache.seen(names.KIND, event.get("type"), event.get("object") or {})
    if not namespace:
        return
    # The DELETED watch event, not kopf.on.delete: that one runs only while a finalizer holds the object, and
    # the operator adds none of kopf's (ownerReferences let the garbage collector remove the children).
    if event.get("type") == "DELETED":
        memo.queue.forget(namespace, name)
        metrics.forget(namespace, name)
    elif news:
        await memo.queue.trigger(namespace, name)  # a deletion held by the route finalizer included


def _child_handler(group: str, version: str, plural: str) -> None:
    @kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")
    async def child_changed(event: Mapping[str, Any], namespace: str | None, labels: Mapping[str, str], memo: Any,
                            **_: Any) -> None:
        # Into the cache before the reconcile reads it. An object a watch lists is news only if it changed while
        # the watch was down: at start, each ModelDeployment's own resume reconciles it once.
        news = memo.cache.seen(KIND_OF[plural], event.get("type"), event.get("object") or {})
        owner = labels.get(names.LABEL_MD)
        if owner and namespace and news:
            await memo.queue.trigger(namespace, owner)


for _group, _version, _plural in CHILDREN:
    _child_handler(_group, _version, _plural)


@kopf.on.event(*POD, labels=MANAGED, id="child-pods")
async def pod_changed(event: Mapping[str, Any], uid: str | None, namespace: str | None, labels: Mapping[str, str],
                      memo: Any, **_: Any) -> None:
    # Only a restart, a change in why it cannot start, or a pod gone counts (see handlers/restarts.py); readiness
    # arrives with the Deployment's status.
    pod = event.get("object") or {}
    news = memo.cache.seen("Pod", event.get("type"), pod)
    owner = labels.get(names.LABEL_MD)
    if uid and memo.restarts.matters(uid, event.get("type"), pod_restarts(pod), stuck({}, [pod])) and owner \
            and namespace and news:
        await memo.queue.trigger(namespace, owner)


@kopf.on.event(*ENDPOINT_SLICE, labels=MANAGED, id="child-endpointslices")
async def endpoints_changed(event: Mapping[str, Any], namespace: str | None, labels: Mapping[str, str], memo: Any,
                            **_: Any) -> None:
    # The Services' EndpointSlices carry the Services' labels. The main and canary Services' wake a reconcile:
    # status reports the share the main one serves, and a pre-traffic analysis waits for the canary one's Ready
    # endpoints; the stable Service's are read when something else wakes it.
    news = memo.cache.seen("EndpointSlice", event.get("type"), event.get("object") or {})
    owner = labels.get(names.LABEL_MD)
    if owner and namespace and news and labels.get("kubernetes.io/service-name") in (owner, f"{owner}-canary"):
        await memo.queue.trigger(namespace, owner)


@kopf.on.event(names.GROUP, names.VERSION, names.PROVIDER_PLURAL, id="analysis-providers")
async def provider_changed(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    # Kept for the reconciles that name one; a change takes effect at the next analysis run.
    memo.cache.seen(names.PROVIDER_KIND, event.get("type"), event.get("object") or {})
