"""The ModelDeployment status: phase, revisions, replicas, kstatus conditions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

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


class ModelDeploymentStatus(_Model):
    observed_generation: int | None = None
    phase: Phase | None = None
    stable_revision: int | None = None
    canary_revision: int | None = None
    canary_weight: Annotated[int | None, Field(ge=0, le=100)] = None
    current_step_index: int | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    url: str | None = None
    model_version: str | None = None
    rollout_started_at: str | None = None
    conditions: list[Condition] = []
    message: str | None = None
