"""What the reconciler observed, as plain values the planners read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RevisionRecord:
    """One entry of the revision history (a ControllerRevision)."""

    number: int
    hash: str
    model_version: str
    outcome: str  # see desired.history.Outcome
    reason: str = ""
    created: str = ""
    template: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentFacts:
    """A live Deployment running one revision."""

    revision: int
    replicas: int  # spec.replicas
    ready_replicas: int
    available_replicas: int = 0
    scale_down_at: datetime | None = None
    max_restarts: int = 0  # the highest container restart count of its pods
    crashing_pod: str = ""


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile knows about a ModelDeployment and its children."""

    name: str
    namespace: str
    uid: str
    generation: int
    now: datetime
    deployments: dict[int, DeploymentFacts] = field(default_factory=dict)
    revisions: tuple[RevisionRecord, ...] = ()
    services: frozenset[str] = frozenset()
    has_hpa: bool = False
    has_pdb: bool = False
    missing_secrets: tuple[str, ...] = ()
    missing_claims: tuple[str, ...] = ()
