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

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec, ModelSource, PodTemplate, Runtime
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.desired import scaling, service, workload
from modeldeploy.desired.conditions import conditions
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import Outcome, controller_revision, revision_name
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.runtime import UnknownPreset, resolve
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.workload import Owner


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Ref:
    """An object to delete."""

    api_version: str
    kind: str
    name: str


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Ref] = field(default_factory=list)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


def timestamp(t: datetime) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes it."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> datetime | None:
    """The inverse of timestamp(); None for missing or malformed text."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: where (spec.a.b) and what."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in ("spec", *e["loc"]))
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def unhonourable(spec: ModelDeploymentSpec, obs: Observed) -> tuple[str, str] | None:
    """(reason, message) when the spec passes the schema but cannot be served as written."""
    try:
        resolve(spec.runtime)
    except UnknownPreset as exc:
        return "UnknownRuntimePreset", str(exc)
    secret = spec.model.credentials_secret
    if secret and secret in obs.missing_secrets:
        return ("CredentialsSecretNotFound",
                f"spec.model.credentialsSecret: Secret {secret!r} does not exist in namespace "
                f"{obs.namespace!r}; create it (kubectl create secret generic {secret} ...) or fix the name")
    if spec.model.uri.startswith("pvc://"):
        claim, _ = workload.split_pvc_uri(spec.model.uri)
        if claim in obs.missing_claims:
            return ("ModelClaimNotFound",
                    f"spec.model.uri: PersistentVolumeClaim {claim!r} does not exist in namespace "
                    f"{obs.namespace!r}; create it or fix the uri")
    return None


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
        self.replica_counts: dict[int, int] = {}
        self.scale_down: dict[int, datetime] = {}
        self.wake: list[float] = []
        self.started = obs.now
        self._target: int | None = None

    # -- revisions ---------------------------------------------------------
    def record(self, number: int) -> RevisionRecord:
        return self.changed.get(number) or self.records[number]

    def set_outcome(self, number: int, outcome: Outcome, reason: str = "") -> None:
        rec = self.record(number)
        if rec.outcome != outcome.value or rec.reason != reason:
            self.changed[number] = replace(rec, outcome=outcome.value, reason=reason)

    def target(self) -> RevisionRecord:
        """The revision the spec asks for: an existing one with the same template, or a new number."""
        if self._target is not None:
            return self.record(self._target)
        template = self.spec.serving_template()
        digest = template_hash(template)
        for rec in self.obs.revisions:
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
        stable = [r.number for r in self.obs.revisions if r.outcome == Outcome.STABLE.value]
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

    def ready(self, number: int) -> int:
        f = self.facts(number)
        return f.ready_replicas if f else 0

    def serving_size(self, number: int) -> int:
        """Pods a serving revision should have; an autoscaler's choice is kept."""
        f = self.facts(number)
        if self.spec.autoscaling and f is not None and f.replicas > 0:
            return f.replicas
        return self.spec.desired_replicas()

    # -- the decision ----------------------------------------------------------
    def run(self) -> Plan:
        target = self.target()
        stable = self.stable()
        t = target.number
        if self.spec.paused and stable is not None and stable != t:
            return self.finish(stable, None, Phase.PAUSED, "Paused",
                               f"rollouts are paused: revision {t} (model {target.model_version}) waits; "
                               f"revision {stable} keeps serving. Set spec.paused to false to continue")
        if stable is None or stable == t:
            return self.settle(t, stable)
        if target.outcome in (Outcome.FAILED.value, Outcome.ABORTED.value):
            self.replica_counts[t] = 0
            return self.finish(stable, None, Phase.DEGRADED, "RolledBack",
                               f"revision {t} (model {target.model_version}) {target.outcome.lower()}: "
                               f"{target.reason}; revision {stable} serves. Change the spec to try again")
        return self.progress(t, stable)

    def settle(self, t: int, stable: int | None) -> Plan:
        """One revision serves (or is about to): keep it at size."""
        size = self.serving_size(t)
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
            return self.finish(None, None, Phase.PENDING, "Deploying",
                               f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")
        return self.finish(t, None, Phase.PROGRESSING, "Scaling",
                           f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")

    def progress(self, t: int, stable: int) -> Plan:
        """A new revision rolls out beside the stable one."""
        size = self.spec.desired_replicas()
        if self.spec.autoscaling:
            size = max(size, self.serving_size(stable))
        self.replica_counts[t] = size
        self.replica_counts[stable] = self.serving_size(stable)
        rec = self.record(t)
        started = (parse_timestamp(self.old.rollout_started_at)
                   if self.old.canary_revision == t else None) or self.now
        self.started = started
        ready = self.ready(t)
        f = self.facts(t)
        if f is not None and f.replicas == size and ready >= size:
            self.set_outcome(stable, Outcome.SUPERSEDED)
            self.set_outcome(t, Outcome.STABLE)
            self.scale_down[stable] = self.now + timedelta(seconds=self.spec.rollout.scale_down_delay_seconds)
            self.plan.events.append(Event("Normal", "Promoted",
                                          f"revision {t} (model {rec.model_version}) is stable; "
                                          f"revision {stable} scales down in "
                                          f"{self.spec.rollout.scale_down_delay_seconds}s"))
            return self.finish(t, None, Phase.HEALTHY, "Healthy",
                               f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready")
        failure = self.failure(t, size, started)
        if failure is not None:
            if self.spec.rollout.auto_rollback:
                self.set_outcome(t, Outcome.FAILED, failure)
                self.replica_counts[t] = 0
                self.plan.events.append(Event("Warning", "RolledBack",
                                              f"revision {t} (model {rec.model_version}) rolled back: "
                                              f"{failure}; revision {stable} serves 100%"))
                return self.finish(stable, None, Phase.DEGRADED, "RolledBack",
                                   f"revision {t} (model {rec.model_version}) failed: {failure}; "
                                   f"revision {stable} serves. Change the spec to try again")
            return self.finish(stable, t, Phase.DEGRADED, "RolloutStuck",
                               f"revision {t} (model {rec.model_version}): {failure}; autoRollback is off: "
                               f"fix the spec or run `kubectl modeldeploy abort {self.obs.name}`")
        deadline = started + timedelta(seconds=self.spec.rollout.progress_deadline_seconds)
        self.wake.append((deadline - self.now).total_seconds())
        return self.finish(stable, t, Phase.PROGRESSING, "RollingOut",
                           f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready; "
                           f"revision {stable} serves until then")

    def failure(self, t: int, size: int, started: datetime) -> str | None:
        """Why a rolling-out revision has failed, with numbers; None while it may still succeed."""
        f = self.facts(t)
        limit = self.settings.crash_restart_limit
        if f is not None and f.max_restarts >= limit:
            return f"pod {f.crashing_pod} restarted {f.max_restarts} times (limit {limit}): crash-looping"
        elapsed = (self.now - started).total_seconds()
        deadline = self.spec.rollout.progress_deadline_seconds
        if elapsed >= deadline:
            return (f"{self.ready(t)}/{size} pods ready after {int(elapsed)}s "
                    f"(progressDeadlineSeconds {deadline})")
        return None

    # -- output ----------------------------------------------------------------
    def finish(self, stable: int | None, canary: int | None, phase: Phase, reason: str,
               message: str) -> Plan:
        serving = stable if stable is not None else self.target().number
        keep = {serving} | ({canary} if canary is not None else set()) | set(self.replica_counts)
        previous = self.previous(keep)
        if previous is not None:
            keep.add(previous)
        for number in sorted(keep):
            if number not in self.records:
                continue
            self.apply_deployment(number, serving, canary)
        for number in self.obs.deployments:
            if number not in keep:
                self.plan.delete.append(Ref("apps/v1", "Deployment",
                                            names.deployment_name(self.obs.name, number)))
        self.apply_services(serving)
        self.apply_scaling(serving)
        self.apply_history(keep)
        self.plan.status = self.status(stable, canary, phase, reason, message, keep)
        future = [w for w in self.wake if w > 0]
        self.plan.requeue_after = min(future) + 0.5 if future else None
        return self.plan

    def previous(self, keep: set[int]) -> int | None:
        """The most recent superseded revision still deployed: kept scaled down for a fast way back."""
        candidates = [n for n, f in self.obs.deployments.items()
                      if n not in keep and n in self.records
                      and self.record(n).outcome == Outcome.SUPERSEDED.value]
        return max(candidates) if candidates else None

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
        if f is None and replicas == 0:
            return  # nothing to keep warm
        self.plan.apply.append(workload.deployment(self.spec_of(number), self.owner, number, replicas,
                                                   self.settings, scale_down_at))

    def apply_services(self, serving: int) -> None:
        self.plan.apply.append(service.service(self.owner, self.obs.name, None))
        self.plan.apply.append(service.service(self.owner, f"{self.obs.name}-stable", serving))
        if f"{self.obs.name}-canary" in self.obs.services:
            self.plan.delete.append(Ref("v1", "Service", f"{self.obs.name}-canary"))

    def apply_scaling(self, serving: int) -> None:
        if self.spec.autoscaling:
            self.plan.apply.append(scaling.hpa(self.owner, self.spec.autoscaling, serving))
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
            if number in keep or number not in live:
                continue
            self.plan.delete.append(Ref("apps/v1", "ControllerRevision",
                                        revision_name(self.obs.name, self.records[number].hash)))
            excess -= 1

    def status(self, stable: int | None, canary: int | None, phase: Phase, reason: str, message: str,
               keep: set[int]) -> ModelDeploymentStatus:
        live = [self.obs.deployments[n] for n in keep if n in self.obs.deployments]
        now = timestamp(self.now)
        transition = phase != self.old.phase or reason != _reason(self.old)
        if transition and not any(e.reason == reason for e in self.plan.events):
            kind = "Warning" if phase in (Phase.DEGRADED, Phase.FAILED) else "Normal"
            self.plan.events.append(Event(kind, reason, message))
        return ModelDeploymentStatus(
            observed_generation=self.obs.generation,
            phase=phase,
            stable_revision=stable,
            canary_revision=canary,
            canary_weight=None,
            current_step_index=None,
            replicas=sum(f.replicas for f in live),
            ready_replicas=sum(f.ready_replicas for f in live),
            url=service.url(self.owner),
            model_version=self.record(stable).model_version if stable is not None else None,
            rollout_started_at=timestamp(self.started) if canary is not None else None,
            conditions=conditions(phase, reason, message, self.obs.generation, self.old.conditions, now),
            message=message,
        )


def _reason(status: ModelDeploymentStatus) -> str | None:
    for c in status.conditions:
        if c.type == "Ready":
            return c.reason
    return None


def failed(status: ModelDeploymentStatus, obs: Observed, reason: str, message: str) -> Plan:
    """A spec that cannot be honoured: say so, touch no serving object."""
    serving = status.stable_revision
    if serving is not None:
        message = f"{message}. Revision {serving} (model {status.model_version}) keeps serving"
    plan = Plan()
    plan.status = status.model_copy(update={
        "observed_generation": obs.generation,
        "phase": Phase.FAILED,
        "message": message,
        "conditions": conditions(Phase.FAILED, reason, message, obs.generation, status.conditions,
                                 timestamp(obs.now)),
    })
    if status.phase != Phase.FAILED or _reason(status) != reason or status.message != message:
        plan.events.append(Event("Warning", reason, message))
    return plan


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
