"""The ModelDeployment status: phase, revisions, replicas, kstatus conditions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    # Ready/Progressing/Degraded are what people read; Reconciling/Stalled are
    # the abnormal-true pair kstatus (Flux, kubectl wait, cli-utils) reads.
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_Model):
    type: str
    status: Annotated[str, Field(pattern="^(True|False|Unknown)$")]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


class Measurement(_Model):
    """One metric's result in one analysis run."""

    metric: str
    verdict: Verdict
    value: float | None = None
    message: str = ""


class AnalysisStatus(_Model):
    """Analysis of the revision rolling out: counts of runs, and the latest run's measurements."""

    revision: int
    runs: int = 0
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    # Inconclusive runs in a row (since the last decisive run, resume or promote); past inconclusiveLimit
    # the rollout waits for a person.
    inconclusive_streak: int = 0
    # A person promoted without a passing run (`promote --full`): evidence was waived for this revision.
    waived: bool = False
    # rollout.analysis.warmup: when it began (the canary's first requests) and ends (known at once for a duration;
    # for a number of requests, once a run has counted them), the requests counted so far, and the runs taken
    # before the end, which count neither way.
    warmup_started_at: str | None = None
    warmup_ends_at: str | None = None
    warmup_requests: int | None = None
    warmup_runs: int = 0
    last_run_at: str | None = None
    last_verdict: Verdict | None = None
    measurements: list[Measurement] = []


class RollbackOverride(_Model):
    """`kubectl modeldeploy rollback --to-revision N`: serve N until the spec's serving template changes."""

    revision: int
    spec_hash: str


class ManagedRoute(_Model):
    """The user's route whose weights the operator manages: which router, and its trafficRouting block."""

    router: str
    config: dict[str, Any]


class ModelDeploymentStatus(_Model):
    observed_generation: int | None = None
    phase: Phase | None = None
    stable_revision: int | None = None
    canary_revision: int | None = None
    # The share the canary actually serves (Ready pods, or the weight the route confirms), and the share its
    # current step asks for: they differ while pods start or a route catches up.
    canary_weight: Annotated[int | None, Field(ge=0, le=100)] = None
    step_weight: Annotated[int | None, Field(ge=0, le=100)] = None
    current_step_index: int | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    url: str | None = None
    # The scale subresource's label selector: every serving pod, whichever revision.
    selector: str | None = None
    model_version: str | None = None
    rollout_started_at: str | None = None
    step_started_at: str | None = None
    bake_started_at: str | None = None  # rollout.bake: when the canary reached 100% with every pod Ready
    analysis: AnalysisStatus | None = None
    rollback: RollbackOverride | None = None
    # Taken off (its canary backend removed) when the spec names another route or router, or the ModelDeployment
    # is deleted (a finalizer waits for that while it is set).
    route: ManagedRoute | None = None
    # Tokens of the imperative requests (annotations) already carried out.
    handled_requests: dict[str, str] = {}
    conditions: list[Condition] = []
    message: str | None = None
