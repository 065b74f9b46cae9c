"""Verdicts of analysis measurements: structured thresholds, never an evaluated expression."""

from __future__ import annotations

import math

from modeldeploy.api.spec import ThresholdRange
from modeldeploy.api.status import Measurement, Verdict


def judge(metric: str, value: float | None, threshold: ThresholdRange | None) -> Measurement:
    """Pass when the value lies within [min, max]; Inconclusive when there is no number."""
    if value is None or math.isnan(value):
        return Measurement(metric=metric, verdict=Verdict.INCONCLUSIVE, value=None, message="no data")
    if threshold is None:
        return Measurement(metric=metric, verdict=Verdict.PASS, value=value, message="no threshold")
    if threshold.min is not None and value < threshold.min:
        return Measurement(metric=metric, verdict=Verdict.FAIL, value=value,
                           message=f"{value:g} is below the minimum {threshold.min:g}")
    if threshold.max is not None and value > threshold.max:
        return Measurement(metric=metric, verdict=Verdict.FAIL, value=value,
                           message=f"{value:g} is above the maximum {threshold.max:g}")
    return Measurement(metric=metric, verdict=Verdict.PASS, value=value, message="within range")


def run_verdict(measurements: list[Measurement]) -> Verdict:
    """A run fails if any metric fails, is inconclusive if any cannot tell, and passes otherwise."""
    verdicts = {m.verdict for m in measurements}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS
