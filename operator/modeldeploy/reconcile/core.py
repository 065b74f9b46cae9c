"""The one reconcile every trigger calls: observe, plan (pure), apply, write status once."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from modeldeploy.analysis import registry as providers
from modeldeploy.analysis.base import RunContext
from modeldeploy.api import names
from modeldeploy.api.spec import Metric, ModelDeploymentSpec, ThresholdRange
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.desired import rollout
from modeldeploy.desired.actions import Traffic
from modeldeploy.desired.analysis import ready_behind_canary
from modeldeploy.desired.drift import needs_apply
from modeldeploy.desired.facts import Observed
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.validity import retrying
from modeldeploy.k8s.client import JSON, Kube
from modeldeploy.reconcile import endpoints, traffic
from modeldeploy.reconcile.observe import Live, observe
from modeldeploy.reconcile.runs import AnalysisRuns, Finished
from modeldeploy.routers.base import RouterError

log = logging.getLogger("modeldeploy.reconcile")

# Records first (a revision number is never lost), then what serves, then routing; a Deployment that shrinks goes
# last (see apply_order).
APPLY_ORDER = ["ControllerRevision", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]


def apply_order(manifest: JSON, live: Live) -> int:
    """Where a manifest goes in the order of writes: make before break. A Deployment losing pods is written after
    the Services, so a Service that moves its clients to other pods has moved them before these start to go.
    (Found measuring a rollback during a bake: `<md>` selected the canary alone, and scaling it down first left
    `<md>` with no Ready endpoint for 130 ms until its new selector was written.)"""
    if manifest["kind"] == "Deployment":
        current = live.get(("Deployment", manifest["metadata"]["name"]))
        if current is not None and manifest["spec"]["replicas"] < (current.get("spec") or {}).get("replicas", 1):
            return len(APPLY_ORDER)
    return APPLY_ORDER.index(manifest["kind"])


@dataclass(frozen=True)
class Result:
    phase: str | None = None
    canary_weight: int = 0
    events: tuple[str, ...] = ()  # reasons of the Events this reconcile emitted
    requeue_after: float | None = None
    writes: int = 0
    seconds: float = 0.0
    gone: bool = False  # the ModelDeployment no longer exists (or is being deleted)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_status(raw: JSON | None) -> ModelDeploymentStatus:
    """The stored status; an unreadable one is treated as empty rather than crashing."""
    try:
        return ModelDeploymentStatus.model_validate(raw or {})
    except ValidationError:
        return ModelDeploymentStatus()


def status_body(status: ModelDeploymentStatus) -> JSON:
    """The status as the API stores it; None fields are sent as null so a merge patch clears them."""
    body: JSON = status.model_dump(by_alias=True, mode="json")
    return body


def _comparable(status: JSON) -> JSON:
    return {k: v for k, v in status.items() if v is not None}


class WriteError(Exception):
    """The API server refused one write of a plan; says which object, and whether the spec can be to blame
    (an object built from it), or not (the weights on a user's route)."""

    def __init__(self, what: str, exc: ApiException, from_spec: bool = True) -> None:
        super().__init__(f"{what}: {exc.status} {_api_message(exc)}")
        self.what = what
        self.exc = exc
        self.from_spec = from_spec


def set_weights(kube: Kube, namespace: str, plan: rollout.Plan) -> None:
    """The planned weights onto the user's route (mesh routers only); a route no longer named is released."""
    for act, what, route in ((traffic.release, "the canary backend on the old", plan.release),
                             (traffic.apply_weight, "the weights on the", plan.traffic)):
        try:
            act(kube, namespace, route)
        except ApiException as exc:
            if exc.status == 422:
                raise  # its JSON Patch test failed: the route changed since it was read; the retry reads it again
            assert route is not None
            raise WriteError(f"{what} {route.router} route", exc, from_spec=False) from exc


def hold_for_route(kube: Kube, md: JSON, wanted: bool) -> None:
    """A finalizer while the operator manages weights on a user's route, so a deletion takes them off first."""
    meta = md["metadata"]
    held = list(meta.get("finalizers") or [])
    if wanted == (names.FINALIZER in held):
        return
    held = [*held, names.FINALIZER] if wanted else [f for f in held if f != names.FINALIZER]
    # The resourceVersion makes it a compare-and-swap: another controller's finalizer is never lost.
    kube.patch(names.API_VERSION, names.KIND, meta["namespace"], meta["name"],
               {"metadata": {"finalizers": held, "resourceVersion": meta["resourceVersion"]}})


def let_go(kube: Kube, md: JSON) -> None:
    """A ModelDeployment being deleted: take its backend off the route it managed, then its finalizer."""
    if names.FINALIZER not in (md["metadata"].get("finalizers") or []):
        return
    route = parse_status(md.get("status")).route
    if route is not None:
        ns, name = md["metadata"]["namespace"], md["metadata"]["name"]
        traffic.release(kube, ns, Traffic(route.router, route.config, f"{name}-stable", f"{name}-canary", 0,
                                          comparator_service=names.mirror_name(name)))
    hold_for_route(kube, md, False)


def apply_plan(kube: Kube, md: JSON, plan: rollout.Plan, live: Live) -> None:
    """Send what differs from the live objects; nothing at all when nothing does."""
    ns = md["metadata"]["namespace"]
    for manifest in sorted(plan.apply, key=lambda m: apply_order(m, live)):
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        current = live.get((manifest["kind"], manifest["metadata"]["name"]))
        if needs_apply(manifest, current):
            log.debug("apply %s", what)
            try:
                kube.apply(manifest)
            except ApiException as exc:
                raise WriteError(what, exc) from exc
    for ref in plan.delete:
        if (ref.kind, ref.name) in live:
            log.debug("delete %s/%s", ref.kind, ref.name)
            try:
                kube.delete(ref.api_version, ref.kind, ns, ref.name)
            except ApiException as exc:
                raise WriteError(f"{ref.kind} {ref.name} (delete)", exc) from exc


def report(kube: Kube, md: JSON, plan: rollout.Plan) -> None:
    """Write the plan's status when it differs from the stored one, then its Events."""
    meta = md["metadata"]
    new = status_body(plan.status)
    if "kopf" in (md.get("status") or {}):
        new["kopf"] = None  # what older versions of the operator let kopf keep there, cleared
    if _comparable(new) != _comparable(md.get("status") or {}):
        kube.patch_status(meta["namespace"], meta["name"], new)
    for event in plan.events:
        log.info("%s/%s %s: %s", meta["namespace"], meta["name"], event.reason, event.message)
        kube.event(md, event.type, event.reason, event.message)


def measure(kube: Kube, observed: Observed, spec: JSON, old: ModelDeploymentStatus, settings: Settings,
            runs: AnalysisRuns) -> tuple[Observed, Finished | None]:
    """Hand the planner a finished analysis run, if there is one (and return it, to be given back should this
    reconcile fail); start the next when it is due. The run itself happens off this thread (see
    reconcile/runs.py), so slow endpoints never hold a reconcile."""
    key = (observed.namespace, observed.name)
    done = runs.take(key)
    # A pre-traffic run waits for the canary's pods behind its Service, not only for the Deployment to count them.
    if done is None and not runs.running(key) and rollout.analysis_due(
            spec, old, observed.now, ready_behind_canary(observed, old.canary_revision)):
        parsed = ModelDeploymentSpec.model_validate(spec)
        assert parsed.rollout.analysis is not None and old.canary_revision is not None
        warmup_end = rollout.parse_timestamp(old.analysis.warmup_ends_at) if old.analysis else None
        context = RunContext(name=observed.name, namespace=observed.namespace, revision=old.canary_revision,
                             stable_revision=old.stable_revision or 0, canary_weight=old.canary_weight or 0,
                             model_version=parsed.model.version,
                             warmup_end=int(warmup_end.timestamp()) if warmup_end else 0)
        metrics = parsed.rollout.analysis.metrics or []

        def run() -> tuple[Measurement, ...]:
            measurements = providers.run(metrics, context, endpoints.targets(kube, metrics, context, settings))
            log.info("%s/%s analysis of revision %d: %s", context.namespace, context.name, context.revision,
                     ", ".join(f"{m.metric}={m.value} {m.verdict.value}" for m in measurements))
            return measurements

        warmup = parsed.rollout.analysis.warmup
        counting = warmup is not None and warmup.request_count is not None and not (
            old.analysis and old.analysis.revision == old.canary_revision and old.analysis.warmup_ends_at)

        def count() -> float | None:
            assert warmup is not None and warmup.request_count is not None
            metric = Metric(name="warmup-requests", prometheus=warmup.request_count,
                            threshold_range=ThresholdRange(min=float(warmup.requests or 0)))
            (m,) = providers.run([metric], context, endpoints.targets(kube, [metric], context, settings))
            log.info("%s/%s warm-up of revision %d: %s requests served", context.namespace, context.name,
                     context.revision, m.value)
            ok = m.verdict != Verdict.INCONCLUSIVE and m.value is not None and math.isfinite(m.value)
            return m.value if ok else None  # (an infinite count is a broken query, not a warm model)

        runs.start(key, old.canary_revision, observed.now, run, count if counting else None)
        done = runs.take(key)  # there already when runs are taken inline
    if done is None:
        return observed, None
    return replace(observed, measurements=done.measurements, measured_revision=done.revision,
                   measured_at=done.started, measured_requests=done.requests), done


# Answers that say the API server could not take a write now, not that it never will: a conflict, throttling,
# its own or a webhook's failure. A retry usually goes through, so one is reported to users only when it keeps
# failing: from the REPORT_TRANSIENT_AFTER-th reconcile in a row that fails (the queue retries after 1, 2, 5 s:
# about 8 s of trying). Until then it shows in the log and the reconcile error metric only.
TRANSIENT = frozenset({409, 429, 500, 502, 503, 504})
REPORT_TRANSIENT_AFTER = 3


def reconcile(kube: Kube, namespace: str, name: str, settings: Settings, runs: AnalysisRuns | None = None,
              clock: Callable[[], datetime] = _utcnow, failing: int = 0) -> Result:
    """Bring one ModelDeployment's children and status in line with its spec. `failing`: how many reconciles of
    it have failed in a row before this one."""
    started, writes_before = time.monotonic(), kube.writes_here
    md = kube.get(names.API_VERSION, names.KIND, namespace, name)
    if md is None:
        return Result(gone=True)
    if md["metadata"].get("deletionTimestamp"):
        let_go(kube, md)
        return Result(gone=True)  # garbage collection removes the children
    observed, live = observe(kube, md, clock())
    old = parse_status(md.get("status"))
    spec = md.get("spec") or {}
    runs = runs or AnalysisRuns(0)
    taken: Finished | None = None
    try:
        observed, taken = measure(kube, observed, spec, old, settings, runs)
        observed = traffic.observe_weight(kube, observed, spec)
    except RouterError as exc:
        plan = rollout.failed(old, observed, "TrafficRouterError", str(exc))
    else:
        plan = rollout.plan(spec, old, observed, settings)
    try:
        plan = carry_out(kube, md, plan, live, old, observed, failing)
    except BaseException:
        # Not written to status: the run's verdict would be lost (and acted on without its evidence). The next
        # reconcile takes it again. (Found by the fault harness: a 409 on the rollback's first write.)
        if taken is not None:
            runs.give_back((namespace, name), taken)
        raise
    phase = plan.status.phase.value if plan.status.phase else None
    return Result(phase=phase, canary_weight=plan.status.canary_weight or 0,
                  events=tuple(e.reason for e in plan.events),
                  requeue_after=_next_look(plan, spec, observed, runs),
                  writes=kube.writes_here - writes_before, seconds=time.monotonic() - started)


def carry_out(kube: Kube, md: JSON, plan: rollout.Plan, live: Live, old: ModelDeploymentStatus, observed: Observed,
              failing: int) -> rollout.Plan:
    """Apply a plan, set its weights, and write its status: the plan as carried out (a refused object turns it
    into a report of that). Raises what must be retried."""
    namespace, name = observed.namespace, observed.name
    try:
        apply_plan(kube, md, plan, live)
        if plan.status.route is not None:
            hold_for_route(kube, md, True)  # before the first weight is set
        set_weights(kube, observed.namespace, plan)
        if plan.status.route is None and plan.release is None:
            hold_for_route(kube, md, False)
    except RouterError as exc:
        plan = rollout.failed(old, observed, "TrafficRouterError", str(exc))
    except WriteError as err:
        if not err.from_spec or err.exc.status not in (400, 422):
            # The server's own trouble (a 5xx such as a full Service IP range, a conflict, a quota, a
            # permission): say so in status and an Event, keep the phase, and let the caller retry.
            if err.exc.status in TRANSIENT and failing + 1 < REPORT_TRANSIENT_AFTER:
                raise err from err.exc
            try:
                report(kube, md, retrying(old, observed, f"the API server did not take {err.what}: "
                                                         f"{err.exc.status} {_api_message(err.exc)}"))
            except ApiException as also:  # the server may refuse the report too; the refused write matters
                log.warning("%s/%s: could not report %s in status: %s %s", namespace, name, err, also.status,
                            also.reason)
            raise err from err.exc
        # The API server refused an object built from this spec: report it,
        # keep what serves, and wait for the spec to change.
        plan = rollout.failed(old, observed, "ApplyRejected", f"the API server rejected {err.what}: "
                              f"{_api_message(err.exc)}; fix the spec field it names")
    report(kube, md, plan)
    return plan


def _next_look(plan: rollout.Plan, spec: JSON, observed: Observed, runs: AnalysisRuns) -> float | None:
    """When to reconcile again: the plan's next deadline, or at once when an analysis run is already due. That
    happens when the run just folded in began an interval or more ago (a slow endpoint; lastRunAt keeps whole
    seconds): the planner's wake for it lies in the past, and no event may come to start the next run."""
    key = (observed.namespace, observed.name)
    if not runs.running(key) and rollout.analysis_due(
            spec, plan.status, observed.now, ready_behind_canary(observed, plan.status.canary_revision)):
        return min(plan.requeue_after or RUN_DUE_NOW, RUN_DUE_NOW)
    return plan.requeue_after


# How soon a reconcile looks again when an analysis run is due now.
RUN_DUE_NOW = 0.1


def _api_message(exc: ApiException) -> str:
    import json

    try:
        body: Any = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)
