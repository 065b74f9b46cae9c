"""What the reconciler observed, as plain values the planners read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeploy.api.status import Measurement


@dataclass(frozen=True)
class RevisionRecord:
    """One entry of the revision history (a ControllerRevision)."""

    number: int
    hash: str
    model_version: str
    outcome: str  # see desired.history.Outcome
    reason: str = ""
    released: bool = False  # a failure the spec has moved away from (see names.ANN_RELEASED)
    created: str = ""
    template: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentFacts:
    """A live Deployment running one revision."""

    revision: int
    replicas: int  # spec.replicas
    ready_replicas: int
    available_replicas: int = 0
    # The Deployment controller has seen its spec, and the revision's pods (terminating ones too) number
    # spec.replicas: none left over from a scale-down, none missing.
    settled: bool = True
    # Its pods that exist, terminating ones too: what it holds of the nodes (and their GPUs) right now.
    live_pods: int = 0
    # When the longest-loading of its pods started its model server, whose readiness has not yet answered (the
    # model is loading); None when no pod is loading.
    loading_since: datetime | None = None
    # When one of its pods last became Ready: progress, for a rollout that a pod budget paces one pod at a time.
    last_ready_at: datetime | None = None
    scale_down_at: datetime | None = None
    superseded_at: datetime | None = None  # when it stopped serving (see names.ANN_SUPERSEDED_AT)
    max_restarts: int = 0  # the highest container restart count of its pods
    crashing_pod: str = ""
    # How that pod's most restarted container last ended, e.g. "container server last exited 1 (Error)".
    crash_exit: str = ""
    # Why its pods cannot start, as the kubelet or the ReplicaSet says: an image that is not there, a container
    # the kubelet cannot make, a quota that refuses pods. Empty while nothing says so.
    stuck: str = ""
    # The revision as the Deployment itself records it (hash, model version, serving template; no outcome), for
    # re-adopting it when the history is gone; None on a Deployment that does not say.
    carried: RevisionRecord | None = None

    def crash_loop(self, limit: int) -> str | None:
        """Why its pods count as crash-looping, with numbers; None below `limit` restarts."""
        if self.max_restarts < limit:
            return None
        exit_text = f"; {self.crash_exit}" if self.crash_exit else ""
        return f"pod {self.crashing_pod} restarted {self.max_restarts} times (limit {limit}): crash-looping{exit_text}"


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
    # The revision the client Service `<md>` selects alone, if it selects one (None: every revision, or no Service).
    client_selects: int | None = None
    has_hpa: bool = False
    has_pdb: bool = False
    missing_secrets: tuple[str, ...] = ()
    missing_claims: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    # The AnalysisProviders the spec's metrics name that exist, by name: "prometheus" or "webhook".
    analysis_providers: dict[str, str] = field(default_factory=dict)
    # Ready endpoints behind each of its Services (their EndpointSlices say): Service name -> revision -> count.
    ready_endpoints: dict[str, dict[int, int]] = field(default_factory=dict)
    # An analysis run taken during this reconcile (see desired.analysis_due).
    measurements: tuple[Measurement, ...] | None = None
    # The revision that run measured: a run of a revision that is no longer the canary is discarded.
    measured_revision: int | None = None
    # When that run began (runs are taken off the reconcile, and may finish passes later).
    measured_at: datetime | None = None
    # The requests the canary had served when that run was taken (rollout.analysis.warmup.requestCount), while
    # a warm-up by requests runs; None otherwise, or when it could not be counted.
    measured_requests: float | None = None
    # Canary weight the traffic router reports, None when it cannot tell.
    router_weight: int | None = None
