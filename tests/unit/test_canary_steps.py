"""Canary steps one rule at a time: an analysis step waits for a passing run taken after it began; a weight
counts as reached only on Ready pods and a route that confirms it; runs are due on the analysis interval; the
served share is measured, not planned."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api import names
from modeldeploy.api.status import AnalysisStatus, Measurement, ModelDeploymentStatus, Phase, Verdict
from modeldeploy.desired import rollout
from modeldeploy.desired.analysis import analysis_due, number
from modeldeploy.desired.validity import ready_reason
from planning import (
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    manifests,
    observed,
    ready,
    record,
    replicas,
    spec,
    starting,
    status,
)

ANALYSIS = {"interval": "10s", "failureLimit": 2, "inconclusiveLimit": 5, "metrics": [
    {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 0.05}}]}
MESH = {"gatewayAPI": {"httpRoute": "fraud"}}
AT_ANALYSIS = [{"setWeight": 50}, {"analysis": {}}, {"pause": {}}]


def raw(steps: list[dict[str, Any]], analysis: dict[str, Any] | None = ANALYSIS, **more: Any) -> dict[str, Any]:
    block = {"steps": steps, **({"analysis": analysis} if analysis else {}), **more}
    return spec("8", replicas=4, rollout=block)


def world(steps: list[dict[str, Any]], *deps: Any, analysis: dict[str, Any] | None = ANALYSIS, **more: Any) -> Any:
    block = {"steps": steps, **({"analysis": analysis} if analysis else {}),
             **({"trafficRouting": more.pop("routing")} if "routing" in more else {})}
    return observed(*deps, revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                      record(2, "8", PROGRESSING, replicas=4, rollout=block)), **more)


def at(index: int, weight: int, step_began: float, analysis: AnalysisStatus | None = None) -> ModelDeploymentStatus:
    return status(Phase.PROGRESSING, stable=1, canary=2, started_ago=100, reason="Canary", canary_weight=weight,
                  step_weight=weight, current_step_index=index, analysis=analysis,
                  step_started_at=rollout.timestamp(NOW - timedelta(seconds=step_began)))


def last_run(verdict: Verdict, ago: float, passed: int = 1) -> AnalysisStatus:
    return AnalysisStatus(revision=2, runs=3, passed=passed, failed=int(verdict == Verdict.FAIL),
                          last_run_at=rollout.timestamp(NOW - timedelta(seconds=ago)), last_verdict=verdict)


@pytest.mark.parametrize(("analysis", "moves_on"), [
    pytest.param(last_run(Verdict.PASS, ago=5), True, id="a-pass-after-the-step-began"),
    pytest.param(last_run(Verdict.PASS, ago=30), False, id="a-pass-before-the-step-began"),
    pytest.param(last_run(Verdict.FAIL, ago=5), False, id="a-failure-within-the-limit"),
    pytest.param(last_run(Verdict.INCONCLUSIVE, ago=5), False, id="an-inconclusive-run"),
    pytest.param(None, False, id="no-run-yet"),
])
def test_an_analysis_step_waits_for_a_passing_run_taken_after_it_began(analysis: AnalysisStatus | None,
                                                                       moves_on: bool) -> None:
    # Given the canary at its analysis step, begun 20 s ago
    p = rollout.plan(raw(AT_ANALYSIS), at(1, 50, 20, analysis), world(AT_ANALYSIS, ready(1, 2), ready(2, 2)),
                     SETTINGS)
    # Then only a passing run taken since moves it on (to the open pause after it)
    assert p.status.current_step_index == (2 if moves_on else 1), p.status.message
    assert ("waiting for an analysis run to pass" in (p.status.message or "")) is not moves_on


def test_an_analysis_step_without_metrics_passes_at_once() -> None:
    p = rollout.plan(raw(AT_ANALYSIS, analysis=None), at(1, 50, 1),
                     world(AT_ANALYSIS, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    assert p.status.current_step_index == 2, p.status.message


STEP_TO_50 = [{"setWeight": 50}, {"pause": {}}]


@pytest.mark.parametrize(("canary", "route", "reached"), [
    pytest.param(ready(2, 2), 50, True, id="pods-ready-route-confirms"),
    pytest.param(ready(2, 2), 30, False, id="route-not-caught-up"),
    pytest.param(ready(2, 2), None, False, id="route-cannot-tell"),
    pytest.param(starting(2, replicas=2, ready=1), 50, False, id="a-pod-not-ready"),
    pytest.param(ready(2, 1), 50, False, id="too-few-pods"),
])
def test_a_mesh_weight_is_reached_on_ready_pods_and_a_confirmed_route(canary: Any, route: int | None,
                                                                       reached: bool) -> None:
    p = rollout.plan(raw(STEP_TO_50, trafficRouting=MESH), at(0, 50, 1),
                     world(STEP_TO_50, ready(1, 4), canary, routing=MESH, router_weight=route), SETTINGS)
    assert (p.status.current_step_index == 1) is reached, p.status.message
    # And status says what the route serves, and what the step asks
    assert p.status.canary_weight == (route or 0) and p.status.step_weight == 50


@pytest.mark.parametrize(("stable", "canary", "served"), [(3, 1, 25), (2, 2, 50), (4, 0, 0), (2, 0, 0)])
def test_the_replicas_router_reports_the_share_of_ready_pods(stable: int, canary: int, served: int) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    p = rollout.plan(raw(steps, analysis=None), at(0, 50, 1),
                     world(steps, ready(1, stable), starting(2, replicas=2, ready=canary), analysis=None), SETTINGS)
    assert (p.status.canary_weight, p.status.step_weight) == (served, 50)


@pytest.mark.parametrize(("endpoints", "served"), [
    pytest.param({1: 3, 2: 1}, 25, id="one-in-four"),
    pytest.param({1: 2, 2: 2}, 50, id="half"),
    pytest.param({1: 4}, 0, id="canary-not-behind-the-service-yet"),
    pytest.param({1: 2, 2: 1, 3: 1}, 25, id="an-older-revision-still-serving"),
    pytest.param({}, 0, id="nothing-ready"),
])
def test_the_replicas_router_reports_the_share_of_ready_endpoints_behind_the_service(
        endpoints: dict[int, int], served: int) -> None:
    # Given Deployments whose readiness says otherwise (a stable just scaled down counts none until its
    # controller catches up), and what the main Service's EndpointSlices route to
    steps = [{"setWeight": 50}, {"pause": {}}]
    w = world(steps, ready(1, 4), starting(2, replicas=2, ready=2), analysis=None,
              ready_endpoints={"fraud": endpoints, "fraud-canary": {2: 2}})
    p = rollout.plan(raw(steps, analysis=None), at(0, 50, 1), w, SETTINGS)
    # Then status says the share clients get: the canary's endpoints among all Ready ones behind the Service
    assert p.status.canary_weight == served


def test_while_a_canary_runs_the_client_service_selects_every_revision() -> None:
    # Given a canary at 50% with the replicas router
    steps = [{"setWeight": 50}, {"pause": {}}]
    running = rollout.plan(raw(steps, analysis=None), at(0, 50, 1),
                           world(steps, ready(1, 2), starting(2, replicas=2, ready=2), analysis=None), SETTINGS)
    # Then the client Service selects both revisions' pods: the split is their share
    assert manifests(running, "Service")["fraud"]["spec"]["selector"] == {names.LABEL_MD: "fraud"}


@pytest.mark.parametrize(("weight", "index", "canary_ready", "last_ago", "due"), [
    pytest.param(50, 0, 2, 11, True, id="interval-passed"),
    pytest.param(50, 0, 2, 9, False, id="interval-not-yet"),
    pytest.param(50, 0, 2, 10, True, id="exactly-the-interval"),
    pytest.param(0, 0, 2, 60, False, id="no-traffic-no-run"),
    pytest.param(0, 1, 1, 60, True, id="pre-traffic-analysis-step-with-ready-pods"),
    pytest.param(0, 1, 0, 60, False, id="pre-traffic-analysis-step-no-ready-pod"),
])
def test_when_a_run_is_due(weight: int, index: int, canary_ready: int, last_ago: float, due: bool) -> None:
    steps = [{"setWeight": 0}, {"analysis": {}}, {"setWeight": 50}]
    st = at(index, weight, 100, last_run(Verdict.PASS, ago=last_ago))
    assert analysis_due(raw(steps, trafficRouting=MESH), st, NOW, canary_ready) is due


def test_no_run_is_due_without_a_canary_or_steps_or_metrics() -> None:
    steps = [{"setWeight": 50}]
    st = at(0, 50, 100, last_run(Verdict.PASS, ago=60))
    assert not analysis_due(raw(steps, analysis=None), st, NOW, 2)
    assert not analysis_due(raw([]), st, NOW, 2)
    assert not analysis_due(raw(steps), st.model_copy(update={"canary_revision": None}), NOW, 2)
    assert not analysis_due({"not": "a spec"}, st, NOW, 2)
    # The first run comes one interval after the rollout began
    began = rollout.timestamp(NOW - timedelta(seconds=9))
    fresh = st.model_copy(update={"analysis": None, "rollout_started_at": began})
    assert not analysis_due(raw(steps), fresh, NOW, 2)
    assert analysis_due(raw(steps), fresh, NOW + timedelta(seconds=1), 2)


def test_the_next_run_is_what_the_canary_wakes_for() -> None:
    # Given the last run 4 s ago on a 10 s interval, at an open pause (nothing else to wake for)
    steps = [{"setWeight": 50}, {"pause": {}}]
    p = rollout.plan(raw(steps), at(1, 50, 50, last_run(Verdict.PASS, ago=4)),
                     world(steps, ready(1, 2), ready(2, 2)), SETTINGS)
    assert p.requeue_after == pytest.approx(6.5), p.requeue_after


@pytest.mark.parametrize(("value", "text"), [(None, "none"), (0.05, "0.05"), (12.0, "12"), (1e-7, "1e-07")])
def test_numbers_in_messages(value: float | None, text: str) -> None:
    assert number(value) == text


def test_a_rollback_message_names_the_failing_metric_and_its_value() -> None:
    failing = AnalysisStatus(revision=2, runs=3, failed=2, last_verdict=Verdict.FAIL, measurements=[
        Measurement(metric="errors", verdict=Verdict.FAIL, value=0.09, message="0.09 is above the maximum 0.05"),
        Measurement(metric="latency", verdict=Verdict.PASS, value=0.2, message="within range")])
    p = rollout.plan(raw(STEP_TO_50, analysis={**ANALYSIS, "failureLimit": 1}), at(1, 50, 5, failing),
                     world(STEP_TO_50, ready(1, 2), ready(2, 2)), SETTINGS)
    assert p.status.canary_revision is None and replicas(p)[1] == 4
    assert "analysis failed 2 of 3 runs (failureLimit 1): errors=0.09 (0.09 is above the maximum 0.05)" in \
        (p.status.message or ""), p.status.message
    assert "latency" not in (p.status.message or "")


def test_a_canary_in_flight_across_an_operator_upgrade_keeps_its_weight() -> None:
    # Given a status written before stepWeight existed: canaryWeight held the step's weight
    steps = [{"setWeight": 50}, {"pause": {}}]
    old = at(1, 50, 5).model_copy(update={"step_weight": None})
    p = rollout.plan(raw(steps, analysis=None), old, world(steps, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    # Then the canary keeps its pods and its 50%: the stable revision does not take them back
    assert replicas(p) == {1: 2, 2: 2} and p.status.step_weight == 50


# -- failures, deadlines and holds at a step ---------------------------------------------------------------------

PAUSED_AT_HALF = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]


def test_crash_looping_canary_pods_roll_back_during_the_steps() -> None:
    crashing = ready(2, 2, max_restarts=3, crashing_pod="fraud-r2-x", crash_exit="container server last exited 1")
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), at(1, 50, 5),
                     world(PAUSED_AT_HALF, ready(1, 2), crashing, analysis=None), SETTINGS)
    assert p.status.canary_revision is None and p.status.stable_revision == 1, p.status.message
    assert "pod fraud-r2-x restarted 3 times (limit 3): crash-looping" in (p.status.message or "")
    assert replicas(p)[1] == 4
    # And clients reach the stable pods alone at once, though only 2 of its 4 are Ready: a failed model's pods
    # serve no request while they are scaled away
    alone = {names.LABEL_MD: "fraud", names.LABEL_REVISION: "1"}
    assert manifests(p, "Service")["fraud"]["spec"]["selector"] == alone
    later = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), p.status,
                         world(PAUSED_AT_HALF, ready(1, 4), crashing, analysis=None), SETTINGS)
    assert manifests(later, "Service")["fraud"]["spec"]["selector"] == alone


@pytest.mark.parametrize(("held_by", "annotations"), [("spec", {}), ("request", {"modeldeploy.dev/paused": "true"})])
def test_a_held_canary_neither_times_out_nor_moves(held_by: str, annotations: dict[str, str]) -> None:
    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"setWeight": 100}]
    # Given the canary held for an hour, far past its 60 s pause and its progress deadline
    old = at(1, 50, 3600)
    raw_spec = raw(steps, analysis=None, progressDeadlineSeconds=60)
    if held_by == "spec":
        raw_spec["paused"] = True
    p = rollout.plan(raw_spec, old, world(steps, ready(1, 2), ready(2, 2), analysis=None, annotations=annotations),
                     SETTINGS)
    # Then it stays where it was, Paused, with its pods, and its step clock off
    assert (p.status.phase, p.status.canary_revision, p.status.current_step_index) == (Phase.PAUSED, 2, 1)
    assert replicas(p) == {1: 2, 2: 2} and p.status.step_started_at is None
    assert ready_reason(p.status) == "Paused"


def test_an_open_pause_never_times_out() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None, progressDeadlineSeconds=60), at(1, 50, 3600),
                     world(PAUSED_AT_HALF, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    assert (p.status.phase, p.status.canary_revision) == (Phase.PAUSED, 2), p.status.message
    assert "paused until `kubectl modeldeploy promote fraud`" in (p.status.message or "")


def test_a_step_that_waits_past_the_deadline_fails_with_numbers() -> None:
    # Given the canary at setWeight 50 whose pods never got Ready, 61 s into a 60 s deadline
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None, progressDeadlineSeconds=60), at(0, 50, 61),
                     world(PAUSED_AT_HALF, ready(1, 4), starting(2, replicas=2), analysis=None), SETTINGS)
    assert p.status.canary_revision is None, p.status.message
    assert "step 1 made no progress in 61s (progressDeadlineSeconds 60): 0 canary pods ready" in \
        (p.status.message or "")


@pytest.mark.parametrize(("began", "moved"), [(4, False), (5, True), (6, True)])
def test_a_timed_pause_lasts_its_duration(began: float, moved: bool) -> None:
    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"pause": {}}]
    p = rollout.plan(raw(steps, analysis=None), at(1, 50, began),
                     world(steps, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    assert p.status.current_step_index == (2 if moved else 1), p.status.message
    if not moved:
        assert "(step 2/3: pause 5s)" in (p.status.message or "") and p.requeue_after == pytest.approx(1.5)


@pytest.mark.parametrize(("failed", "rolled_back"), [(1, False), (2, False), (3, True)])
def test_failure_limit_is_the_number_of_failed_runs_tolerated(failed: int, rolled_back: bool) -> None:
    a = AnalysisStatus(revision=2, runs=failed, failed=failed, last_verdict=Verdict.FAIL, measurements=[
        Measurement(metric="errors", verdict=Verdict.FAIL, value=0.2, message="0.2 is above the maximum 0.05")])
    p = rollout.plan(raw(AT_ANALYSIS), at(1, 50, 5, a), world(AT_ANALYSIS, ready(1, 2), ready(2, 2)), SETTINGS)
    assert (p.status.canary_revision is None) is rolled_back, p.status.message


def test_promote_finishes_the_step_and_is_recorded() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), at(1, 50, 5),
                     world(PAUSED_AT_HALF, ready(1, 2), ready(2, 2), analysis=None,
                           annotations={"modeldeploy.dev/promote": "t7"}), SETTINGS)
    assert p.status.current_step_index == 2 and p.status.handled_requests["modeldeploy.dev/promote"] == "t7"
    assert (p.status.phase, ready_reason(p.status)) == (Phase.PROGRESSING, "Canary")
    assert "(step 3/3: waiting for 4 canary pods and the traffic split)" in (p.status.message or "")


def test_promote_full_skips_every_step_and_is_recorded() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), at(0, 50, 5),
                     world(PAUSED_AT_HALF, ready(1, 2), ready(2, 2), analysis=None,
                           annotations={"modeldeploy.dev/promote-full": "t8"}), SETTINGS)
    assert p.status.current_step_index == 3 and p.status.handled_requests["modeldeploy.dev/promote-full"] == "t8"
    assert p.status.step_weight == 100 and "(final: promoting: 2/4 pods ready)" in (p.status.message or "")
    # While the canary grows to full size, stable keeps what it has
    assert replicas(p) == {1: 2, 2: 4}


def test_an_analysis_block_without_metrics_needs_no_evidence() -> None:
    steps = [{"setWeight": 50}]
    p = rollout.plan(raw(steps, analysis={"interval": "10s"}), at(1, 50, 5),
                     world(steps, ready(1, 2), ready(2, 2), analysis={"interval": "10s"}), SETTINGS)
    assert p.status.step_weight == 100, p.status.message


def test_at_the_final_stage_a_run_is_still_due() -> None:
    steps = [{"setWeight": 50}]
    st = at(1, 50, 100, last_run(Verdict.FAIL, ago=20, passed=0))
    assert analysis_due(raw(steps), st, NOW, 2)


def test_a_pre_traffic_step_gets_pods_for_the_first_weight_it_will_take() -> None:
    steps = [{"analysis": {}}, {"setWeight": 50}]
    p = rollout.plan(raw(steps, trafficRouting=MESH), at(0, 0, 1),
                     world(steps, ready(1, 4), routing=MESH, router_weight=0), SETTINGS)
    assert replicas(p) == {1: 4, 2: 2}
    # And a mesh canary at weight 0 outside such a step has no pods
    later = [{"setWeight": 0}, {"pause": {}}]
    p = rollout.plan(raw(later, trafficRouting=MESH), at(1, 0, 1),
                     world(later, ready(1, 4), routing=MESH, router_weight=0), SETTINGS)
    assert replicas(p) == {1: 4, 2: 0}


# -- what the surviving mutants showed was not pinned down ---------------------------------------------------------

def test_the_rollout_and_step_clocks_carry_over_between_passes() -> None:
    steps = [{"setWeight": 50}, {"pause": {"duration": "30s"}}, {"pause": {}}]
    old = at(1, 50, 10)
    p = rollout.plan(raw(steps, analysis=None), old, world(steps, ready(1, 2), ready(2, 2), analysis=None),
                     SETTINGS)
    assert p.status.step_started_at == old.step_started_at and p.status.rollout_started_at == old.rollout_started_at
    assert p.status.current_step_index == 1 and p.requeue_after == pytest.approx(20.5)


def test_a_replicas_router_step_is_reached_on_ready_canary_pods() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    p = rollout.plan(raw(steps, analysis=None), at(0, 50, 1), world(steps, ready(1, 2), ready(2, 2), analysis=None),
                     SETTINGS)
    assert p.status.current_step_index == 1, p.status.message


@pytest.mark.parametrize(("canary", "route", "promoted"), [
    pytest.param(ready(2, 4), 100, True, id="all-ready-route-at-100"),
    pytest.param(starting(2, replicas=4, ready=3), 100, False, id="a-pod-short"),
    pytest.param(ready(2, 3), 100, False, id="not-yet-full-size"),
    pytest.param(ready(2, 4), 60, False, id="route-not-at-100"),
])
def test_promotion_needs_the_canary_at_full_size_ready_and_the_route_at_100(canary: Any, route: int,
                                                                            promoted: bool) -> None:
    steps = [{"setWeight": 60}]
    passed = last_run(Verdict.PASS, ago=1)
    p = rollout.plan(raw(steps, trafficRouting=MESH), at(1, 100, 5, passed),
                     world(steps, ready(1, 4), canary, routing=MESH, router_weight=route), SETTINGS)
    assert (p.status.stable_revision == 2) is promoted, p.status.message


def test_at_the_final_stage_stable_keeps_its_pods_until_promotion() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    p = rollout.plan(raw(steps, analysis=None), at(1, 50, 5),
                     world(steps, ready(1, 2), starting(2, replicas=4, ready=3), analysis=None,
                           annotations={"modeldeploy.dev/promote": "t1"}), SETTINGS)
    assert replicas(p) == {1: 2, 2: 4}, p.status.message
    assert not [e for e in p.events if e.reason == "PromoteIgnored"]
    # A promote at the final stage cannot push the step index past the end
    again = rollout.plan(raw(steps, analysis=None), p.status,
                         world(steps, ready(1, 2), starting(2, replicas=4, ready=3), analysis=None,
                               annotations={"modeldeploy.dev/promote": "t2"}), SETTINGS)
    assert again.status.current_step_index == 2


def test_with_auto_rollback_off_a_promote_on_a_healthy_canary_keeps_its_analysis() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]
    runs = last_run(Verdict.PASS, ago=1, passed=3)
    p = rollout.plan(raw(steps, autoRollback=False), at(1, 50, 5, runs),
                     world(steps, ready(1, 2), ready(2, 2), annotations={"modeldeploy.dev/promote": "t1"}), SETTINGS)
    assert p.status.analysis is not None and p.status.analysis.passed == 3


def test_held_and_inconclusive_pauses_keep_the_stable_revision_in_status() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    held = rollout.plan(raw(steps, analysis=None), at(1, 50, 5),
                        world(steps, ready(1, 2), ready(2, 2), analysis=None,
                              annotations={"modeldeploy.dev/paused": "true"}), SETTINGS)
    unclear = AnalysisStatus(revision=2, runs=9, inconclusive=9, inconclusive_streak=9)
    stuck = rollout.plan(raw(steps), at(1, 50, 5, unclear), world(steps, ready(1, 2), ready(2, 2)), SETTINGS)
    for p in (held, stuck):
        assert (p.status.stable_revision, p.status.canary_revision) == (1, 2), p.status.message
    assert ready_reason(stuck.status) == "AnalysisInconclusive"


def test_an_open_pause_says_paused_and_wakes_for_nothing() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), at(1, 50, 5),
                     world(PAUSED_AT_HALF, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    assert ready_reason(p.status) == "Paused" and p.requeue_after is not None
    assert p.requeue_after > 500  # only the progress deadline's wake-up, far off; no polling


def test_the_message_leads_with_the_revision_and_counts_runs() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    p = rollout.plan(raw(steps), at(1, 50, 5, last_run(Verdict.PASS, ago=1)),
                     world(steps, ready(1, 2), ready(2, 2)), SETTINGS)
    assert (p.status.message or "").startswith("revision 2 (model 8) at 50%: analysis 1/3 passed"), p.status.message


def test_every_failing_metric_is_named_in_the_rollback() -> None:
    failing = AnalysisStatus(revision=2, runs=2, failed=2, last_verdict=Verdict.FAIL, measurements=[
        Measurement(metric="errors", verdict=Verdict.FAIL, value=0.2, message="high"),
        Measurement(metric="latency", verdict=Verdict.FAIL, value=3.0, message="slow")])
    p = rollout.plan(raw(STEP_TO_50, analysis={**ANALYSIS, "failureLimit": 1}), at(1, 50, 5, failing),
                     world(STEP_TO_50, ready(1, 2), ready(2, 2)), SETTINGS)
    assert "errors=0.2 (high); latency=3 (slow)" in (p.status.message or ""), p.status.message


def test_the_deadline_fires_at_its_second_and_counts_ready_pods() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None, progressDeadlineSeconds=60), at(0, 50, 60),
                     world(PAUSED_AT_HALF, ready(1, 4), starting(2, replicas=2, ready=1), analysis=None), SETTINGS)
    assert "made no progress in 60s (progressDeadlineSeconds 60): 1 canary pods ready" in (p.status.message or "")


def test_a_run_taken_the_second_the_step_began_counts() -> None:
    p = rollout.plan(raw(AT_ANALYSIS), at(1, 50, 3, last_run(Verdict.PASS, ago=3)),
                     world(AT_ANALYSIS, ready(1, 2), ready(2, 2)), SETTINGS)
    assert p.status.current_step_index == 2, p.status.message


def test_the_next_deadline_is_a_wake_up() -> None:
    steps = [{"setWeight": 50}, {"analysis": {}}]
    p = rollout.plan(raw(steps, progressDeadlineSeconds=8), at(1, 50, 5, last_run(Verdict.FAIL, ago=1, passed=0)),
                     world(steps, ready(1, 2), ready(2, 2)), SETTINGS)
    assert p.requeue_after == pytest.approx(3.5), p.requeue_after


def test_runs_of_an_earlier_revision_do_not_time_the_next_one() -> None:
    steps = [{"setWeight": 50}]
    st = at(0, 50, 100, last_run(Verdict.PASS, ago=1)).model_copy(update={
        "analysis": last_run(Verdict.PASS, ago=1).model_copy(update={"revision": 1})})
    assert analysis_due(raw(steps), st, NOW, 2)  # the rollout began 100 s ago; revision 1's run says nothing


def test_a_new_canary_starts_its_own_steps_clock_and_weight() -> None:
    # Given status still describes canary 2 at step 1 (50%), and the spec now asks for revision 3
    steps = [{"setWeight": 25}, {"pause": {}}]
    p = rollout.plan(spec("9", replicas=4, rollout={"steps": steps}), at(1, 50, 500),
                     world(steps, ready(1, 2), ready(2, 2), analysis=None), SETTINGS)
    # Then revision 3 starts at its first step, from now, at that step's weight
    assert (p.status.canary_revision, p.status.current_step_index, p.status.step_weight) == (3, 0, 25)
    assert p.status.step_started_at == rollout.timestamp(NOW) and p.status.rollout_started_at == rollout.timestamp(NOW)


def test_stable_gives_up_pods_only_as_canary_pods_become_ready() -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    for canary_ready, stable in ((0, 4), (1, 3), (2, 2)):
        p = rollout.plan(raw(steps, analysis=None), at(0, 50, 1),
                         world(steps, ready(1, 4), starting(2, replicas=2, ready=canary_ready), analysis=None),
                         SETTINGS)
        assert replicas(p) == {1: stable, 2: 2}, (canary_ready, replicas(p))


def test_promote_full_is_recorded_without_a_warning() -> None:
    p = rollout.plan(raw(PAUSED_AT_HALF, analysis=None), at(0, 50, 5),
                     world(PAUSED_AT_HALF, ready(1, 2), ready(2, 2), analysis=None,
                           annotations={"modeldeploy.dev/promote-full": "t9"}), SETTINGS)
    assert not [e for e in p.events if e.reason == "PromoteIgnored"], p.events


def test_a_promote_at_the_inconclusive_limit_does_not_reset_the_count() -> None:
    # inconclusiveLimit 5: five in a row is still within it, so the rollout was not waiting for anyone
    steps = [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]
    a = AnalysisStatus(revision=2, runs=5, inconclusive=5, inconclusive_streak=5)
    p = rollout.plan(raw(steps), at(1, 50, 5, a),
                     world(steps, ready(1, 2), ready(2, 2), annotations={"modeldeploy.dev/promote": "t1"}), SETTINGS)
    assert p.status.analysis is not None and p.status.analysis.inconclusive_streak == 5


def test_a_run_already_due_when_the_last_is_folded_in_is_taken_at_once_not_never() -> None:
    from modeldeploy.reconcile.core import RUN_DUE_NOW, _next_look
    from modeldeploy.reconcile.runs import AnalysisRuns

    # Given a canary at its analysis step whose last run began 12 s ago (a slow endpoint; the interval is 10 s)
    # and was just folded in: the planner's own wake for the next run lies in the past
    seen = world(AT_ANALYSIS, ready(1, 2), ready(2, 2))
    p = rollout.plan(raw(AT_ANALYSIS), at(1, 50, 30, last_run(Verdict.INCONCLUSIVE, ago=12, passed=0)), seen,
                     SETTINGS)
    assert p.status.canary_revision == 2
    # Then the reconcile looks again at once, to take the next run, rather than wait for an event that may
    # never come (the pods have settled)
    assert _next_look(p, raw(AT_ANALYSIS), seen, AnalysisRuns(0)) == RUN_DUE_NOW
    # But not while a run is in flight: its end wakes the reconcile
    busy = AnalysisRuns(1)
    gate = threading.Event()
    busy.start((seen.namespace, seen.name), 2, NOW, lambda: (gate.wait(5), ())[1])
    try:
        assert _next_look(p, raw(AT_ANALYSIS), seen, busy) == p.requeue_after
    finally:
        gate.set()


def test_waiting_for_canary_pods_polls_only_a_route_it_cannot_watch() -> None:
    # The replicas router waits for pods on events (their Deployment's status, EndpointSlices, restarts); a mesh
    # router's route is the user's object, not watched, so it is read again in a second.
    steps = [{"setWeight": 50}, {"pause": {}}]
    canary = starting(2, replicas=2, ready=1)
    waits = rollout.plan(raw(steps, analysis=None), at(0, 50, 1),
                         world(steps, ready(1, 4), canary, analysis=None), SETTINGS)
    assert "waiting for" in (waits.status.message or "") and waits.requeue_after is not None
    assert waits.requeue_after > 500, waits.requeue_after  # the progress deadline only
    meshed = rollout.plan(raw(steps, analysis=None, trafficRouting=MESH), at(0, 50, 1),
                          world(steps, ready(1, 4), canary, analysis=None, routing=MESH, router_weight=0), SETTINGS)
    assert meshed.requeue_after is not None and meshed.requeue_after <= 2, meshed.requeue_after
