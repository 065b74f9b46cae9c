"""When a canary's analysis runs, and how its measurements add up (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.spec import ModelDeploymentSpec, parse_duration
from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired.clock import parse_timestamp, timestamp
from modeldeploy.desired.facts import Observed
from modeldeploy.desired.judge import run_verdict


def number(value: float | None) -> str:
    """A measured value for a message."""
    return "none" if value is None else f"{value:g}"


def analysis_due_at(spec: ModelDeploymentSpec, analysis: AnalysisStatus | None,
                    started: datetime) -> datetime | None:
    """When the next analysis run of a canary is due; None when no metrics are configured."""
    block = spec.rollout.analysis
    if not block or not block.metrics:
        return None
    last = parse_timestamp(analysis.last_run_at) if analysis else None
    return (last or started) + timedelta(seconds=parse_duration(block.interval))


def ready_behind_canary(observed: Observed, revision: int | None) -> int:
    """The canary's pods that are Ready and behind the `-canary` Service. A pre-traffic run sent as soon as the
    Deployment counts its pods Ready could find the Service without them: its EndpointSlices trail by a moment
    (another controller writes them), and between rollouts they hold the stable pods."""
    if revision is None:
        return 0
    canary = observed.deployments.get(revision)
    behind = observed.ready_endpoints.get(f"{observed.name}-canary", {}).get(revision, 0)
    return min(canary.ready_replicas if canary else 0, behind)


def analysis_due(raw_spec: dict[str, Any], status: ModelDeploymentStatus, now: datetime,
                 canary_ready: int = 0) -> bool:
    """Should this reconcile take an analysis run? While a canary with steps has traffic (a weight, or copies
    of requests from a mirror step), or before any traffic when its step is an analysis step and its pods are
    Ready (a pre-traffic smoke test). Not while the rollout waits for a person after too many inconclusive runs:
    only a person moves it on."""
    try:
        spec = ModelDeploymentSpec.model_validate(raw_spec)
    except ValidationError:
        return False
    steps = spec.rollout.steps or []
    if not steps or status.canary_revision is None or inconclusive_hold(status):
        return False
    index = status.current_step_index
    pre_traffic = index is not None and index < len(steps) and steps[index].analysis is not None
    # (Copies of requests are traffic too: a mirrored canary is judged all along, as a weighted one is.)
    mirrored = index is not None and spec.rollout.mirror_at(index) > 0
    if not status.canary_weight and not ((pre_traffic or mirrored) and canary_ready > 0):
        return False
    started = parse_timestamp(status.rollout_started_at) or now
    analysis = status.analysis if status.analysis and status.analysis.revision == status.canary_revision else None
    due = analysis_due_at(spec, analysis, started)
    return due is not None and now >= due


def fold(analysis: AnalysisStatus, run: tuple[Measurement, ...], now: datetime) -> AnalysisStatus:
    """The analysis with one more run counted."""
    verdict = run_verdict(list(run))
    return analysis.model_copy(update={
        "runs": analysis.runs + 1,
        "passed": analysis.passed + (verdict == Verdict.PASS),
        "failed": analysis.failed + (verdict == Verdict.FAIL),
        "inconclusive": analysis.inconclusive + (verdict == Verdict.INCONCLUSIVE),
        "inconclusive_streak": analysis.inconclusive_streak + 1 if verdict == Verdict.INCONCLUSIVE else 0,
        "last_run_at": timestamp(now),
        "last_verdict": verdict,
        "measurements": list(run),
    })


def fold_warm_up(analysis: AnalysisStatus, run: tuple[Measurement, ...], now: datetime) -> AnalysisStatus:
    """The analysis with a run taken during the canary's warm-up: shown and spaced like any other, but counted
    neither as passed (it is no evidence for the warm model) nor as failed, nor toward an inconclusive streak."""
    return analysis.model_copy(update={
        "runs": analysis.runs + 1,
        "warmup_runs": analysis.warmup_runs + 1,
        "last_run_at": timestamp(now),
        "last_verdict": None,
        "measurements": list(run),
    })


INCONCLUSIVE_HOLD = "AnalysisInconclusive"  # the reason a rollout waits on after too many inconclusive runs


def inconclusive_hold(status: ModelDeploymentStatus) -> bool:
    """Is the rollout waiting for a person after too many inconclusive runs?"""
    return status.phase == Phase.PAUSED and any(c.type == "Ready" and c.reason == INCONCLUSIVE_HOLD
                                                for c in status.conditions)


def unclear(analysis: AnalysisStatus) -> str:
    """What the last run's inconclusive metrics said, for a person (the provider's own error)."""
    return "; ".join(f"{m.metric}: {m.message}" for m in analysis.measurements
                     if m.verdict == Verdict.INCONCLUSIVE) or "no metric could tell"
