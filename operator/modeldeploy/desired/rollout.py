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
from modeldeploy.api.spec import ModelDeploymentSpec, ModelSource, PodTemplate, Runtime, parse_duration
from modeldeploy.api.status import AnalysisStatus, ModelDeploymentStatus, Phase, RollbackOverride, Verdict
from modeldeploy.desired import requests, scaling, service, weights, workload
from modeldeploy.desired.conditions import conditions
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import Outcome, controller_revision, revision_name
from modeldeploy.desired.judge import run_verdict
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


@dataclass(frozen=True)
class Traffic:
    """Weights a mesh router should carry: `router` names it, `config` is its spec block."""

    router: str
    config: dict[str, Any]
    stable_service: str
    canary_service: str
    canary_weight: int


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Ref] = field(default_factory=list)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    traffic: Traffic | None = None


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
            if rec.outcome in _STOPPED and not rec.released:
                self.set_outcome(number, Outcome(rec.outcome), rec.reason, released=True)
            elif rec.outcome == Outcome.PROGRESSING.value:
                self.set_outcome(number, Outcome.ABORTED, "the spec moved on before it was ready", released=True)

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

    def pods_of(self, number: int) -> int:
        f = self.facts(number)
        return f.replicas if f else 0

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
        stable = self.stable()
        goal = self.goal(stable)
        self.release_others(goal)
        target = self.record(goal)
        if target.outcome in _STOPPED and target.released:
            # Asked for again after the spec moved away: a new attempt.
            self.set_outcome(goal, Outcome.PROGRESSING)
            target = self.record(goal)
        t = target.number
        in_flight = stable is not None and stable != t and target.outcome not in _STOPPED
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
        if target.outcome in _STOPPED:
            self.replica_counts[t] = 0
            verb = "was aborted" if target.outcome == Outcome.ABORTED.value else "failed"
            return self.finish(stable, None, Phase.DEGRADED, "RolledBack" if verb == "failed" else "Aborted",
                               f"revision {t} (model {target.model_version}) {verb}: {target.reason}; "
                               f"revision {stable} serves. Change the spec to try again")
        if with_steps:
            return self.canary(t, stable)
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
        self.replica_counts[stable] = self.serving_size(stable)
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
                self.plan.events.append(Event("Normal", "RollbackRequested",
                                              f"rolling back to revision {number} (model "
                                              f"{self.record(number).model_version}); it serves until the "
                                              f"spec's serving template changes"))
            else:
                known = ", ".join(str(n) for n in sorted(self.records)) or "none"
                self.plan.events.append(Event("Warning", "RollbackRejected",
                                              f"revision {number} is not in the history (known: {known}); "
                                              f"see `kubectl modeldeploy history {self.obs.name}`"))
        if self.override is not None:
            number = self.override.revision
            if self.record(number).outcome in _STOPPED:
                # Asking for it back by hand is the "spec change" that lifts a failure.
                self.set_outcome(number, Outcome.SUPERSEDED)
            return number
        return spec_rev

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
        if self.spec.autoscaling:
            size = max(size, self.serving_size(stable))
        self.replica_counts[t] = size
        self.replica_counts[stable] = self.serving_size(stable)
        rec = self.record(t)
        self.started = (parse_timestamp(self.old.rollout_started_at)
                        if self.old.canary_revision == t else None) or self.now
        ready = self.ready(t)
        f = self.facts(t)
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
        self.replica_counts[t] = self.serving_size(t) if self.spec.autoscaling else size
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
            return self.finish(stable, t, Phase.DEGRADED, "RolloutStuck",
                               f"revision {t} (model {rec.model_version}): {failure}; autoRollback is off: "
                               f"fix the spec or run `kubectl modeldeploy abort {self.obs.name}`")
        self.set_outcome(t, Outcome.FAILED, failure)
        self.replica_counts[t] = 0
        self.replica_counts[stable] = self.serving_size(stable)
        self.weight = 0
        self.plan.events.append(Event("Warning", "RolledBack",
                                      f"revision {t} (model {rec.model_version}) rolled back: "
                                      f"{failure}; revision {stable} serves 100%"))
        return self.finish(stable, None, Phase.DEGRADED, "RolledBack",
                           f"revision {t} (model {rec.model_version}) failed: {failure}; "
                           f"revision {stable} serves. Change the spec to try again")

    # -- canary steps ------------------------------------------------------------
    def canary(self, t: int, stable: int) -> Plan:
        """setWeight / pause / analysis steps, then promotion."""
        steps = self.spec.rollout.steps or []
        old = self.old
        fresh = old.canary_revision != t
        self.started = (None if fresh else parse_timestamp(old.rollout_started_at)) or self.now
        step_started = (None if fresh else parse_timestamp(old.step_started_at)) or self.now
        index = 0 if fresh or old.current_step_index is None else old.current_step_index
        self.weight = 0 if fresh or old.canary_weight is None else old.canary_weight
        self.analysis = self.record_analysis(t, fresh)
        total = self.serving_size(stable)
        rec = self.record(t)
        held = self.requests.paused or self.spec.paused

        if self.requests.promote_full:
            self.handled[requests.PROMOTE_FULL] = self.requests.promote_full
            index, step_started = len(steps), self.now
        if self.requests.promote:
            self.handled[requests.PROMOTE] = self.requests.promote
            if index < len(steps):
                index, step_started = index + 1, self.now

        failure = self.canary_failure(t, index, steps, step_started)
        if failure is not None:
            return self.roll_back(t, stable, failure)

        waiting = ""
        while not held and index < len(steps):
            step = steps[index]
            if step.set_weight is not None:
                self.weight = step.set_weight
                if not self.weight_reached(t, total):
                    waiting = f"waiting for {self.split(t, total)[1]} canary pods and the traffic split"
                    self.wake.append(1.0)
                    break
            elif step.pause is not None:
                if step.pause.duration is None:
                    waiting = f"paused until `kubectl modeldeploy promote {self.obs.name}`"
                    break
                ends = step_started + timedelta(seconds=parse_duration(step.pause.duration))
                if self.now < ends:
                    waiting = f"pause {step.pause.duration}"
                    self.wake.append((ends - self.now).total_seconds())
                    break
            elif step.analysis is not None and not self.analysis_passed(step_started):
                waiting = "waiting for an analysis run to pass"
                break
            index, step_started = index + 1, self.now

        if index >= len(steps) and not held:
            # Every step passed: the canary takes all of the traffic, then becomes stable.
            self.weight = 100
            f = self.facts(t)
            if f is not None and f.replicas >= total and self.ready(t) >= total and self.weight_reached(t, total):
                self.replica_counts[stable] = self.pods_of(stable)
                return self.promote(t, stable, total)
            waiting = f"promoting: {self.ready(t)}/{total} pods ready"
            self.wake.append(1.0)

        self.index, self.step_started = index, step_started
        stable_pods, canary_pods = self.split(t, total)
        if index >= len(steps) and not held:
            # Stable keeps what it has until promotion; the scale-down delay then applies.
            stable_pods = max(stable_pods, self.pods_of(stable))
        self.replica_counts[t], self.replica_counts[stable] = canary_pods, stable_pods
        self.canary_rev = t
        self.wake.append(self.next_analysis_in())
        deadline = step_started + timedelta(seconds=self.spec.rollout.progress_deadline_seconds)
        self.wake.append((deadline - self.now).total_seconds())
        progress = f"revision {t} (model {rec.model_version}) at {self.weight}%"
        if self.analysis and self.analysis.runs:
            progress += f": analysis {self.analysis.passed}/{self.analysis.runs} passed"
        if held:
            return self.finish(stable, t, Phase.PAUSED, "Paused",
                               f"{progress}; held by a pause request (`kubectl modeldeploy resume "
                               f"{self.obs.name}` continues)")
        step_text = f"step {min(index, len(steps)) + 1}/{len(steps)}" if index < len(steps) else "final"
        phase = Phase.PAUSED if waiting.startswith("paused until") else Phase.PROGRESSING
        return self.finish(stable, t, phase, "Paused" if phase == Phase.PAUSED else "Canary",
                           f"{progress} ({step_text}{': ' + waiting if waiting else ''})")

    def split(self, t: int, total: int) -> tuple[int, int]:
        """(stable, canary) pods for the current weight, per traffic router."""
        if self.router == "replicas":
            return weights.replicas_split(total, self.weight, self.ready(t))
        return weights.mesh_split(total, self.weight)

    def weight_reached(self, t: int, total: int) -> bool:
        """The canary has its pods Ready and the router reports the weight."""
        _, canary = self.split(t, total)
        f = self.facts(t)
        pods_ok = f is not None and f.replicas >= canary and self.ready(t) >= canary
        if self.router == "replicas":
            return pods_ok
        return pods_ok and self.obs.router_weight == self.weight

    def canary_failure(self, t: int, index: int, steps: list[Any], step_started: datetime) -> str | None:
        """Pod health, analysis and deadlines, with numbers; None while the canary may still pass."""
        f = self.facts(t)
        limit = self.settings.crash_restart_limit
        if f is not None and f.max_restarts >= limit:
            return f"pod {f.crashing_pod} restarted {f.max_restarts} times (limit {limit}): crash-looping"
        a = self.analysis
        failure_limit = self.spec.rollout.analysis.failure_limit if self.spec.rollout.analysis else 0
        if a is not None and a.failed > failure_limit:
            worst = "; ".join(f"{m.metric}={_num(m.value)} ({m.message})" for m in a.measurements
                              if m.verdict == Verdict.FAIL)
            return (f"analysis failed {a.failed} of {a.runs} runs (failureLimit {failure_limit}): "
                    f"{worst or 'see status.analysis'}")
        waits_on_something = index >= len(steps) or steps[index].pause is None
        elapsed = (self.now - step_started).total_seconds()
        deadline = self.spec.rollout.progress_deadline_seconds
        if waits_on_something and elapsed >= deadline:
            return (f"step {index + 1} made no progress in {int(elapsed)}s (progressDeadlineSeconds {deadline}): "
                    f"{self.ready(t)} canary pods ready")
        return None

    def record_analysis(self, t: int, fresh: bool) -> AnalysisStatus | None:
        """Fold this reconcile's measurements (if any) into the running analysis."""
        old = self.old.analysis
        a = old if (old is not None and old.revision == t and not fresh) else AnalysisStatus(revision=t)
        run = self.obs.measurements
        if run is None:
            return a
        verdict = run_verdict(list(run))
        return a.model_copy(update={
            "runs": a.runs + 1,
            "passed": a.passed + (verdict == Verdict.PASS),
            "failed": a.failed + (verdict == Verdict.FAIL),
            "inconclusive": a.inconclusive + (verdict == Verdict.INCONCLUSIVE),
            "last_run_at": timestamp(self.now),
            "last_verdict": verdict,
            "measurements": list(run),
        })

    def analysis_passed(self, step_started: datetime) -> bool:
        """An analysis step passes on a passing run taken after it began (or at once with no metrics)."""
        if not (self.spec.rollout.analysis and self.spec.rollout.analysis.metrics):
            return True
        a = self.analysis
        last = parse_timestamp(a.last_run_at) if a else None
        return bool(a and last and last >= step_started.replace(microsecond=0) and a.last_verdict == Verdict.PASS)

    def next_analysis_in(self) -> float:
        """Seconds until the next analysis run is due (0 when none is configured)."""
        due = analysis_due_at(self.spec, self.analysis, self.started)
        return (due - self.now).total_seconds() if due else 0.0

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
        if stable is not None and stable not in self.replica_counts and stable not in self.scale_down:
            self.replica_counts[stable] = self.serving_size(stable)  # what serves never loses its pods
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
        self.apply_services(serving, canary)
        self.apply_traffic(canary)
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
        if f is None and replicas == 0 and number not in self.replica_counts:
            return  # nothing to keep warm
        self.plan.apply.append(workload.deployment(self.spec_of(number), self.owner, number, replicas,
                                                   self.settings, scale_down_at))

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
        if self.router == "replicas" or routing is None:
            return
        block = routing.gateway_api if self.router == "gatewayAPI" else routing.istio
        assert block is not None
        weight = self.weight if canary is not None else 0
        self.plan.traffic = Traffic(self.router, block.model_dump(by_alias=True, exclude_none=True, mode="json"),
                                    f"{self.obs.name}-stable", f"{self.obs.name}-canary", weight)

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
            if number in keep or number not in live or number == numbers[-1]:
                continue  # the newest stays, so revision numbers are never handed out twice
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
            canary_weight=self.weight if canary is not None and self.canary_rev == canary else None,
            current_step_index=self.index if canary is not None and self.canary_rev == canary else None,
            step_started_at=(timestamp(self.step_started) if self.step_started and canary is not None
                             and self.canary_rev == canary else None),
            analysis=self.analysis if self.analysis and self.analysis.runs else None,
            rollback=self.override,
            handled_requests=self.handled,
            replicas=sum(f.replicas for f in live),
            ready_replicas=sum(f.ready_replicas for f in live),
            url=service.url(self.owner),
            model_version=self.record(stable).model_version if stable is not None else None,
            rollout_started_at=(None if self.clear_started else
                                timestamp(self.started) if canary is not None or self.keep_started else None),
            conditions=conditions(phase, reason, message, self.obs.generation, self.old.conditions, now),
            message=message,
        )


_STOPPED = (Outcome.FAILED.value, Outcome.ABORTED.value)


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def analysis_due_at(spec: ModelDeploymentSpec, analysis: AnalysisStatus | None,
                    started: datetime) -> datetime | None:
    """When the next analysis run of a canary is due; None when no metrics are configured."""
    block = spec.rollout.analysis
    if not block or not block.metrics:
        return None
    last = parse_timestamp(analysis.last_run_at) if analysis else None
    return (last or started) + timedelta(seconds=parse_duration(block.interval))


def analysis_due(raw_spec: dict[str, Any], status: ModelDeploymentStatus, now: datetime) -> bool:
    """Should this reconcile take an analysis run? Only while a canary with steps has traffic."""
    try:
        spec = ModelDeploymentSpec.model_validate(raw_spec)
    except ValidationError:
        return False
    if not spec.rollout.steps or status.canary_revision is None or not status.canary_weight:
        return False
    started = parse_timestamp(status.rollout_started_at) or now
    analysis = status.analysis if status.analysis and status.analysis.revision == status.canary_revision else None
    due = analysis_due_at(spec, analysis, started)
    return due is not None and now >= due


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
