"""The mirror step: a copy of live requests for the canary, whose answers clients never see, on Gateway API (a
RequestMirror filter) and Istio (an entry of `mirrors`), written beside what the route's owner wrote.

The routers run against a route held in memory (routes.Stored), patched as the API server patches."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api.status import Phase
from modeldeploy.desired import rollout
from modeldeploy.routers.base import RouterError
from planning import NOW, PROGRESSING, SETTINGS, STABLE, observed, ready, record, replicas, spec, starting, status
from routes import ROUTES, Stored, routers

STEPS = [{"mirror": {"percent": 50}}, {"pause": {}}, {"setWeight": 50}]
MESH = {"istio": {"virtualService": "fraud-vs"}}


def mirrored(kind: str) -> Any:
    """What the route carries for the canary's copies: Gateway API's filters of the user's rule, Istio's mirrors of
    its http route."""
    def read(kube: Stored) -> Any:
        if kind == "httproute":
            return kube.obj["spec"]["rules"][0].get("filters")
        return next(h for h in kube.obj["spec"]["http"] if h.get("name") == "primary").get("mirrors")
    return read


def test_gateway_api_adds_a_request_mirror_filter_after_the_users_own() -> None:
    kube = Stored(ROUTES["httproute"])
    r = routers(kube, "httproute")
    r.set_side_routes([], 50)
    assert kube.obj["spec"]["rules"][0]["filters"] == [
        *ROUTES["httproute"]["spec"]["rules"][0]["filters"],  # the user's header modifier, first and untouched
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "fraud-canary", "port": 80},
                                                    "percent": 50}}]
    # clients' requests still go to stable alone: a mirror is no weight
    assert r.get_weight() is None or r.get_weight() == 0


def test_istio_adds_an_entry_to_mirrors_beside_the_users_own() -> None:
    route = copy.deepcopy(ROUTES["virtualservice"])
    audit = {"destination": {"host": "audit-log"}, "percentage": {"value": 1}}
    route["spec"]["http"][0]["mirrors"] = [audit]
    kube = Stored(route)
    routers(kube, "virtualservice").set_side_routes([], 50)
    assert kube.obj["spec"]["http"][0]["mirrors"] == [
        audit, {"destination": {"host": "fraud-canary", "port": {"number": 80}}, "percentage": {"value": 50}}]
    routers(kube, "virtualservice").set_side_routes([], 0)
    assert kube.obj["spec"]["http"][0]["mirrors"] == [audit]


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"])
def test_a_mirror_is_written_once_changed_in_place_and_taken_off_leaving_the_route_as_its_owner_wrote_it(
        kind: str) -> None:
    kube = Stored(ROUTES[kind])
    r, read = routers(kube, kind), mirrored(kind)
    r.set_side_routes([], 50)
    once, writes = copy.deepcopy(kube.obj), kube.patches
    r.set_side_routes([], 50)
    assert (kube.obj, kube.patches) == (once, writes)  # nothing to change: no write
    r.set_side_routes([], 100)
    assert "100" in str(read(kube)) and "50" not in str(read(kube))
    r.set_side_routes([], 0)
    assert kube.obj["spec"] == ROUTES[kind]["spec"]


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"])
def test_a_header_route_and_a_mirror_go_in_one_write_and_finalize_takes_both_off(kind: str) -> None:
    kube = Stored(ROUTES[kind])
    r = routers(kube, kind)
    r.set_weight(20)
    before = kube.patches
    r.set_side_routes([("x-canary", "testers")], 100)
    assert kube.patches == before + 1
    assert "testers" in str(kube.obj["spec"]) and "fraud-canary" in str(mirrored(kind)(kube))
    r.finalize()
    assert "fraud-canary" not in str(kube.obj["spec"]) and "testers" not in str(kube.obj["spec"])


def test_istio_refuses_to_mirror_beside_a_users_single_mirror_and_says_how_to_fix_it() -> None:
    route = copy.deepcopy(ROUTES["virtualservice"])
    route["spec"]["http"][0]["mirror"] = {"host": "audit-log"}
    kube = Stored(route)
    with pytest.raises(RouterError, match="write it as an entry of `mirrors`"):
        routers(kube, "virtualservice").set_side_routes([], 50)
    assert kube.patches == 0


def plan(index: int, weight: int = 0) -> rollout.Plan:
    block = {"steps": STEPS, "trafficRouting": MESH}
    raw = spec("8", replicas=4, rollout=block)
    seen = observed(ready(1, 4), starting(2, replicas=1, ready=1), router_weight=weight,
                    revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                               record(2, "8", PROGRESSING, replicas=4, rollout=block)))
    old = status(Phase.PAUSED if index == 1 else Phase.PROGRESSING, stable=1, canary=2, started_ago=30,
                 reason="Paused" if index == 1 else "Canary", canary_weight=weight,
                 step_weight=weight, current_step_index=index,
                 step_started_at=rollout.timestamp(NOW - timedelta(seconds=5)))
    return rollout.plan(raw, old, seen, SETTINGS)


def test_a_mirror_step_is_passed_at_once_and_the_canary_gets_a_pod_for_the_copies() -> None:
    first = plan(0)
    assert first.traffic is not None and first.traffic.mirror == 50, first.traffic
    assert first.traffic.canary_weight == 0 and first.status.current_step_index == 1, first.status.message
    assert first.status.phase == Phase.PAUSED
    assert replicas(first)[2] >= 1


def test_the_mirror_stays_through_later_steps_and_ends_with_the_rollout() -> None:
    later = plan(2, weight=0)
    assert later.traffic is not None and later.traffic.mirror == 50
    block = {"steps": STEPS, "trafficRouting": MESH}
    done = rollout.plan(spec("8", replicas=4, rollout=block), status(Phase.HEALTHY, stable=2),
                        observed(ready(2, 4), revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                                        record(2, "8", STABLE, replicas=4, rollout=block))),
                        SETTINGS)
    assert done.traffic is not None and done.traffic.mirror == 0, done.status.message


def test_the_replicas_router_refuses_a_mirror_step() -> None:
    p = rollout.plan(spec("8", rollout={"steps": [{"mirror": {}}, {"setWeight": 50}]}),
                     status(Phase.HEALTHY, stable=1), observed(ready(1), revisions=(record(1, "7"),)), SETTINGS)
    assert p.status.phase == Phase.FAILED and "a mirror step needs trafficRouting" in (p.status.message or "")


def test_a_mirrored_canary_is_judged_all_along_as_a_weighted_one_is() -> None:
    analysis = {"interval": "10s", "metrics": [
        {"name": "errors", "prometheus": {"address": "http://prom:9090", "query": "q"}, "thresholdRange": {"max": 1}}]}

    def due(steps: list[dict[str, Any]], ready_behind_canary: int) -> bool:
        raw = spec("8", replicas=4, rollout={"steps": steps, "trafficRouting": MESH, "analysis": analysis})
        held = status(Phase.PAUSED, stable=1, canary=2, started_ago=60, reason="Paused", canary_weight=0,
                      step_weight=0, current_step_index=1)
        return rollout.analysis_due(raw, held, NOW, ready_behind_canary)

    # At the pause after a mirror step, at weight 0, its copies are traffic: runs are taken once it can answer
    assert due(STEPS, ready_behind_canary=1)
    assert not due(STEPS, ready_behind_canary=0)
    # Without the mirror nothing reaches it at that pause: no run
    assert not due([{"pause": {"duration": "1s"}}, {"pause": {}}, {"setWeight": 50}], ready_behind_canary=1)
