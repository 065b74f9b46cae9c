"""Builders and readers for planner unit tests: a hand-made world at a fixed `NOW`, and the plan read
the way the reconciler reads it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Condition, ModelDeploymentStatus, Phase
from modeldeploy.desired import rollout
from modeldeploy.desired.conditions import conditions
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import Outcome
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.settings import Settings

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
MD, NS, UID, GENERATION = "fraud", "risk", "6f1c2b7e-0000-4000-8000-000000000001", 4
IMAGE = "registry.example/sklearn-server:1.4"
# The planner tests write inline analysis URLs (the endpoint rules have their own tests): allowed here.
SETTINGS = Settings(allow_inline_analysis_urls=True)

STABLE, PROGRESSING, SUPERSEDED, FAILED = (Outcome.STABLE, Outcome.PROGRESSING, Outcome.SUPERSEDED,
                                          Outcome.FAILED)


# -- builders -----------------------------------------------------------------

def spec(version: str = "7", **overrides: Any) -> dict[str, Any]:
    """A raw spec as a user writes it; keyword overrides replace top-level fields (None removes one)."""
    raw: dict[str, Any] = {"model": {"uri": f"s3://models/fraud/v{version}", "version": version},
                           "runtime": {"image": IMAGE}, "replicas": 3}
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def record(number: int, version: str = "7", outcome: Outcome = STABLE, reason: str = "",
           **overrides: Any) -> RevisionRecord:
    """The ControllerRevision the operator would have written for `spec(version, **overrides)`."""
    template = ModelDeploymentSpec.model_validate(spec(version, **overrides)).serving_template()
    return RevisionRecord(number=number, hash=template_hash(template), model_version=version,
                          outcome=outcome.value, reason=reason, template=template)


def ready(revision: int, n: int = 3, **facts: Any) -> DeploymentFacts:
    """The Deployment of a revision with n replicas, all Ready."""
    return DeploymentFacts(revision=revision, replicas=n, ready_replicas=n, available_replicas=n, **facts)


def starting(revision: int, replicas: int = 3, ready: int = 0, **facts: Any) -> DeploymentFacts:
    """The Deployment of a revision with fewer Ready pods than replicas."""
    return DeploymentFacts(revision=revision, replicas=replicas, ready_replicas=ready,
                           available_replicas=ready, **facts)


def observed(*deployments: DeploymentFacts, revisions: tuple[RevisionRecord, ...] = (),
             now: datetime = NOW, **more: Any) -> Observed:
    """What the reconciler saw: the given Deployments and ControllerRevisions at `now`."""
    return Observed(name=MD, namespace=NS, uid=UID, generation=GENERATION, now=now,
                    deployments={d.revision: d for d in deployments}, revisions=revisions, **more)


# The condition reason the planner writes with each phase, in the common case.
REASONS = {Phase.PENDING: "Deploying", Phase.HEALTHY: "Healthy", Phase.DEGRADED: "RolledBack",
           Phase.PAUSED: "Paused", Phase.FAILED: "InvalidSpec"}


def status(phase: Phase | None = None, stable: int | None = None, canary: int | None = None,
           started_ago: float | None = None, reason: str | None = None, **more: Any) -> ModelDeploymentStatus:
    """A status an earlier pass wrote, with its conditions; started_ago sets rolloutStartedAt before NOW."""
    started = rollout.timestamp(NOW - timedelta(seconds=started_ago)) if started_ago is not None else None
    conds = []
    if phase is not None:
        reason = reason or REASONS.get(phase) or ("RollingOut" if canary else "Scaling")
        conds = conditions(phase, reason, "", GENERATION - 1, [], rollout.timestamp(NOW - timedelta(hours=1)))
    return ModelDeploymentStatus(phase=phase, stable_revision=stable, canary_revision=canary,
                                 rollout_started_at=started, conditions=conds, **more)


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


HEALTHY_1 = status(Phase.HEALTHY, stable=1)
R1 = record(1, "7")


def rolling(started_ago: float) -> ModelDeploymentStatus:
    """Revision 2 rolling out beside stable revision 1 since `started_ago` seconds."""
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=started_ago)


# -- readers --------------------------------------------------------------------

def manifests(plan: rollout.Plan, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in plan.apply if m["kind"] == kind}


def replicas(plan: rollout.Plan) -> dict[int, int]:
    """Planned spec.replicas per revision Deployment."""
    return {int(m["metadata"]["labels"][names.LABEL_REVISION]): m["spec"]["replicas"]
            for m in manifests(plan, "Deployment").values() if names.LABEL_REVISION in m["metadata"]["labels"]}


def outcomes(plan: rollout.Plan) -> dict[int, str]:
    """Outcome of every ControllerRevision the plan writes, by revision number."""
    return {m["revision"]: m["metadata"]["annotations"][names.ANN_OUTCOME]
            for m in manifests(plan, "ControllerRevision").values()}


def deleted(plan: rollout.Plan) -> set[tuple[str, str]]:
    return {(r.kind, r.name) for r in plan.delete}


def reasons(plan: rollout.Plan) -> list[str]:
    return [e.reason for e in plan.events]


def condition(st: ModelDeploymentStatus, ctype: str) -> Condition:
    return next(c for c in st.conditions if c.type == ctype)


def annotations(plan: rollout.Plan, revision: int) -> dict[str, str]:
    dep = manifests(plan, "Deployment")[names.deployment_name(MD, revision)]
    return dict(dep["metadata"].get("annotations") or {})


def plan(raw: dict[str, Any], old: ModelDeploymentStatus, obs: Observed,
         settings: Settings = SETTINGS) -> rollout.Plan:
    return rollout.plan(raw, old, obs, settings)


def record_of(manifest: dict[str, Any]) -> RevisionRecord:
    """The ControllerRevision a plan writes, read back the way the reconciler observes it."""
    ann = manifest["metadata"]["annotations"]
    return RevisionRecord(number=manifest["revision"], hash=manifest["metadata"]["labels"][names.LABEL_REVISION_HASH],
                          model_version=ann[names.ANN_MODEL_VERSION], outcome=ann[names.ANN_OUTCOME],
                          reason=ann.get(names.ANN_OUTCOME_REASON, ""), released=names.ANN_RELEASED in ann,
                          template=manifest["data"])


def take(plan: rollout.Plan, deps: dict[int, DeploymentFacts], records: dict[int, RevisionRecord]) -> None:
    """What a cluster does with a plan, at once (in place): Deployments resized (their Ready pods never above
    the new size), deleted ones gone, ControllerRevisions stored. New pods become Ready only when a test says."""
    for m in plan.apply:
        if m["kind"] == "Deployment" and names.LABEL_REVISION in m["metadata"]["labels"]:
            rev = int(m["metadata"]["labels"][names.LABEL_REVISION])
            old = deps.get(rev, DeploymentFacts(revision=rev, replicas=0, ready_replicas=0))
            want = m["spec"]["replicas"]
            deps[rev] = replace(old, replicas=want, ready_replicas=min(old.ready_replicas, want))
        elif m["kind"] == "ControllerRevision":
            records[m["revision"]] = record_of(m)
    for ref in plan.delete:
        if ref.kind == "Deployment" and ref.name != names.mirror_name(MD):
            deps.pop(int(ref.name.rsplit("-r", 1)[1]), None)
