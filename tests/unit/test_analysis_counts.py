"""How analysis runs add up (desired/analysis.py): counts, the inconclusive streak, and the hold it leads to."""

from __future__ import annotations

import pytest

from modeldeploy.api.status import AnalysisStatus, Condition, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired import rollout
from modeldeploy.desired.analysis import INCONCLUSIVE_HOLD, fold, inconclusive_hold, unclear
from planning import NOW

BEFORE = AnalysisStatus(revision=2, runs=4, passed=2, failed=1, inconclusive=1, inconclusive_streak=1)


def measured(verdict: Verdict, message: str = "m") -> tuple[Measurement, ...]:
    return (Measurement(metric="errors", verdict=verdict, value=0.01, message=message),)


@pytest.mark.parametrize(("verdict", "counts"), [
    (Verdict.PASS, (5, 3, 1, 1, 0)),
    (Verdict.FAIL, (5, 2, 2, 1, 0)),
    (Verdict.INCONCLUSIVE, (5, 2, 1, 2, 2)),
], ids=["pass", "fail", "inconclusive"])
def test_a_run_is_counted_once_by_its_verdict(verdict: Verdict, counts: tuple[int, ...]) -> None:
    after = fold(BEFORE, measured(verdict), NOW)
    assert (after.runs, after.passed, after.failed, after.inconclusive, after.inconclusive_streak) == counts
    assert after.last_verdict == verdict and after.last_run_at == rollout.timestamp(NOW)
    assert after.measurements == list(measured(verdict)) and after.revision == 2


def test_a_decisive_run_ends_an_inconclusive_streak() -> None:
    streak = BEFORE.model_copy(update={"inconclusive_streak": 3})
    assert fold(streak, measured(Verdict.FAIL), NOW).inconclusive_streak == 0
    assert fold(streak, measured(Verdict.INCONCLUSIVE), NOW).inconclusive_streak == 4


def test_what_could_not_tell_is_quoted_per_metric() -> None:
    a = AnalysisStatus(revision=2, measurements=[
        Measurement(metric="errors", verdict=Verdict.INCONCLUSIVE, message="prometheus did not answer"),
        Measurement(metric="latency", verdict=Verdict.PASS, message="within range"),
        Measurement(metric="smoke", verdict=Verdict.INCONCLUSIVE, message="timed out")])
    assert unclear(a) == "errors: prometheus did not answer; smoke: timed out"
    assert unclear(AnalysisStatus(revision=2)) == "no metric could tell"


def status_with(phase: Phase, ctype: str, reason: str) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(phase=phase, conditions=[Condition(type=ctype, status="False", reason=reason)])


@pytest.mark.parametrize(("st", "held"), [
    (status_with(Phase.PAUSED, "Ready", INCONCLUSIVE_HOLD), True),
    (status_with(Phase.PAUSED, "Ready", "Paused"), False),
    (status_with(Phase.PROGRESSING, "Ready", INCONCLUSIVE_HOLD), False),
    (status_with(Phase.PAUSED, "Progressing", INCONCLUSIVE_HOLD), False),
], ids=["held", "an-ordinary-pause", "not-paused", "another-condition"])
def test_an_inconclusive_hold_is_read_from_status(st: ModelDeploymentStatus, held: bool) -> None:
    assert inconclusive_hold(st) is held
