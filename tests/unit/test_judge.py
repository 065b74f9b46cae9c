"""Verdicts from structured thresholds (desired/judge.py), bounds inclusive, and how a run adds up."""

from __future__ import annotations

import math

import pytest

from modeldeploy.api.spec import ThresholdRange
from modeldeploy.api.status import Measurement, Verdict
from modeldeploy.desired.judge import judge, run_verdict

BOTH = ThresholdRange(min=0.1, max=0.5)


@pytest.mark.parametrize(("value", "threshold", "verdict", "says"), [
    (None, BOTH, Verdict.INCONCLUSIVE, "no data"),
    (math.nan, BOTH, Verdict.INCONCLUSIVE, "no data"),
    (7.0, None, Verdict.PASS, "no threshold"),
    (0.1, BOTH, Verdict.PASS, "within range"),  # bounds are inclusive
    (0.5, BOTH, Verdict.PASS, "within range"),
    (0.3, BOTH, Verdict.PASS, "within range"),
    (0.09, BOTH, Verdict.FAIL, "0.09 is below the minimum 0.1"),
    (0.51, BOTH, Verdict.FAIL, "0.51 is above the maximum 0.5"),
    (-1.0, ThresholdRange(max=0.5), Verdict.PASS, "within range"),
    (9.0, ThresholdRange(min=0.1), Verdict.PASS, "within range"),
], ids=["none", "nan", "no-threshold", "at-min", "at-max", "inside", "below", "above", "max-only", "min-only"])
def test_judge(value: float | None, threshold: ThresholdRange | None, verdict: Verdict, says: str) -> None:
    m = judge("errors", value, threshold)
    assert (m.metric, m.verdict, m.message) == ("errors", verdict, says)
    assert m.value == (None if value is None or math.isnan(value) else value)


def run(*verdicts: Verdict) -> list[Measurement]:
    return [Measurement(metric=f"m{i}", verdict=v) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize(("verdicts", "expected"), [
    ((Verdict.PASS, Verdict.PASS), Verdict.PASS),
    ((Verdict.PASS, Verdict.INCONCLUSIVE), Verdict.INCONCLUSIVE),
    ((Verdict.INCONCLUSIVE, Verdict.FAIL), Verdict.FAIL),
    ((Verdict.FAIL, Verdict.PASS), Verdict.FAIL),
    ((), Verdict.PASS),
], ids=["all-pass", "one-cannot-tell", "fail-wins-over-inconclusive", "one-fails", "no-metrics"])
def test_run_verdict(verdicts: tuple[Verdict, ...], expected: Verdict) -> None:
    assert run_verdict(run(*verdicts)) == expected
