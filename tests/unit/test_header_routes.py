"""setHeaderRoute: requests with chosen headers reach the canary whatever its weight, on Gateway API and Istio.

The routers are run against a route object held in memory (routes.Stored), patched the way the API server
applies a patch, so what is checked is the route as it would be stored.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api.status import Phase
from modeldeploy.desired import rollout
from planning import NOW, PROGRESSING, SETTINGS, STABLE, observed, ready, record, replicas, spec, starting, status
from routes import ROUTES, Stored, routers

HEADERS = [("x-canary", "testers")]
STEPS = [{"setHeaderRoute": {"match": [{"name": "x-canary", "value": "testers"}]}}, {"pause": {}},
         {"setWeight": 50}]
MESH = {"istio": {"virtualService": "fraud-vs"}}


def with_header_route(kind: str, weight: int) -> tuple[Stored, Any]:
    """The user's route, the canary at `weight` and the header route set on it."""
    kube = Stored(ROUTES[kind])
    r = routers(kube, kind)
    r.set_weight(weight)
    r.set_side_routes(HEADERS, 0)
    return kube, r


def test_gateway_api_gets_a_rule_per_user_match_narrowed_by_the_headers() -> None:
    kube, r = with_header_route("httproute", 0)
    rules = kube.obj["spec"]["rules"]
    assert rules[-1] == {"matches": [{"path": {"type": "PathPrefix", "value": "/v2/models"},
                                      "headers": [{"type": "Exact", "name": "x-canary", "value": "testers"}]}],
                         "backendRefs": [{"name": "fraud-canary", "port": 80}]}
    # The weights are still read from the user's rule alone
    assert r.get_weight() == 0
    r.set_weight(30)
    assert r.get_weight() == 30 and len(kube.obj["spec"]["rules"]) == 2


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"])
def test_a_header_route_is_written_once_changed_in_place_and_taken_off(kind: str) -> None:
    kube, r = with_header_route(kind, 0)
    once = copy.deepcopy(kube.obj)
    r.set_side_routes(HEADERS, 0)
    assert kube.obj == once  # nothing to change: no write
    r.set_side_routes([("x-canary", "everyone")], 0)
    assert "everyone" in str(kube.obj["spec"]) and "testers" not in str(kube.obj["spec"])
    r.set_side_routes([], 0)
    key = "rules" if kind == "httproute" else "http"
    assert len(kube.obj["spec"][key]) == len(ROUTES[kind]["spec"][key])


def test_istio_puts_the_header_route_first() -> None:
    kube, r = with_header_route("virtualservice", 10)
    first, rest = kube.obj["spec"]["http"][0], kube.obj["spec"]["http"][1:]
    assert first == {"name": "fraud-canary-header-route", "match": [{"headers": {"x-canary": {"exact": "testers"}}}],
                     "route": [{"destination": {"host": "fraud-canary", "port": {"number": 80}}}]}
    assert [h["name"] for h in rest] == ["primary"] and r.get_weight() == 10


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"])
def test_finalize_takes_the_header_route_off_with_the_canary_backend(kind: str) -> None:
    kube, r = with_header_route(kind, 50)
    r.finalize()
    assert "fraud-canary" not in str(kube.obj["spec"])


def plan(index: int, weight: int = 0) -> rollout.Plan:
    raw = spec("8", replicas=4, rollout={"steps": STEPS, "trafficRouting": MESH})
    block = {"steps": STEPS, "trafficRouting": MESH}
    seen = observed(ready(1, 4), starting(2, replicas=1, ready=1), router_weight=weight,
                    revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                               record(2, "8", PROGRESSING, replicas=4, rollout=block)))
    old = status(Phase.PAUSED if index == 1 else Phase.PROGRESSING, stable=1, canary=2, started_ago=30,
                 reason="Paused" if index == 1 else "Canary", canary_weight=weight, step_weight=weight,
                 current_step_index=index, step_started_at=rollout.timestamp(NOW - timedelta(seconds=5)))
    return rollout.plan(raw, old, seen, SETTINGS)


def test_from_its_step_the_header_route_is_planned_with_a_canary_pod_to_reach() -> None:
    p = plan(1)
    assert p.traffic is not None and p.traffic.headers == (("x-canary", "testers"),)
    assert p.traffic.canary_weight == 0 and replicas(p)[2] >= 1
    assert p.status.phase == Phase.PAUSED, p.status.message


def test_a_header_route_is_passed_at_once_and_ends_with_the_rollout() -> None:
    # Its step does not wait: the first pass takes it and goes on to the pause
    first = plan(0)
    assert first.traffic is not None and first.traffic.headers == (("x-canary", "testers"),)
    assert first.status.current_step_index == 1, first.status.message
    # Once revision 2 is stable, no header route is planned
    block = {"steps": STEPS, "trafficRouting": MESH}
    done = rollout.plan(spec("8", replicas=4, rollout=block), status(Phase.HEALTHY, stable=2),
                        observed(ready(2, 4), revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                                        record(2, "8", STABLE, replicas=4, rollout=block))),
                        SETTINGS)
    assert done.traffic is not None and done.traffic.headers == (), done.status.message


def test_the_replicas_router_refuses_a_header_route() -> None:
    p = rollout.plan(spec("8", rollout={"steps": STEPS}), status(Phase.HEALTHY, stable=1),
                     observed(ready(1), revisions=(record(1, "7"),)), SETTINGS)
    assert p.status.phase == Phase.FAILED and "setHeaderRoute needs trafficRouting" in (p.status.message or "")
