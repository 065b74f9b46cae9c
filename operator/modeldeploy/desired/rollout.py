"""The serving planner: spec + status + observed facts + time -> manifests, deletions, status, events.

Pure: it reads values and returns values; the reconciler applies the result.
`plan` validates the spec, reads the rollout's state from status, makes one
transition (`desired.transition`, the table in docs/rollouts.md), and builds the
objects that decision asks for. A change of the serving template makes a new
revision, which runs beside the stable one (capacity never drops) until it is
Ready, or through its canary steps, then becomes stable; the old stable keeps
its pods for scaleDownDelaySeconds, for a fast way back. A revision that misses
its progress deadline, crash-loops or fails analysis is rolled back and recorded
as failed, and is not retried until the serving template changes again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec, ModelSource, PodTemplate, Runtime
from modeldeploy.api.status import ManagedRoute, ModelDeploymentStatus
from modeldeploy.desired import comparator, requests, scaling, service, weights, workload
from modeldeploy.desired.actions import Event, Plan, Ref, Traffic
from modeldeploy.desired.analysis import analysis_due
from modeldeploy.desired.canary import header_route, mirror
from modeldeploy.desired.clock import parse_timestamp, timestamp
from modeldeploy.desired.conditions import conditions
from modeldeploy.desired.facts import Observed
from modeldeploy.desired.history import Outcome, controller_revision, revision_name
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.state import Decision, RolloutState, World
from modeldeploy.desired.transition import transition
from modeldeploy.desired.validity import failed, format_validation_error, unhonourable

# The planner's vocabulary, for the reconciler and the tests.
__all__ = ["Event", "Plan", "Ref", "Traffic", "analysis_due", "failed", "parse_timestamp", "plan", "timestamp"]


def plan(raw_spec: dict[str, Any], status: ModelDeploymentStatus, obs: Observed, settings: Settings) -> Plan:
    """Decide everything one reconcile should do."""
    try:
        spec = ModelDeploymentSpec.model_validate(raw_spec)
    except ValidationError as exc:
        return failed(status, obs, "InvalidSpec", format_validation_error(exc))
    problem = unhonourable(spec, obs, settings)
    if problem is not None:
        return failed(status, obs, *problem)
    world = World(spec, obs, settings, requests.pending(obs.annotations, status.handled_requests))
    return told_of_unknown_requests(build(world, status, transition(RolloutState.from_status(status), world)),
                                    obs.annotations)


def told_of_unknown_requests(out: Plan, annotations: dict[str, str]) -> Plan:
    """A Warning Event, once per value, for each request annotation the operator cannot carry out (a typo
    would otherwise do nothing without a word); it is recorded with the requests carried out."""
    handled = out.status.handled_requests
    odd = requests.unrecognised(annotations, handled)
    if odd:
        out.events.extend(Event("Warning", "UnknownRequest", requests.unrecognised_message(k, v))
                          for k, v in sorted(odd.items()))
        out.status = out.status.model_copy(update={"handled_requests": {**handled, **odd}})
    return out


def build(world: World, old: ModelDeploymentStatus, d: Decision) -> Plan:
    """The objects, weights and status a decision asks for."""
    move, fleet = d.move, d.fleet
    out = Plan(events=list(d.events), requeue_after=d.requeue_after)
    for number, pods in fleet.deployments.items():
        out.apply.append(workload.deployment(spec_of(world, d, number), world.owner, number, pods.replicas,
                                             world.settings, pods.scale_down_at, pods.superseded_at))
    out.delete.extend(Ref("apps/v1", "Deployment", names.deployment_name(world.obs.name, n)) for n in fleet.delete)
    # A revision rolled back (it failed) whose pods are still going away serves no request
    failed_leaving = any(n != fleet.serving and pods.replicas
                         and move.pass_.ledger.records[n].outcome == Outcome.FAILED.value
                         for n, pods in fleet.deployments.items() if n in move.pass_.ledger.records)
    services(world, fleet.serving, move.canary, failed_leaving, out, baking=move.bake_started is not None)
    comparing(world, fleet.serving, move.canary, out)
    route = traffic(world, old, move.canary, move.weight, move.position.index if move.position else None, out)
    scaling_objects(world, out)
    history(world, d, out)
    out.status = status(world, old, d, route)
    return out


def spec_of(world: World, d: Decision, number: int) -> ModelDeploymentSpec:
    """The spec as it was for a revision: the current spec with that revision's serving template."""
    tpl = d.move.pass_.ledger[number].template
    return world.spec.model_copy(update={
        "model": ModelSource.model_validate(tpl["model"]),
        "runtime": Runtime.model_validate(tpl["runtime"]),
        "template": PodTemplate.model_validate(tpl["template"]) if tpl.get("template") else None,
    })


def services(world: World, serving: int, canary: int | None, failed_leaving: bool, out: Plan,
             baking: bool = False) -> None:
    name, owner = world.obs.name, world.owner
    # While a canary runs, `<md>` selects every revision's pods (the replicas router's split is their share). When
    # another revision comes to serve (a promotion, a revert mid-canary that gives the stable revision back the
    # pods it lent), it goes on selecting every one until that revision has all its pods Ready, so the others keep
    # serving meanwhile. Then only the serving revision's, and it stays so while that one serves (a pod that turns
    # unready does not widen it again): a superseded revision keeps its pods warm for scaleDownDelaySeconds as the
    # fast way back, but serves no request. After a rollback (`failed_leaving`: the leaving revision failed its
    # analysis, crash-looped or missed its deadline) it selects the serving revision's pods at once, Ready or not:
    # fewer pods serve for a while, but no client gets the failed model's answers. (A Service selector cannot
    # leave out one revision alone.) A canary the spec moved on from, or one aborted by hand, judged by no
    # verdict, drains as above, so capacity holds.
    # (A bake period: the canary has every pod Ready and serves alone; the stable revision's pods stay warm
    # behind `<md>-stable` only, for a rollback without a cold start.)
    settled = failed_leaving or world.obs.client_selects == serving or world.ready(serving) >= world.size
    every = canary is not None or not settled
    alone = canary if baking else None if every else serving
    if alone is not None and world.obs.client_selects is None and \
            world.ready_endpoints(alone) < min(world.ready(alone), world.size):
        alone = None  # (narrowing: only once that revision's Ready pods are behind it)
    if alone is not None and world.obs.client_selects not in (None, alone):
        # From one revision's pods to another's (a rollback or an abort during a bake) only by way of both, for the
        # pass until `<md>`'s EndpointSlices change: a selector switched between two sets of pods left it with no
        # Ready endpoint for 100-200 ms while kube-controller-manager caught up (measured on the local control
        # plane). The leaving pods are going meanwhile: their Deployment is written after this Service.
        alone = None
    out.apply.append(service.service(owner, name, alone))
    out.apply.append(service.service(owner, f"{name}-stable", serving))
    if world.spec.rollout.steps and (canary is not None or world.router != "replicas"):
        # A mesh route names it, so it is kept between rollouts (on the stable pods, at weight 0) and the route
        # never dangles. Without a mesh nothing routes to it between rollouts: it lives only while a canary runs,
        # which spares kube-controller-manager a Service and its EndpointSlice per settled model.
        out.apply.append(service.service(owner, f"{name}-canary", canary if canary is not None else serving))
    elif f"{name}-canary" in world.obs.services:
        out.delete.append(Ref("v1", "Service", f"{name}-canary"))


def comparing(world: World, stable: int, canary: int | None, out: Plan) -> None:
    """The comparator while a canary judged by a compare metric runs; gone once none is."""
    analysis = world.spec.rollout.analysis
    compare = analysis.compared() if analysis is not None else None
    name = names.mirror_name(world.obs.name)
    if compare is not None and canary is not None:
        out.apply.extend(comparator.objects(world.owner, world.spec, compare, stable, canary, world.settings))
    elif name in world.obs.services:
        out.delete.extend([Ref("apps/v1", "Deployment", name), Ref("v1", "Service", name)])


def traffic(world: World, old: ModelDeploymentStatus, canary: int | None, weight: int, index: int | None,
            out: Plan) -> ManagedRoute | None:
    """The weights a mesh route should carry, and the route the operator now manages (None without a mesh)."""
    routing = world.spec.rollout.traffic_routing
    name = world.obs.name
    route = None
    if world.router != "replicas" and routing is not None:
        block = routing.gateway_api if world.router == "gatewayAPI" else routing.istio
        assert block is not None
        config = block.model_dump(by_alias=True, exclude_none=True, mode="json")
        headers, copied = ((header_route(world, index), mirror(world, index))
                           if canary is not None and index is not None else ((), 0))
        out.traffic = Traffic(world.router, config, f"{name}-stable", f"{name}-canary",
                              weight if canary is not None else 0, headers, copied,
                              names.mirror_name(name), world.spec.rollout.compares())
        route = ManagedRoute(router=world.router, config=config)
    if old.route is not None and old.route != route:
        # The spec names another route, or none: the one it named gets its own backends back.
        out.release = Traffic(old.route.router, old.route.config, f"{name}-stable", f"{name}-canary", 0,
                              comparator_service=names.mirror_name(name))
    return route


def scaling_objects(world: World, out: Plan) -> None:
    spec, obs = world.spec, world.obs
    if spec.autoscaling:
        out.apply.append(scaling.hpa(world.owner, spec.autoscaling))
    elif obs.has_hpa:
        out.delete.append(Ref("autoscaling/v2", "HorizontalPodAutoscaler", obs.name))
    floor = spec.autoscaling.min_replicas if spec.autoscaling else spec.desired_replicas()
    if floor > 1:
        out.apply.append(scaling.pdb(world.owner))
    elif obs.has_pdb:
        out.delete.append(Ref("policy/v1", "PodDisruptionBudget", obs.name))


def history(world: World, d: Decision, out: Plan) -> None:
    """Changed records written back; the oldest beyond the limit pruned, never one still deployed."""
    ledger = d.move.pass_.ledger
    live = {r.number for r in world.obs.revisions}
    for number in sorted(ledger.changed):
        out.apply.append(controller_revision(world.owner, ledger[number]))
    numbers = sorted(ledger.records)
    # The newest stays, so revision numbers are never handed out twice.
    prunable = [n for n in numbers[:-1] if n not in d.fleet.kept and n in live]
    for number in prunable[:max(0, len(numbers) - world.spec.revision_history_limit)]:
        out.delete.append(Ref("apps/v1", "ControllerRevision", revision_name(world.obs.name, ledger[number].hash)))


def served_weight(world: World, stable: int | None, canary: int | None) -> int:
    """The share the canary serves now: with no mesh, of the Ready endpoints behind `<md>` (what kube-proxy
    sends requests to), the weight the route reports with one (0 when it cannot tell).

    The endpoints, not the Deployments' readiness: a Deployment whose spec just changed (a stable scaled down by
    one) counts no Ready pods until its controller catches up, while its pods go on serving; measured on real
    pods, status said 100% while clients got 0% from the canary. Before the Service has EndpointSlices (it was
    just made), the Deployments' Ready pods are the best guess."""
    if world.router != "replicas":
        return world.obs.router_weight or 0
    behind = world.obs.ready_endpoints.get(world.obs.name)
    if behind is not None:
        serving = sum(behind.values())
        return weights.effective_weight(serving - behind.get(canary, 0), behind.get(canary, 0)) \
            if canary is not None else 0
    return weights.effective_weight(world.ready(stable) if stable is not None else 0,
                                    world.ready(canary) if canary is not None else 0)


def status(world: World, old: ModelDeploymentStatus, d: Decision, route: ManagedRoute | None) -> ModelDeploymentStatus:
    move, obs = d.move, world.obs
    live = [obs.deployments[n] for n in d.fleet.kept if n in obs.deployments]
    at = move.position
    analysis = move.analysis if move.analysis is not None else old.analysis
    stable = move.stable
    return ModelDeploymentStatus(
        observed_generation=obs.generation,
        phase=move.phase,
        stable_revision=stable,
        canary_revision=move.canary,
        canary_weight=served_weight(world, stable, move.canary) if at else None,
        step_weight=move.weight if at else None,
        current_step_index=at.index if at else None,
        step_started_at=timestamp(at.step_started) if at and at.step_started else None,
        bake_started_at=timestamp(move.bake_started) if move.bake_started else None,
        analysis=analysis if analysis and (analysis.runs or analysis.waived or analysis.warmup_started_at
                                           or analysis.warmup_ends_at) else None,
        rollback=move.pass_.override,
        route=route,
        handled_requests=dict(d.handled),
        replicas=sum(f.replicas for f in live),
        ready_replicas=sum(f.ready_replicas for f in live),
        url=service.url(world.owner),
        selector=service.selector(world.owner),
        model_version=move.pass_.ledger[stable].model_version if stable is not None else None,
        rollout_started_at=timestamp(move.started) if move.started else None,
        conditions=conditions(move.phase, move.reason, move.message, obs.generation, old.conditions,
                              timestamp(world.now)),
        message=move.message,
    )
