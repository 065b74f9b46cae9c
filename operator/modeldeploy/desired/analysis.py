"""When a canary's analysis runs, and how its measurements add up (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.spec import ModelDeploymentSpec, parse_duration
from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.desired.clock import parse_timestamp, timestamp
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


def fold(analysis: AnalysisStatus, run: tuple[Measurement, ...], now: datetime) -> AnalysisStatus:
    """The analysis with one more run counted."""
    verdict = run_verdict(list(run))
    return analysis.model_copy(update={
        "runs": analysis.runs + 1,
        "passed": analysis.passed + (verdict == Verdict.PASS),
        "failed": analysis.failed + (verdict == Verdict.FAIL),
        "inconclusive": analysis.inconclusive + (verdict == Verdict.INCONCLUSIVE),
        "last_run_at": timestamp(now),
        "last_verdict": verdict,
        "measurements": list(run),
    })
