"""The rollout state machine's values: the state read from status, what one pass knows, what it decides.

All frozen. A pass reads `RolloutState` (from status alone, so a restarted operator
resumes where it was) and `World` (spec, observed children, time, requests), makes
one transition (`desired.transition`), and returns a `Decision`: the next state
and the pods each revision keeps. Builders (`desired.rollout`) turn a Decision into
manifests and status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import AnalysisStatus, ModelDeploymentStatus, Phase, RollbackOverride
from modeldeploy.desired.actions import Event
from modeldeploy.desired.clock import parse_timestamp
from modeldeploy.desired.facts import DeploymentFacts, Observed
from modeldeploy.desired.history import Outcome
from modeldeploy.desired.ledger import Ledger
from modeldeploy.desired.requests import Requests
from modeldeploy.desired.runtime import resolve
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.validity import ready_reason
from modeldeploy.desired.workload import Owner


@dataclass(frozen=True)
class RolloutState:
    """Where the rollout is, as status records it."""

    phase: Phase | None = None
    reason: str | None = None
    stable: int | None = None
    canary: int | None = None
    step: int | None = None  # the canary step in progress
    step_weight: int | None = None  # that step's target weight
    canary_weight: int | None = None  # the share the canary served
    step_started: datetime | None = None
    started: datetime | None = None  # when this revision's rollout began
    bake_started: datetime | None = None  # when its bake period began (rollout.bake)
    analysis: AnalysisStatus | None = None
    override: RollbackOverride | None = None  # `rollback --to-revision` in force
    handled: Mapping[str, str] = field(default_factory=dict)  # request tokens carried out

    @classmethod
    def from_status(cls, status: ModelDeploymentStatus) -> RolloutState:
        return cls(phase=status.phase, reason=ready_reason(status), stable=status.stable_revision,
                   canary=status.canary_revision, step=status.current_step_index, step_weight=status.step_weight,
                   canary_weight=status.canary_weight, step_started=parse_timestamp(status.step_started_at),
                   started=parse_timestamp(status.rollout_started_at),
                   bake_started=parse_timestamp(status.bake_started_at), analysis=status.analysis,
                   override=status.rollback, handled=dict(status.handled_requests))


# The reason a rollout shows while its revision's pods cannot start (a Warning Event when it begins).
PODS_STUCK = "PodsCannotStart"


@dataclass(frozen=True)
class World:
    """What one pass knows besides the state: the spec, the observed children, time, settings, requests."""

    spec: ModelDeploymentSpec
    obs: Observed
    settings: Settings
    requests: Requests

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def owner(self) -> Owner:
        return Owner(self.obs.name, self.obs.namespace, self.obs.uid)

    @property
    def router(self) -> str:
        routing = self.spec.rollout.traffic_routing
        return "gatewayAPI" if routing and routing.gateway_api else (
            "istio" if routing and routing.istio else "replicas")

    @property
    def size(self) -> int:
        """Pods the serving revisions should have between them: spec.replicas, which an autoscaler writes
        through the scale subresource (one number, split between revisions during a rollout)."""
        return self.spec.desired_replicas()

    @property
    def held(self) -> bool:
        """A person holds the rollout (spec.paused or `kubectl modeldeploy pause`)."""
        return self.spec.paused or self.requests.paused

    def facts(self, number: int) -> DeploymentFacts | None:
        return self.obs.deployments.get(number)

    def pods(self, number: int) -> int:
        f = self.facts(number)
        return f.replicas if f else 0

    @property
    def budget(self) -> int | None:
        """Pods every revision may hold between them (serving size + rollout.maxSurge); None: no bound."""
        surge = self.spec.rollout.max_surge
        return None if surge is None else self.size + surge

    def holding(self, number: int) -> int:
        """Pods a revision holds of the nodes now: those it asks for, or more while scaled-down ones terminate."""
        f = self.facts(number)
        return max(f.replicas, f.live_pods) if f else 0

    def progress_since(self, number: int, since: datetime) -> datetime:
        """Where a revision's progress deadline counts from: `since` (the rollout's or the step's start), or,
        within a pod budget or with a startup probe, when one of its pods last became Ready, if later. A budget
        brings pods up a few at a time, and slow loads end one by one, so the whole rollout may rightly take many
        deadlines; what it must not do is stop moving. (And a pod whose load just ended is Ready before its
        Deployment counts it so.)"""
        f = self.facts(number)
        if f is None or f.last_ready_at is None:
            return since
        if self.budget is None and resolve(self.spec.runtime).startup is None:
            return since
        return max(since, f.last_ready_at)

    def ready_endpoints(self, number: int) -> int:
        """A revision's Ready endpoints behind `<md>`; the Deployment's Ready pods before the Service has any."""
        behind = self.obs.ready_endpoints.get(self.obs.name)
        return self.ready(number) if behind is None else behind.get(number, 0)

    def ready_behind_service(self, number: int) -> int:
        """A revision's Ready pods that `<md>` sends requests to: what its EndpointSlices count (they trail the
        pods' readiness), at most the Deployment's count; the Deployment's alone before the Service has any."""
        return min(self.ready(number), self.ready_endpoints(number))

    def ready(self, number: int) -> int:
        f = self.facts(number)
        return f.ready_replicas if f else 0

    def stuck(self, number: int) -> str:
        """Why the revision's pods cannot start (the kubelet's or the ReplicaSet's words); empty if nothing says."""
        f = self.facts(number)
        return f.stuck if f else ""

    def loading(self, number: int) -> tuple[float, float] | None:
        """(seconds it has loaded, seconds it may take) while a revision's longest-loading pod loads its model:
        the startup budget (runtime.startup, a preset's default), at least progressDeadlineSeconds; None while
        no pod loads."""
        f = self.facts(number)
        if f is None or f.loading_since is None or f.stuck:
            return None  # (pods that cannot start without a change are not loading)
        startup = resolve(self.spec.runtime).startup
        budget = max(self.spec.rollout.progress_deadline_seconds, startup.timeout_seconds if startup else 0)
        return max(0.0, (self.now - f.loading_since).total_seconds()), float(budget)

    def readiness(self, number: int, size: int) -> str:
        """`3/4 pods ready`, and while some are not, why they cannot start, when something says, or how long
        the model has been loading."""
        ready, why = self.ready(number), self.stuck(number)
        loading = self.loading(number)
        if ready < size and why:
            return f"{ready}/{size} pods ready; {why}"
        if ready < size and loading is not None:
            return f"{ready}/{size} pods ready; {loading_text(*loading)}"
        return f"{ready}/{size} pods ready"

    def loading_wake(self, number: int) -> tuple[float, ...]:
        """When the loading time in the message next changes (it counts in minutes, in 10 s under one)."""
        loading = self.loading(number)
        if loading is None:
            return ()
        step = 10.0 if loading[0] < 60 else 60.0
        return (step - loading[0] % step,)


def loading_text(loaded: float, budget: float) -> str:
    """`loading model (3m of up to 10m)`, or that it has loaded for longer than it may."""
    if loaded >= budget:
        return f"loading model for {exact(loaded)}, past its startup budget of {exact(budget)}"
    return f"loading model ({span(loaded)} of up to {exact(budget)})"


def span(seconds: float) -> str:
    """How long a load has run, for people: 10 s steps under a minute, then whole minutes (`3m`, `1h5m`), so
    the message changes, and status is written, a few times a minute at most."""
    if seconds < 60:
        return f"{int(seconds // 10 * 10)}s"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60}m" if minutes >= 60 else f"{minutes}m"


def exact(seconds: float) -> str:
    """A configured length: `45s`, `10m`, `1m30s`."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if minutes and rest else f"{minutes}m" if minutes else f"{rest}s"


@dataclass(frozen=True)
class Pass:
    """What this pass settled before choosing where the rollout goes: the history as it now stands, the
    revision the spec asks for, the requests carried out, the rollback in force, the Events so far."""

    ledger: Ledger
    target: int  # the spec's revision (before any rollback override)
    handled: Mapping[str, str]
    override: RollbackOverride | None = None
    events: tuple[Event, ...] = ()

    def with_outcome(self, number: int, outcome: Outcome, reason: str = "", released: bool = False) -> Pass:
        return replace(self, ledger=self.ledger.with_outcome(number, outcome, reason, released))

    def said(self, kind: str, reason: str, message: str) -> Pass:
        return replace(self, events=(*self.events, Event(kind, reason, message)))

    def carried_out(self, key: str, token: str) -> Pass:
        return replace(self, handled={**self.handled, key: token})


@dataclass(frozen=True)
class Position:
    """Where a canary is in its steps."""

    index: int
    step_started: datetime | None  # None while held: the step clock is off


@dataclass(frozen=True)
class Move:
    """One transition, before the pods of revisions it did not size are worked out."""

    pass_: Pass
    stable: int | None
    canary: int | None
    phase: Phase
    reason: str
    message: str
    pods: Mapping[int, int] = field(default_factory=dict)  # revisions whose pod count this move set
    retiring: frozenset[int] = frozenset()  # superseded now: scaled down after scaleDownDelaySeconds
    wake: tuple[float, ...] = ()  # seconds until something is due
    position: Position | None = None  # set while the canary is in its steps
    weight: int = 0  # the canary's traffic weight
    started: datetime | None = None  # rolloutStartedAt to record
    analysis: AnalysisStatus | None = None
    # Baking since then (rollout.bake): the canary alone serves, the stable revision keeps its pods warm.
    bake_started: datetime | None = None


@dataclass(frozen=True)
class Pods:
    """What one revision's Deployment should have."""

    replicas: int
    scale_down_at: datetime | None = None  # superseded: scaled to zero then
    superseded_at: datetime | None = None


@dataclass(frozen=True)
class Fleet:
    """The pods of every revision after this pass."""

    deployments: Mapping[int, Pods]  # Deployments to apply, by revision
    kept: frozenset[int]  # revisions whose Deployment stays (their history too)
    delete: tuple[int, ...]  # revisions whose Deployment goes
    serving: int  # the revision behind `<md>-stable`


@dataclass(frozen=True)
class Decision:
    """The transition's result: the next state, the history, the pods, what to say, when to look again."""

    move: Move
    fleet: Fleet
    handled: Mapping[str, str]
    events: tuple[Event, ...]
    requeue_after: float | None
