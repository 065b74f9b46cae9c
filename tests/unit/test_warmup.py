"""analysis.warmup: a canary's cold start is left out of the verdict, and only the cold start."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import REQUESTS_NEED_A_COUNT, WARMUP_NEEDS_A_BOUND, Warmup
from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired import rollout
from planning import NOW, PROGRESSING, SETTINGS, STABLE, after, observed, ready, record, spec, starting, status

STEPS = [{"setWeight": 50}, {"analysis": {}}]
ANALYSIS = {"interval": "10s", "failureLimit": 0, "warmup": {"duration": "2m"}, "metrics": [
    {"name": "latency", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.5}}]}


def raw(analysis: dict[str, Any] = ANALYSIS) -> dict[str, Any]:
    return spec("8", replicas=4, rollout={"steps": STEPS, "analysis": analysis})


def canary(index: int, analysis: AnalysisStatus | None = None, weight: int = 50) -> ModelDeploymentStatus:
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=60, reason="Canary", canary_weight=weight,
                  step_weight=weight, current_step_index=index, analysis=analysis,
                  step_started_at=rollout.timestamp(NOW - timedelta(seconds=5)))


def seen(*deps: Any, verdict: Verdict | None = None, now: Any = NOW, behind: dict[int, int] | None = None) -> Any:
    block = {"steps": STEPS, "analysis": ANALYSIS}
    more: dict[str, Any] = {"now": now}
    if verdict is not None:
        more.update(measurements=(Measurement(metric="latency", verdict=verdict, value=0.9),), measured_revision=2,
                    measured_at=now)
    if behind is not None:
        more["ready_endpoints"] = {"fraud": behind}
    return observed(*deps, revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                      record(2, "8", PROGRESSING, replicas=4, rollout=block)), **more)


def warming(until: Any = None, runs: int = 0) -> AnalysisStatus:
    return AnalysisStatus(revision=2, runs=runs, warmup_runs=runs,
                          warmup_ends_at=rollout.timestamp(until or after(120)))


def test_the_warm_up_starts_when_the_canary_first_has_ready_pods_behind_the_service() -> None:
    # Given the canary's pods are Ready for the Deployment, but not yet behind the Service
    p = rollout.plan(raw(), canary(0, weight=0), seen(ready(1, 4), ready(2, 2), behind={1: 4}), SETTINGS)
    assert p.status.analysis is None or p.status.analysis.warmup_ends_at is None
    # When the Service sends them requests, then the warm-up runs from now for its duration
    p = rollout.plan(raw(), canary(0, weight=0), seen(ready(1, 2), ready(2, 2), behind={1: 2, 2: 2}), SETTINGS)
    assert p.status.analysis is not None and p.status.analysis.warmup_ends_at == rollout.timestamp(after(120))
    assert f"(warming up until {rollout.timestamp(after(120))})" in (p.status.message or ""), p.status.message


def test_a_failing_run_during_the_warm_up_is_recorded_and_not_counted() -> None:
    p = rollout.plan(raw(), canary(1, warming()), seen(ready(1, 2), ready(2, 2), verdict=Verdict.FAIL), SETTINGS)
    a = p.status.analysis
    assert p.status.phase == Phase.PROGRESSING and p.status.canary_revision == 2, p.status.message
    assert a is not None and (a.runs, a.warmup_runs, a.failed, a.passed) == (1, 1, 0, 0)
    assert a.measurements[0].verdict == Verdict.FAIL  # shown as measured
    assert "1 runs not counted" in (p.status.message or "")


def test_a_passing_run_during_the_warm_up_does_not_pass_an_analysis_step() -> None:
    p = rollout.plan(raw(), canary(1, warming()), seen(ready(1, 2), ready(2, 2), verdict=Verdict.PASS), SETTINGS)
    assert p.status.current_step_index == 1 and p.status.step_weight == 50, p.status.message
    assert "waiting for an analysis run to pass" in (p.status.message or "")


def test_after_the_warm_up_a_failing_run_rolls_the_canary_back() -> None:
    ended = warming(until=NOW - timedelta(seconds=1), runs=3)
    p = rollout.plan(raw(), canary(1, ended), seen(ready(1, 2), ready(2, 2), verdict=Verdict.FAIL), SETTINGS)
    assert p.status.phase == Phase.DEGRADED and p.status.canary_revision is None, p.status.message
    assert "analysis failed 1 of 1 runs (failureLimit 0)" in (p.status.message or ""), p.status.message


def test_after_the_warm_up_a_passing_run_lets_it_promote() -> None:
    ended = warming(until=NOW - timedelta(seconds=1), runs=3)
    p = rollout.plan(raw(), canary(1, ended), seen(ready(1, 2), ready(2, 2), verdict=Verdict.PASS), SETTINGS)
    assert p.status.step_weight == 100, p.status.message


def test_without_a_warm_up_the_cold_run_counts() -> None:
    no_warmup = {k: v for k, v in ANALYSIS.items() if k != "warmup"}
    p = rollout.plan(raw(no_warmup), canary(1, AnalysisStatus(revision=2)),
                     seen(ready(1, 2), ready(2, 2), verdict=Verdict.FAIL), SETTINGS)
    assert p.status.phase == Phase.DEGRADED, p.status.message


def test_a_crash_loop_during_the_warm_up_still_rolls_back() -> None:
    crashing = starting(2, replicas=2, ready=0, max_restarts=9, crashing_pod="fraud-r2-x")
    p = rollout.plan(raw(), canary(1, warming()), seen(ready(1, 2), crashing), SETTINGS)
    assert p.status.phase == Phase.DEGRADED and "crash-looping" in (p.status.message or ""), p.status.message


MESH = {"istio": {"virtualService": "fraud"}}


def test_with_a_mesh_the_warm_up_starts_when_the_route_carries_traffic_to_the_canary() -> None:
    def plan(router_weight: int) -> Any:
        raw = spec("8", replicas=4, rollout={"steps": STEPS, "analysis": ANALYSIS, "trafficRouting": MESH})
        block = {"steps": STEPS, "analysis": ANALYSIS, "trafficRouting": MESH}
        seen = observed(ready(1, 4), ready(2, 2), revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                                             record(2, "8", PROGRESSING, replicas=4, rollout=block)),
                        ready_endpoints={"fraud": {1: 4, 2: 2}}, router_weight=router_weight)
        return rollout.plan(raw, canary(0, weight=router_weight), seen, SETTINGS)

    # Its pods are Ready behind the Services, but the route sends them nothing yet: no warm-up
    assert (plan(0).status.analysis or AnalysisStatus(revision=2)).warmup_ends_at is None
    assert plan(50).status.analysis is not None and plan(50).status.analysis.warmup_ends_at is not None


# -- a warm-up by requests: it ends once the canary has served that many, as a Prometheus query counts them -------

BY_REQUESTS = {**ANALYSIS, "warmup": {"requests": 100, "requestCount": {
    "address": "http://prom:9090", "query": 'sum(model_infer_request_success_total{revision="$revision"})'}}}


def counted(verdict: Verdict, requests: float | None, analysis: AnalysisStatus,
            block: dict[str, Any] = BY_REQUESTS) -> ModelDeploymentStatus:
    run = seen(ready(1, 2), ready(2, 2), verdict=verdict)
    return rollout.plan(raw(block), canary(1, analysis), replace(run, measured_requests=requests), SETTINGS).status


def started(ago: float = 30, **more: Any) -> AnalysisStatus:
    return AnalysisStatus(revision=2, warmup_started_at=rollout.timestamp(NOW - timedelta(seconds=ago)), **more)


def test_a_warm_up_by_requests_starts_with_the_first_requests_and_its_end_is_not_known_yet() -> None:
    p = rollout.plan(raw(BY_REQUESTS), canary(0, weight=0), seen(ready(1, 2), ready(2, 2), behind={1: 2, 2: 2}),
                     SETTINGS)
    a = p.status.analysis
    assert a is not None and a.warmup_started_at == rollout.timestamp(NOW) and a.warmup_ends_at is None
    assert "(warming up: 0 of 100 requests)" in (p.status.message or ""), p.status.message


def test_runs_before_the_canary_has_served_enough_requests_count_for_nothing() -> None:
    st = counted(Verdict.FAIL, 40, started())
    a = st.analysis
    assert st.phase == Phase.PROGRESSING and a is not None, st.message
    assert (a.runs, a.warmup_runs, a.failed, a.warmup_requests, a.warmup_ends_at) == (1, 1, 0, 40, None)
    assert "(warming up: 40 of 100 requests; 1 runs not counted)" in (st.message or ""), st.message


def test_the_run_that_counts_enough_requests_ends_the_warm_up_and_itself_counts_for_nothing() -> None:
    st = counted(Verdict.FAIL, 100, started())
    a = st.analysis
    assert st.phase == Phase.PROGRESSING and a is not None, st.message
    assert (a.warmup_runs, a.failed, a.warmup_ends_at) == (1, 0, rollout.timestamp(NOW))
    # The next failing run counts: rolled back
    later = counted(Verdict.FAIL, 140, a.model_copy(update={"last_run_at": rollout.timestamp(after(-20))}))
    assert later.phase == Phase.DEGRADED and "analysis failed 1 of 1 runs" in (later.message or ""), later.message


def test_a_count_prometheus_could_not_give_keeps_it_warming_up() -> None:
    st = counted(Verdict.FAIL, None, started(warmup_requests=90))
    assert st.phase == Phase.PROGRESSING and st.analysis is not None
    assert (st.analysis.failed, st.analysis.warmup_requests, st.analysis.warmup_ends_at) == (0, 90, None)


def test_with_a_duration_too_it_ends_once_both_are_reached() -> None:
    both = {**BY_REQUESTS, "warmup": {**BY_REQUESTS["warmup"], "duration": "2m"}}
    # Enough requests 30 s in: it ends when the 2 minutes do
    st = counted(Verdict.FAIL, 500, started(ago=30), block=both)
    assert st.analysis is not None and st.analysis.warmup_ends_at == rollout.timestamp(after(90)), st.analysis
    # 3 minutes in, with enough requests: it ends at this run
    st = counted(Verdict.FAIL, 500, started(ago=180), block=both)
    assert st.analysis is not None and st.analysis.warmup_ends_at == rollout.timestamp(NOW)
    assert st.phase == Phase.PROGRESSING


def test_the_spec_needs_a_bound_and_a_count_for_requests() -> None:
    with pytest.raises(ValidationError, match=re.escape(WARMUP_NEEDS_A_BOUND)):
        Warmup.model_validate({})
    with pytest.raises(ValidationError, match=re.escape(REQUESTS_NEED_A_COUNT[:60])):
        Warmup.model_validate({"requests": 10})
    assert Warmup.model_validate({"duration": "1m"}).requests is None
