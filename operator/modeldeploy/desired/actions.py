"""What a plan asks the reconciler to do: apply, delete, set weights, write status, emit events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api.status import ModelDeploymentStatus


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
    # Requests with all these headers (name, exact value) go to the canary whatever the weight; () for none.
    headers: tuple[tuple[str, str], ...] = ()
    # The share of requests copied to the canary, whose answers are dropped; 0 for none.
    mirror: int = 0
    # The comparator's Service (`<md>-mirror`): a copy the route sends to it, or to the canary's, is the operator's.
    # With `compare` (a compare metric judges the canary by its answers) the copies go to it.
    comparator_service: str = ""
    compare: bool = False


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Ref] = field(default_factory=list)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    traffic: Traffic | None = None
    # A route the operator managed and no longer does (the spec names another): its canary backend comes off.
    release: Traffic | None = None
