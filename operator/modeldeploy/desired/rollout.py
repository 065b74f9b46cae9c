"""The serving planner: spec + observed facts + time -> manifests, deletions, status, events.

Pure: it reads values and returns values. The reconciler applies the result.
A change of the serving template makes a new revision, which runs beside the
stable one at full size (capacity never drops) until it is fully Ready, then
becomes stable; the old stable is scaled to zero after scaleDownDelaySeconds
and kept for a fast way back. A revision that misses its progress deadline or
crash-loops is rolled back and recorded as failed, and is not retried until
the serving template changes again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec, ModelSource, PodTemplate, Runtime
from modeldeploy.api.status import AnalysisStatus, ManagedRoute, ModelDeploymentStatus, Phase, RollbackOverride
from modeldeploy.desired import requests, scaling, service, weights, workload
from modeldeploy.desired.actions import Event, Plan, Ref, Traffic
from modeldeploy.desired.analysis import analysis_due
from modeldeploy.desired.canary import CanarySteps
from modeldeploy.desired.clock import parse_timestamp, timestamp
from modeldeploy.desired.conditions import conditions
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import STOPPED, Outcome, controller_revision, revision_name
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.validity import failed, format_validation_error, ready_reason, unhonourable
from modeldeploy.desired.workload import Owner

# The planner's vocabulary, for the reconciler and the tests.
__all__ = ["Event", "Plan", "Ref", "Traffic", "analysis_due", "failed", "parse_timestamp", "plan", "timestamp"]


class _Planner:
    """One planning pass; holds the inputs so the steps stay short."""

    def __init__(self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, obs: Observed,
                 settings: Settings) -> None:
        self.spec = spec
        self.old = status
        self.obs = obs
        self.settings = settings
        self.owner = Owner(obs.name, obs.namespace, obs.uid)
        self.now = obs.now
        self.plan = Plan()
        self.records: dict[int, RevisionRecord] = {r.number: r for r in obs.revisions}
        self.changed: dict[int, RevisionRecord] = {}
        for number, f in sorted(obs.deployments.items()):
            if number not in self.records and f.carried is not None:
                # The history is gone (a cleanup, a restore): the Deployment says what it runs; adopt it as is.
                outcome = (Outcome.STABLE if number == status.stable_revision else
                           Outcome.PROGRESSING if number == status.canary_revision else Outcome.SUPERSEDED)
                self.records[number] = self.changed[number] = replace(f.carried, outcome=outcome.value)
        self.replica_counts: dict[int, int] = {}
        self.scale_down: dict[int, datetime] = {}
        self.wake: list[float] = []
        self.started = obs.now
        self._target: int | None = None
        self.requests = requests.pending(obs.annotations, status.handled_requests)
        self.handled = dict(status.handled_requests)
        self.override: RollbackOverride | None = None
        routing = spec.rollout.traffic_routing
        self.router = "gatewayAPI" if routing and routing.gateway_api else (
            "istio" if routing and routing.istio else "replicas")
        self.weight = 0
        self.clear_started = False
        self.keep_started = False
        self.index: int | None = None
        self.step_started: datetime | None = None
        self.canary_rev: int | None = None
        self.analysis: AnalysisStatus | None = status.analysis
        self.route: ManagedRoute | None = status.route

    # -- revisions ---------------------------------------------------------
    def record(self, number: int) -> RevisionRecord:
        return self.changed.get(number) or self.records[number]

    def set_outcome(self, number: int, outcome: Outcome, reason: str = "", released: bool = False) -> None:
        rec = self.record(number)
        if rec.outcome != outcome.value or rec.reason != reason or rec.released != released:
            self.changed[number] = replace(rec, outcome=outcome.value, reason=reason, released=released)

    def release_others(self, goal: int) -> None:
        """The spec asks for `goal`: earlier failures become retryable, abandoned rollouts are closed."""
        for number in list(self.records):
            rec = self.record(number)
            if number == goal:
                continue
            if rec.outcome in STOPPED and not rec.released:
                self.set_outcome(number, Outcome(rec.outcome), rec.reason, released=True)
            elif rec.outcome == Outcome.PROGRESSING.value:
                self.set_outcome(number, Outcome.ABORTED, "the spec moved on before it was ready", released=True)
                if number == self.old.canary_revision:
                    self.superseded(number, goal)

    def superseded(self, number: int, goal: int) -> None:
        """Say which canary the spec left behind, and that its pods stay until the goal's are Ready."""
        rec, target = self.record(number), self.record(goal)
        weight = f" at {self.old.canary_weight}%" if self.old.canary_weight is not None else ""
        why = ("the spec went back to it" if goal == self.old.stable_revision else "the spec changed")
        self.plan.events.append(Event("Normal", "Superseded",
                                      f"revision {number} (model {rec.model_version}){weight} superseded by "
                                      f"revision {goal} (model {target.model_version}): {why}; its pods drain "
                                      f"as revision {goal}'s become Ready"))

    def target(self) -> RevisionRecord:
        """The revision the spec asks for: an existing one with the same template, or a new number."""
        if self._target is not None:
            return self.record(self._target)
        template = self.spec.serving_template()
        digest = template_hash(template)
        for rec in sorted(self.records.values(), key=lambda r: r.number):
            if rec.hash == digest:
                self._target = rec.number
                return rec
        number = max([0, *self.records, *self.obs.deployments]) + 1
        rec = RevisionRecord(number=number, hash=digest, model_version=self.spec.model.version,
                             outcome=Outcome.PROGRESSING.value, template=template)
        self.records[number] = rec
        self.changed[number] = rec
        self._target = number
        return rec

    def stable(self) -> int | None:
        """The serving revision: from status, or from history when status was lost."""
        if self.old.stable_revision in self.records:
            return self.old.stable_revision
        stable = [r.number for r in self.records.values() if r.outcome == Outcome.STABLE.value]
        return max(stable) if stable else None

    def spec_of(self, number: int) -> ModelDeploymentSpec:
        """The spec as it was for a revision: the current spec with its serving template."""
        tpl = self.record(number).template
        return self.spec.model_copy(update={
            "model": ModelSource.model_validate(tpl["model"]),
            "runtime": Runtime.model_validate(tpl["runtime"]),
            "template": PodTemplate.model_validate(tpl["template"]) if tpl.get("template") else None,
        })

    # -- facts ---------------------------------------------------------------
    def facts(self, number: int) -> DeploymentFacts | None:
        return self.obs.deployments.get(number)

    def pods_of(self, number: int) -> int:
        f = self.facts(number)
        return f.replicas if f else 0

    def ready(self, number: int) -> int:
        f = self.facts(number)
        return f.ready_replicas if f else 0

    def serving_size(self) -> int:
        """Pods the serving revisions should have between them: spec.replicas, which an autoscaler writes
        through the scale subresource (one number, split between revisions during a rollout)."""
        return self.spec.desired_replicas()

    # -- the decision ----------------------------------------------------------
    def run(self) -> Plan:
        stable = self.stable()
        goal = self.goal(stable)
        self.release_others(goal)
        target = self.record(goal)
        if target.outcome in STOPPED and target.released:
            # Asked for again after the spec moved away: a new attempt.
            self.set_outcome(goal, Outcome.PROGRESSING)
            target = self.record(goal)
        t = target.number
        in_flight = stable is not None and stable != t and target.outcome not in STOPPED
        if self.requests.abort:
            self.handled[requests.ABORT] = self.requests.abort
            if in_flight:
                self.set_outcome(t, Outcome.ABORTED, "aborted by `kubectl modeldeploy abort`")
                target = self.record(t)
                self.plan.events.append(Event("Warning", "Aborted",
                                              f"revision {t} (model {target.model_version}) aborted; "
                                              f"revision {stable} serves 100%"))
        # A revision that served well before (a revert in git, or a rollback
        # request) comes back directly: no canary steps.
        known_good = target.outcome in (Outcome.SUPERSEDED.value, Outcome.STABLE.value)
        with_steps = bool(self.spec.rollout.steps) and not known_good and self.override is None
        held = self.spec.paused or self.requests.paused
        if held and in_flight and not (with_steps and self.old.canary_revision == t):
            return self.hold(t, stable)  # canary steps hold themselves, at their current step
        if stable is None or stable == t:
            return self.settle(t, stable)
        if target.outcome in STOPPED:
            self.replica_counts[t] = self.draining(t, stable)
            verb = "was aborted" if target.outcome == Outcome.ABORTED.value else "failed"
            return self.finish(stable, None, Phase.DEGRADED, "RolledBack" if verb == "failed" else "Aborted",
                               f"revision {t} (model {target.model_version}) {verb}: {target.reason}; "
                               f"revision {stable} serves. Change the spec to try again")
        if with_steps:
            return CanarySteps(self).run(t, stable)
        return self.progress(t, stable)

    def hold(self, t: int, stable: int | None) -> Plan:
        """Paused (spec.paused or `kubectl modeldeploy pause`): nothing moves; a new revision does not start."""
        assert stable is not None
        rec = self.record(t)
        how = "spec.paused is true" if self.spec.paused else "`kubectl modeldeploy resume` continues"
        if self.old.canary_revision != t:
            return self.finish(stable, None, Phase.PAUSED, "Paused",
                               f"rollouts are paused: revision {t} (model {rec.model_version}) waits; "
                               f"revision {stable} keeps serving ({how})")
        # In flight: both keep their pods; the progress deadline starts again on resume.
        self.replica_counts[t] = self.pods_of(t)
        self.replica_counts[stable] = self.serving_size()
        self.clear_started = True
        return self.finish(stable, t, Phase.PAUSED, "Paused",
                           f"revision {t} (model {rec.model_version}) held at {self.ready(t)} ready pods; "
                           f"revision {stable} serves ({how})")

    def goal(self, stable: int | None) -> int:
        """The revision to serve: the spec's, unless a rollback request overrides it."""
        spec_rev = self.target().number
        digest = self.record(spec_rev).hash
        self.override = self.old.rollback if (self.old.rollback and self.old.rollback.spec_hash == digest) else None
        if self.requests.rollback:
            number, token = self.requests.rollback
            self.handled[requests.ROLLBACK] = token
            if number in self.records:
                self.override = RollbackOverride(revision=number, spec_hash=digest)
                rec = self.record(number)
                before = (f"; it failed before ({rec.reason}), so this is a new attempt"
                          if rec.outcome == Outcome.FAILED.value else "")
                self.plan.events.append(Event("Normal", "RollbackRequested",
                                              f"rolling back to revision {number} (model "
                                              f"{rec.model_version}){before}; it serves until the "
                                              f"spec's serving template changes"))
            else:
                known = ", ".join(str(n) for n in sorted(self.records)) or "none"
                self.plan.events.append(Event("Warning", "RollbackRejected",
                                              f"revision {number} is not in the history (known: {known}); "
                                              f"see `kubectl modeldeploy history {self.obs.name}`"))
        if self.override is not None:
            number = self.override.revision
            rec = self.record(number)
            if rec.outcome in STOPPED and not rec.released:
                # Asking for it back by hand is the "spec change" that lifts a failure: a new attempt, which the
                # history records as one (it never served, so it is not "Superseded").
                self.set_outcome(number, Outcome(rec.outcome), rec.reason, released=True)
            return number
        return spec_rev

    def settle(self, t: int, stable: int | None) -> Plan:
        """One revision serves (or is about to): keep it at size."""
        size = self.serving_size()
        self.replica_counts[t] = size
        rec = self.record(t)
        ready = self.ready(t)
        f = self.facts(t)
        if f is not None and f.replicas == size and ready >= size:
            self.set_outcome(t, Outcome.STABLE)
            return self.finish(t, None, Phase.HEALTHY, "Healthy",
                               f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")
        if stable is None:
            self.set_outcome(t, Outcome.PROGRESSING)
            # Nothing to roll back to, but a first revision that cannot start says why.
            self.started = parse_timestamp(self.old.rollout_started_at) or self.now
            self.keep_started = True
            failure = self.failure(t, size, self.started)
            if failure is not None:
                return self.finish(None, None, Phase.DEGRADED, "RolloutStuck",
                                   f"revision {t} (model {rec.model_version}): {failure}; fix the spec")
            deadline = self.started + timedelta(seconds=self.spec.rollout.progress_deadline_seconds)
            self.wake.append((deadline - self.now).total_seconds())
            return self.finish(None, None, Phase.PENDING, "Deploying",
                               f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")
        return self.finish(t, None, Phase.PROGRESSING, "Scaling",
                           f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")

    def progress(self, t: int, stable: int) -> Plan:
        """A new revision rolls out beside the stable one at full size, then takes over."""
        size = self.spec.desired_replicas()
        self.replica_counts[t] = size
        self.replica_counts[stable] = self.serving_size()
        rec = self.record(t)
        self.started = (parse_timestamp(self.old.rollout_started_at)
                        if self.old.canary_revision == t else None) or self.now
        ready = self.ready(t)
        f = self.facts(t)
        # A crash loop fails it even while all its pods happen to be Ready between two crashes; a deadline only
        # while they are not (an operator back after a long outage does not roll back what became Ready).
        crashing = f.crash_loop(self.settings.crash_restart_limit) if f is not None else None
        if crashing:
            return self.roll_back(t, stable, crashing)
        if f is not None and f.replicas == size and ready >= size:
            return self.promote(t, stable, size)
        failure = self.failure(t, size, self.started)
        if failure is not None:
            return self.roll_back(t, stable, failure)
        deadline = self.started + timedelta(seconds=self.spec.rollout.progress_deadline_seconds)
        self.wake.append((deadline - self.now).total_seconds())
        return self.finish(stable, t, Phase.PROGRESSING, "RollingOut",
                           f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready; "
                           f"revision {stable} serves until then")

    def promote(self, t: int, stable: int, size: int) -> Plan:
        """The new revision is stable; the old one keeps its pods for the scale-down delay."""
        rec = self.record(t)
        delay = self.spec.rollout.scale_down_delay_seconds
        self.set_outcome(stable, Outcome.SUPERSEDED)
        self.set_outcome(t, Outcome.STABLE)
        self.replica_counts[t] = size
        self.replica_counts.pop(stable, None)
        self.scale_down[stable] = self.now + timedelta(seconds=delay)
        self.plan.events.append(Event("Normal", "Promoted",
                                      f"revision {t} (model {rec.model_version}) is stable; "
                                      f"revision {stable} scales down in {delay}s"))
        return self.finish(t, None, Phase.HEALTHY, "Healthy",
                           f"revision {t} (model {rec.model_version}): {self.ready(t)}/{size} pods ready")

    def roll_back(self, t: int, stable: int, failure: str) -> Plan:
        """Traffic back to stable at once; the revision is recorded as failed (or left up, without autoRollback)."""
        rec = self.record(t)
        if not self.spec.rollout.auto_rollback:
            # Held, not torn down: both revisions keep their pods and the canary its weight until a person
            # aborts (rolls back) or promotes (goes on).
            self.replica_counts.setdefault(t, self.pods_of(t))
            self.replica_counts.setdefault(stable, self.pods_of(stable))
            return self.finish(stable, t, Phase.DEGRADED, "RolloutStuck",
                               f"revision {t} (model {rec.model_version}) at {self.weight}%: {failure}; "
                               f"autoRollback is off, so it is held: `kubectl modeldeploy abort "
                               f"{self.obs.name}` rolls back, `kubectl modeldeploy promote {self.obs.name}` "
                               f"goes on")
        self.set_outcome(t, Outcome.FAILED, failure)
        self.replica_counts[stable] = self.serving_size()
        self.replica_counts[t] = self.draining(t, stable)
        self.weight = 0
        self.plan.events.append(Event("Warning", "RolledBack",
                                      f"revision {t} (model {rec.model_version}) rolled back: "
                                      f"{failure}; revision {stable} serves 100%"))
        return self.finish(stable, None, Phase.DEGRADED, "RolledBack",
                           f"revision {t} (model {rec.model_version}) failed: {failure}; "
                           f"revision {stable} serves. Change the spec to try again")

    def draining(self, t: int, stable: int) -> int:
        """Canary pods kept only while the stable revision regains its Ready pods.

        With the replicas router the stable revision may have handed pods to the
        canary; dropping the canary at once would leave the Service short, or
        empty. A mesh router takes the canary's traffic away at once (weight 0),
        and stable never gave up pods there, so this keeps pods only while stable
        is short for another reason (an autoscaler that just asked for more).
        """
        missing = self.serving_size() - self.ready(stable)
        keep = max(0, min(self.pods_of(t), missing))
        if keep:
            self.wake.append(1.0)
        return keep

    def failure(self, t: int, size: int, started: datetime) -> str | None:
        """Why a rolling-out revision has failed, with numbers; None while it may still succeed."""
        f = self.facts(t)
        crashing = f.crash_loop(self.settings.crash_restart_limit) if f is not None else None
        if crashing:
            return crashing
        elapsed = (self.now - started).total_seconds()
        deadline = self.spec.rollout.progress_deadline_seconds
        if elapsed >= deadline:
            return (f"{self.ready(t)}/{size} pods ready after {int(elapsed)}s "
                    f"(progressDeadlineSeconds {deadline})")
        return None

    # -- output ----------------------------------------------------------------
    def finish(self, stable: int | None, canary: int | None, phase: Phase, reason: str,
               message: str) -> Plan:
        self.consume_idle_promotes(canary)
        serving = stable if stable is not None else self.target().number
        if stable is not None and stable not in self.replica_counts and stable not in self.scale_down:
            self.replica_counts[stable] = self.serving_size()  # what serves never loses its pods
        keep = {serving} | ({canary} if canary is not None else set()) | set(self.replica_counts)
        previous = self.previous(keep)
        if previous is not None:
            keep.add(previous)
        for number in sorted(keep):
            if number not in self.records:
                continue
            self.apply_deployment(number, serving, canary)
        drains = self.drains(keep, serving)
        for number, pods in sorted(drains.items()):
            if number in self.records:  # one with no record (made before Deployments said what they run) is left as is
                self.plan.apply.append(workload.deployment(self.spec_of(number), self.owner, number, pods,
                                                           self.settings))
        for number in self.obs.deployments:
            if number not in keep and number not in drains:
                self.plan.delete.append(Ref("apps/v1", "Deployment",
                                            names.deployment_name(self.obs.name, number)))
        self.apply_services(serving, canary)
        self.apply_traffic(canary)
        self.apply_scaling(serving)
        self.apply_history(keep | set(drains))
        if phase == Phase.HEALTHY and (unsettled := self.unsettled()):
            # Healthy only once the pods match what was asked: a revision scaled down may still run its pods.
            phase, reason, message = Phase.PROGRESSING, "ScalingDown", f"{message}; {unsettled}"
        self.plan.status = self.status(stable, canary, phase, reason, message, keep | set(drains))
        future = [w for w in self.wake if w > 0]
        self.plan.requeue_after = min(future) + 0.5 if future else None
        return self.plan

    def unsettled(self) -> str:
        """Which revision's pods do not yet match this plan, for a person; empty when all do."""
        planned = {int(m["metadata"]["labels"][names.LABEL_REVISION]): m["spec"]["replicas"]
                   for m in self.plan.apply if m["kind"] == "Deployment"}
        waiting = [f"revision {n} scaling to {planned.get(n, 0)} pods" for n, f in sorted(self.obs.deployments.items())
                   if planned.get(n, f.replicas) != f.replicas or not f.settled]
        return ", ".join(waiting)

    def drains(self, keep: set[int], serving: int) -> dict[int, int]:
        """Pods of revisions no longer wanted (a superseded canary), kept while the wanted ones are short of
        Ready pods, so what is served never drops by more than the one pod a replacement is starting."""
        missing = self.serving_size() - sum(self.ready(n) for n in keep)
        out: dict[int, int] = {}
        leaving = [n for n in self.obs.deployments if n not in keep and self.pods_of(n)]
        for number in sorted(leaving, key=lambda n: (-self.ready(n), -n)):
            pods = min(self.pods_of(number), max(0, missing))
            if pods:
                out[number] = pods
                missing -= min(pods, self.ready(number))
        return out

    def consume_idle_promotes(self, canary: int | None) -> None:
        """A promote with no canary step to finish is spent, with a warning, so it cannot skip a later step.
        A resume is spent at once: it acts only in the pass that sees it."""
        if self.requests.resume:
            self.handled[requests.RESUME] = self.requests.resume
        held = self.spec.paused or self.requests.paused
        if canary is not None and self.canary_rev == canary and held:
            return  # kept for when the held canary resumes
        for key, token in ((requests.PROMOTE, self.requests.promote),
                           (requests.PROMOTE_FULL, self.requests.promote_full)):
            if token and self.handled.get(key) != token:
                self.handled[key] = token
                self.plan.events.append(Event("Warning", "PromoteIgnored",
                                              "`kubectl modeldeploy promote` found no canary step to finish"))

    def previous(self, keep: set[int]) -> int | None:
        """The revision superseded last, still deployed: kept (scaled down after the delay) for a fast way back.
        Last means last to serve, which after a revert or a rollback is not the highest number."""
        candidates = [n for n, f in self.obs.deployments.items()
                      if n not in keep and n in self.records
                      and self.record(n).outcome == Outcome.SUPERSEDED.value]

        def superseded_at(number: int) -> tuple[datetime, int]:
            return self.superseded_at(number) or datetime.min.replace(tzinfo=UTC), number

        return max(candidates, key=superseded_at) if candidates else None

    def superseded_at(self, number: int) -> datetime | None:
        """When a revision stopped serving: now, if this pass superseded it; else as its Deployment says."""
        if number in self.scale_down:
            return self.now
        facts = self.facts(number)
        return facts.superseded_at if facts else None

    def apply_deployment(self, number: int, serving: int, canary: int | None) -> None:
        f = self.facts(number)
        scale_down_at: datetime | None = None
        if number in self.replica_counts:
            replicas = self.replica_counts[number]
        else:
            # Superseded: keep its pods until the scale-down delay has passed.
            when = self.scale_down.get(number) or (f.scale_down_at if f else None) or (
                self.now + timedelta(seconds=self.spec.rollout.scale_down_delay_seconds))
            scale_down_at = when
            if self.now >= when:
                replicas = 0
            else:
                replicas = f.replicas if f else 0
                self.wake.append((when - self.now).total_seconds())
        if number in self.scale_down:
            scale_down_at = self.scale_down[number]
            self.wake.append((self.scale_down[number] - self.now).total_seconds())
        if f is None and replicas == 0 and number not in self.replica_counts:
            return  # nothing to keep warm
        superseded = self.superseded_at(number) if scale_down_at is not None else None
        self.plan.apply.append(workload.deployment(self.spec_of(number), self.owner, number, replicas,
                                                   self.settings, scale_down_at, superseded))

    def apply_services(self, serving: int, canary: int | None) -> None:
        name = self.obs.name
        self.plan.apply.append(service.service(self.owner, name, None))
        self.plan.apply.append(service.service(self.owner, f"{name}-stable", serving))
        if self.spec.rollout.steps:
            # Kept between rollouts (on the stable pods, at weight 0) so routes never dangle.
            self.plan.apply.append(service.service(self.owner, f"{name}-canary",
                                                   canary if canary is not None else serving))
        elif f"{name}-canary" in self.obs.services:
            self.plan.delete.append(Ref("v1", "Service", f"{name}-canary"))

    def apply_traffic(self, canary: int | None) -> None:
        routing = self.spec.rollout.traffic_routing
        self.route = None
        if self.router != "replicas" and routing is not None:
            block = routing.gateway_api if self.router == "gatewayAPI" else routing.istio
            assert block is not None
            weight = self.weight if canary is not None else 0
            config = block.model_dump(by_alias=True, exclude_none=True, mode="json")
            self.plan.traffic = Traffic(self.router, config, f"{self.obs.name}-stable", f"{self.obs.name}-canary",
                                        weight)
            self.route = ManagedRoute(router=self.router, config=config)
        before = self.old.route
        if before is not None and before != self.route:
            # The spec names another route, or none: the one it named gets its own backends back.
            self.plan.release = Traffic(before.router, before.config, f"{self.obs.name}-stable",
                                        f"{self.obs.name}-canary", 0)

    def apply_scaling(self, serving: int) -> None:
        if self.spec.autoscaling:
            self.plan.apply.append(scaling.hpa(self.owner, self.spec.autoscaling))
        elif self.obs.has_hpa:
            self.plan.delete.append(Ref("autoscaling/v2", "HorizontalPodAutoscaler", self.obs.name))
        floor = self.spec.autoscaling.min_replicas if self.spec.autoscaling else self.spec.desired_replicas()
        if floor > 1:
            self.plan.apply.append(scaling.pdb(self.owner))
        elif self.obs.has_pdb:
            self.plan.delete.append(Ref("policy/v1", "PodDisruptionBudget", self.obs.name))

    def apply_history(self, keep: set[int]) -> None:
        live = {r.number for r in self.obs.revisions}
        for _, rec in sorted(self.changed.items()):
            self.plan.apply.append(controller_revision(self.owner, rec))
        # Oldest first beyond the limit, never one that is still deployed.
        limit = self.spec.revision_history_limit
        numbers = sorted(set(self.records))
        excess = len(numbers) - limit
        for number in numbers:
            if excess <= 0:
                break
            if number in keep or number not in live or number == numbers[-1]:
                continue  # the newest stays, so revision numbers are never handed out twice
            self.plan.delete.append(Ref("apps/v1", "ControllerRevision",
                                        revision_name(self.obs.name, self.records[number].hash)))
            excess -= 1

    def served_weight(self, stable: int | None, canary: int | None) -> int:
        """The share the canary serves now: of the Ready pods behind `<md>` with no mesh, the weight the route
        reports with one (0 when it cannot tell)."""
        if self.router != "replicas":
            return self.obs.router_weight or 0
        stable_ready = self.ready(stable) if stable is not None else 0
        return weights.effective_weight(stable_ready, self.ready(canary) if canary is not None else 0)

    def status(self, stable: int | None, canary: int | None, phase: Phase, reason: str, message: str,
               keep: set[int]) -> ModelDeploymentStatus:
        live = [self.obs.deployments[n] for n in keep if n in self.obs.deployments]
        now = timestamp(self.now)
        in_canary = canary is not None and self.canary_rev == canary
        transition = phase != self.old.phase or reason != ready_reason(self.old)
        if transition and not any(e.reason == reason for e in self.plan.events):
            kind = "Warning" if phase in (Phase.DEGRADED, Phase.FAILED) else "Normal"
            self.plan.events.append(Event(kind, reason, message))
        return ModelDeploymentStatus(
            observed_generation=self.obs.generation,
            phase=phase,
            stable_revision=stable,
            canary_revision=canary,
            canary_weight=self.served_weight(stable, canary) if in_canary else None,
            step_weight=self.weight if in_canary else None,
            current_step_index=self.index if in_canary else None,
            step_started_at=timestamp(self.step_started) if self.step_started and in_canary else None,
            analysis=self.analysis if self.analysis and (self.analysis.runs or self.analysis.waived) else None,
            rollback=self.override,
            route=self.route,
            handled_requests=self.handled,
            replicas=sum(f.replicas for f in live),
            ready_replicas=sum(f.ready_replicas for f in live),
            url=service.url(self.owner),
            selector=service.selector(self.owner),
            model_version=self.record(stable).model_version if stable is not None else None,
            rollout_started_at=(None if self.clear_started else
                                timestamp(self.started) if canary is not None or self.keep_started else None),
            conditions=conditions(phase, reason, message, self.obs.generation, self.old.conditions, now),
            message=message,
        )


def plan(raw_spec: dict[str, Any], status: ModelDeploymentStatus, obs: Observed, settings: Settings) -> Plan:
    """Decide everything one reconcile should do."""
    try:
        spec = ModelDeploymentSpec.model_validate(raw_spec)
    except ValidationError as exc:
        return failed(status, obs, "InvalidSpec", format_validation_error(exc))
    problem = unhonourable(spec, obs)
    if problem is not None:
        return failed(status, obs, *problem)
    return _Planner(spec, status, obs, settings).run()
