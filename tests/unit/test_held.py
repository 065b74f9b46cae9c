"""`autoRollback: false` holds a failed canary: its pods and weight stay until a person aborts or promotes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.api.status import AnalysisStatus, Measurement, Phase, Verdict
from modeldeploy.desired import requests, rollout
from planning import NOW, PROGRESSING, SETTINGS, STABLE, after, observed, ready, record, replicas, spec, status

STEPS = [{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}]
ANALYSIS = {"interval": "10s", "failureLimit": 1, "metrics": [
    {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.05}}]}
FAILED_RUN = (Measurement(metric="errors", verdict=Verdict.FAIL, value=0.3, message="0.3 is above the maximum 0.05"),)


def raw(auto_rollback: bool) -> dict:
    return spec("8", replicas=4, rollout={"steps": STEPS, "analysis": ANALYSIS, "autoRollback": auto_rollback,
                                          "scaleDownDelaySeconds": 5})


def at_analysis(failed: int, phase: Phase = Phase.PROGRESSING) -> object:
    analysis = AnalysisStatus(revision=2, runs=failed, failed=failed, last_run_at=rollout.timestamp(NOW),
                              last_verdict=Verdict.FAIL, measurements=list(FAILED_RUN))
    return status(phase, stable=1, canary=2, started_ago=60, reason="Canary", canary_weight=50, step_weight=50,
                  current_step_index=1, step_started_at=rollout.timestamp(NOW - timedelta(seconds=30)),
                  analysis=analysis)


def world(**more: object) -> object:
    rollout_block = {"steps": STEPS, "analysis": ANALYSIS}
    return observed(ready(1, 2), ready(2, 2), revisions=(record(1, "7", STABLE, replicas=4, rollout=rollout_block),
                                                         record(2, "8", PROGRESSING, replicas=4,
                                                                rollout=rollout_block)), **more)


@pytest.mark.parametrize("later", [0, 3600], ids=["at-once", "an-hour-later"])
def test_a_held_canary_keeps_its_pods_and_weight(later: float) -> None:
    # Given a canary at 50% whose analysis failed twice (failureLimit 1), with autoRollback off
    seen = world(now=after(later))
    p = rollout.plan(raw(False), at_analysis(2), seen, SETTINGS)
    # Then nothing is scaled down or deleted, the weight stays, and status says so with the numbers
    assert replicas(p) == {1: 2, 2: 2}
    assert not p.delete
    assert p.status.phase == Phase.DEGRADED and p.status.canary_revision == 2 and p.status.canary_weight == 50
    assert "analysis failed 2 of 2 runs" in (p.status.message or "") and "held" in (p.status.message or "")
    assert all("scale-down-at" not in str(m["metadata"].get("annotations")) for m in p.apply
               if m["kind"] == "Deployment")


def test_with_auto_rollback_the_same_failure_tears_the_canary_down() -> None:
    p = rollout.plan(raw(True), at_analysis(2), world(), SETTINGS)
    assert p.status.phase == Phase.DEGRADED and p.status.canary_revision is None
    assert replicas(p)[1] == 4 and replicas(p)[2] <= 2


def test_promote_goes_on_past_a_held_failure() -> None:
    old = at_analysis(2, Phase.DEGRADED)
    seen = world(annotations={requests.PROMOTE: "t1"})
    p = rollout.plan(raw(False), old, seen, SETTINGS)
    assert p.status.phase == Phase.PROGRESSING, p.status.message
    assert p.status.current_step_index == 2 and p.status.canary_revision == 2


def test_abort_rolls_a_held_canary_back() -> None:
    old = at_analysis(2, Phase.DEGRADED)
    p = rollout.plan(raw(False), old, world(annotations={requests.ABORT: "t1"}), SETTINGS)
    assert p.status.phase == Phase.DEGRADED and p.status.canary_revision is None and p.status.stable_revision == 1
    assert replicas(p)[1] == 4
