"""rollout.maxSurge: a pod budget over every revision, checked against pods that lag the plan.

The planner's replicas are not what holds GPUs: pods are. So these tests run the planner against a small
cluster whose pods trail the plan as real ones do: a Deployment scaled up makes its pods at once (the worst
case for a budget), they are Ready a tick later, and a pod scaled away keeps terminating, and holding its
node's GPUs, until the next tick. After every write and every tick the pods that exist are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api import names
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.desired import rollout, weights
from modeldeploy.desired.facts import DeploymentFacts, RevisionRecord
from planning import NOW, SETTINGS, observed, record_of, spec


@pytest.mark.parametrize(("total", "surge", "goal", "ready", "keeps_all", "expected"), [
    (3, 1, 3, 0, False, (3, 1)),  # one new pod beside all three serving ones
    (3, 1, 3, 1, False, (2, 2)),  # a Ready new pod replaces a serving one
    (3, 0, 3, 0, False, (2, 1)),  # in place: a serving pod goes first
    (3, 0, 3, 2, False, (0, 3)),
    (3, 2, 3, 0, False, (3, 2)),
    (4, 0, 2, 2, False, (2, 2)),  # a canary at 50% that has its pods
    (4, 0, 1, 0, True, (3, 1)),  # a mesh: stable keeps all it can
    (4, 2, 1, 0, True, (4, 1)),
    (1, 0, 1, 0, False, (0, 1)),  # one pod and no room: the swap leaves none serving for a while
])
def test_a_budgeted_split_gives_the_new_revision_room_only_from_what_stable_gives_up(
        total: int, surge: int, goal: int, ready: int, keeps_all: bool, expected: tuple[int, int]) -> None:
    assert weights.budgeted_split(total, surge, goal, ready, keeps_all) == expected
    stable, new = expected
    assert stable + new <= total + surge


@dataclass
class Revision:
    asked: int = 0  # spec.replicas
    up: int = 0  # pods not terminating
    ready: int = 0  # of those
    starting: int = 0  # of those, made this tick: Ready at the next
    terminating: int = 0
    made: int = 0  # pods ever made
    last_ready_at: Any = None  # when a pod of it last became Ready
    unobserved: bool = False  # its spec changed and the Deployment controller has not said so yet
    annotations: dict[str, str] = field(default_factory=dict)  # when it scales down, when it was superseded


@dataclass
class Cluster:
    healthy: set[int] = field(default_factory=lambda: {1, 2})  # revisions whose pods become Ready
    revisions: dict[int, Revision] = field(default_factory=dict)
    records: dict[int, RevisionRecord] = field(default_factory=dict)
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    now: Any = NOW
    router_weight: int | None = None  # what a mesh route carries to the canary, as the last plan set it
    most_pods: int = 0
    fewest_ready: int | None = None  # Ready pods of the serving revisions, once revision 1 served

    def facts(self) -> list[DeploymentFacts]:
        """As the reconciler reads them: a Deployment whose spec just changed counts no Ready pods, once."""
        out = [self.fact(n, r) for n, r in self.revisions.items()]
        for r in self.revisions.values():
            r.unobserved = False
        return out

    def fact(self, n: int, r: Revision) -> DeploymentFacts:
        ready = 0 if r.unobserved else r.ready
        return DeploymentFacts(revision=n, replicas=r.asked, ready_replicas=ready, available_replicas=ready,
                               live_pods=r.up + r.terminating, settled=r.up == r.asked and not r.terminating,
                               last_ready_at=r.last_ready_at,
                               scale_down_at=rollout.parse_timestamp(r.annotations.get(names.ANN_SCALE_DOWN_AT)),
                               superseded_at=rollout.parse_timestamp(r.annotations.get(names.ANN_SUPERSEDED_AT)))

    def reconcile(self, raw: dict[str, Any]) -> rollout.Plan:
        seen = observed(*self.facts(), revisions=tuple(sorted(self.records.values(), key=lambda r: r.number)),
                        now=self.now, router_weight=self.router_weight,
                        # (EndpointSlices follow the pods' readiness, not the Deployment's count)
                        ready_endpoints={"fraud": {n: r.ready for n, r in self.revisions.items()}})
        plan = rollout.plan(raw, self.status, seen, SETTINGS)
        self.take(plan)
        return plan

    def take(self, plan: rollout.Plan) -> None:
        """The plan's Deployments resized; the Deployment controller makes or deletes pods at once (unready
        ones go first)."""
        for m in plan.apply:
            if m["kind"] == "ControllerRevision":
                self.records[m["revision"]] = record_of(m)
            if m["kind"] != "Deployment":
                continue
            r = self.revisions.setdefault(int(m["metadata"]["labels"][names.LABEL_REVISION]), Revision())
            r.unobserved = r.unobserved or r.asked != m["spec"]["replicas"]
            r.asked, r.annotations = m["spec"]["replicas"], dict(m["metadata"].get("annotations") or {})
            if r.up > r.asked:
                gone = r.up - r.asked
                unready = min(gone, r.up - r.ready)
                r.starting = max(0, r.starting - unready)
                r.ready -= gone - unready
                r.up, r.terminating = r.asked, r.terminating + gone
            elif r.up < r.asked:
                r.starting += r.asked - r.up
                r.made += r.asked - r.up
                r.up = r.asked
        for ref in plan.delete:
            if ref.kind == "Deployment":
                self.revisions.pop(int(ref.name.rsplit("-r", 1)[1]), None)
        self.status = plan.status
        self.router_weight = plan.traffic.canary_weight if plan.traffic is not None else None
        self.count()

    def tick(self) -> None:
        self.now += timedelta(seconds=1)
        for n, r in self.revisions.items():
            r.terminating = 0
            if n in self.healthy and r.starting:
                r.ready += r.starting
                r.last_ready_at = self.now
            r.starting = 0
        self.count()

    def count(self) -> None:
        self.most_pods = max(self.most_pods, sum(r.up + r.terminating for r in self.revisions.values()))
        if self.status.stable_revision is not None and self.status.phase != Phase.PENDING:
            serving = sum(r.ready for n, r in self.revisions.items() if n in self.healthy)
            self.fewest_ready = serving if self.fewest_ready is None else min(self.fewest_ready, serving)


def model(version: str, total: int, surge: int | None, steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    block: dict[str, Any] = {"scaleDownDelaySeconds": 5, "progressDeadlineSeconds": 20}
    if surge is not None:
        block["maxSurge"] = surge
    if steps is not None:
        block["steps"] = steps
    return spec(version, replicas=total, rollout=block)


def run(cluster: Cluster, raw: dict[str, Any], until: Any, passes: int = 80) -> None:
    for _ in range(passes):
        cluster.reconcile(raw)
        if until(cluster.status):
            return
        cluster.tick()
    raise AssertionError(f"not done after {passes} passes: {cluster.status.phase} {cluster.status.message}")


def serving_one(revision: int) -> Any:
    return lambda st: st.phase == Phase.HEALTHY and st.stable_revision == revision and st.canary_revision is None


CANARY = [{"setWeight": 34}, {"pause": {"duration": "1s"}}, {"setWeight": 67}, {"pause": {"duration": "1s"}}]


@pytest.mark.parametrize("steps", [None, CANARY], ids=["plain", "canary"])
@pytest.mark.parametrize("total", [1, 3, 4])
@pytest.mark.parametrize("surge", [0, 1, 2])
def test_a_rollout_never_holds_more_pods_than_its_budget_and_still_finishes(
        steps: list[dict[str, Any]] | None, total: int, surge: int) -> None:
    cluster = Cluster()
    run(cluster, model("7", total, surge, steps), serving_one(1))
    cluster.most_pods, cluster.fewest_ready = 0, None
    # When revision 2 rolls out
    run(cluster, model("8", total, surge, steps), serving_one(2))
    # Then the pods that existed never numbered more than the serving size plus maxSurge
    assert cluster.most_pods <= total + surge
    # And Ready pods fell by one at most, and only when the budget left no room for a new pod beside them
    assert cluster.fewest_ready is not None and cluster.fewest_ready >= total - (1 if surge == 0 else 0)
    # And no pod of revision 2 was made twice (none taken back while it started)
    assert cluster.revisions[2].made == total
    # And the old revision keeps what fits in the budget for the scale-down delay, then none
    run(cluster, model("8", total, surge, steps), lambda st: cluster.revisions[1].up == 0, passes=10)


def test_without_a_budget_a_plain_rollout_holds_twice_the_pods() -> None:
    cluster = Cluster()
    run(cluster, model("7", 4, None, None), serving_one(1))
    run(cluster, model("8", 4, None, None), serving_one(2))
    assert cluster.most_pods == 8


@pytest.mark.parametrize("surge", [0, 1])
def test_a_revision_that_never_gets_ready_is_rolled_back_within_the_budget(surge: int) -> None:
    cluster = Cluster(healthy={1})
    run(cluster, model("7", 3, surge, CANARY), serving_one(1))
    run(cluster, model("8", 3, surge, CANARY), lambda st: st.phase == Phase.DEGRADED and st.canary_revision is None)
    # Then stable gets its pods back as the canary gives its up, and the budget held throughout
    run(cluster, model("8", 3, surge, CANARY), lambda st: cluster.revisions[1].ready == 3, passes=10)
    assert cluster.most_pods <= 3 + surge
    assert cluster.status.message.startswith("revision 2 (model 8) failed: step 1 made no progress in 20s"), \
        cluster.status.message


def test_a_superseded_revision_kept_warm_gives_its_pods_up_to_the_next_rollout() -> None:
    cluster = Cluster(healthy={1, 2, 3})
    run(cluster, model("7", 3, 1, None), serving_one(1))
    # Revision 1 keeps one pod warm (all the budget has room for) after revision 2's promotion
    run(cluster, model("8", 3, 1, None), serving_one(2))
    assert cluster.revisions[1].up == 1
    cluster.most_pods = 0
    # When revision 3 starts at once, within revision 1's scale-down delay
    run(cluster, model("9", 3, 1, None), serving_one(3))
    assert cluster.most_pods <= 4


def test_a_rollout_waiting_for_room_says_how_the_budget_paces_it() -> None:
    cluster = Cluster()
    run(cluster, model("7", 3, 0, None), serving_one(1))
    plan = cluster.reconcile(model("8", 3, 0, None))
    assert plan.status.message == ("revision 2 (model 8): 0/3 pods ready (maxSurge 0: in place, one pod at a "
                                   "time); revision 1 serves until then"), plan.status.message
    assert {n: r.asked for n, r in cluster.revisions.items()} == {1: 2, 2: 0}  # a serving pod goes first


def test_pods_left_from_a_scale_down_count_against_the_budget() -> None:
    # Revision 1 asked down to 2, but its third pod still terminates: revision 2 may not make a pod yet
    cluster = Cluster()
    run(cluster, model("7", 3, 0, None), serving_one(1))
    cluster.reconcile(model("8", 3, 0, None))
    assert (cluster.revisions[1].terminating, cluster.revisions.get(2, Revision()).asked) == (1, 0)
    cluster.tick()
    cluster.reconcile(model("8", 3, 0, None))
    assert cluster.revisions[2].asked == 1
    assert replace(cluster.revisions[1]).up == 2


@pytest.mark.parametrize(("steps", "refused"), [(None, True), ([{"pause": {"duration": "1s"}}], True),
                                                ([{"setWeight": 20}], False)])
def test_a_budget_with_a_mesh_route_needs_a_setweight_step(steps: list[dict[str, Any]] | None,
                                                           refused: bool) -> None:
    # Without one the route keeps every request on stable until promotion, while the budget takes its pods
    block: dict[str, Any] = {"maxSurge": 0, "trafficRouting": {"istio": {"virtualService": "fraud"}}}
    if steps:
        block["steps"] = steps
    cluster = Cluster()
    plan = cluster.reconcile(spec("7", rollout=block))
    assert (plan.status.phase == Phase.FAILED) == refused, plan.status.message
    if refused:
        assert "maxSurge with trafficRouting needs a setWeight step" in (plan.status.message or "")


HOLD_AT_67 = [{"setWeight": 67}, {"pause": {}}]


@pytest.mark.parametrize("surge", [1, 2])
@pytest.mark.parametrize("then", ["9", "7"], ids=["a-newer-version", "back-to-stable"])
def test_a_canary_the_spec_moves_on_from_drains_without_costing_a_ready_pod(surge: int, then: str) -> None:
    # Given revision 2 holds 2 of the 3 pods at 67% (revision 1 lent them), at an open pause
    cluster = Cluster(healthy={1, 2, 3})
    run(cluster, model("7", 3, surge, HOLD_AT_67), serving_one(1))
    run(cluster, model("8", 3, surge, HOLD_AT_67),
        lambda st: st.phase == Phase.PAUSED and cluster.revisions[2].ready == 2)
    cluster.most_pods, cluster.fewest_ready = 0, None
    # When the spec moves on to a newer version, or back to revision 1
    goal = (lambda st: st.canary_revision == 3) if then == "9" else serving_one(1)
    run(cluster, model(then, 3, surge, HOLD_AT_67), goal)
    run(cluster, model(then, 3, surge, HOLD_AT_67), lambda st: cluster.revisions.get(2, Revision()).up == 0,
        passes=20)
    # Then revision 2's pods went only as others became Ready in their place, within the budget
    assert cluster.fewest_ready is not None and cluster.fewest_ready >= 3
    assert cluster.most_pods <= 3 + surge


@pytest.mark.parametrize("steps", [None, [{"setWeight": 34}, {"pause": {"duration": "1s"}}]], ids=["plain", "canary"])
def test_a_rollout_that_keeps_making_progress_is_not_failed_by_the_deadline(steps) -> None:
    # 12 pods, one at a time: more start-ups than the 20 s deadline allows, each well within it
    cluster = Cluster()
    run(cluster, model("7", 12, 1, steps), serving_one(1))
    run(cluster, model("8", 12, 1, steps), serving_one(2), passes=200)


def test_a_single_pod_keeps_serving_beside_its_canary_when_the_budget_has_room() -> None:
    cluster = Cluster()
    steps = [{"setWeight": 34}, {"pause": {}}]
    run(cluster, model("7", 1, 1, steps), serving_one(1))
    run(cluster, model("8", 1, 1, steps), lambda st: st.phase == Phase.PAUSED and cluster.revisions[2].ready == 1)
    assert (cluster.revisions[1].asked, cluster.revisions[2].asked) == (1, 1)
    assert cluster.status.canary_weight == 50


def test_a_revert_on_a_mesh_moves_the_route_with_the_pods_the_budget_lets_it_move() -> None:
    # Steps are skipped for a revision that served before: a plain rollout, which on a mesh under a budget must
    # not leave the route pointing at a revision whose pods it took away
    block = {"maxSurge": 0, "scaleDownDelaySeconds": 5, "progressDeadlineSeconds": 20,
             "steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}],
             "trafficRouting": {"istio": {"virtualService": "fraud"}}}
    cluster = Cluster()
    run(cluster, spec("7", replicas=2, rollout=block), serving_one(1))
    run(cluster, spec("8", replicas=2, rollout=block), serving_one(2))
    run(cluster, spec("8", replicas=2, rollout=block), lambda st: cluster.revisions[1].up == 0, passes=10)
    for _ in range(40):
        plan = cluster.reconcile(spec("7", replicas=2, rollout=block))
        assert plan.traffic is not None
        # (`-stable` selects the stable revision's pods, `-canary` the canary's: each share must reach some)
        st = plan.status
        behind_stable = cluster.revisions[st.stable_revision].ready if st.stable_revision else 0
        behind_canary = cluster.revisions[st.canary_revision].ready if st.canary_revision else 0
        weight = plan.traffic.canary_weight
        assert (weight < 100 or behind_canary > 0) and (weight > 0 or behind_stable > 0), \
            (weight, behind_stable, behind_canary, st.message)
        if serving_one(1)(cluster.status):
            break
        cluster.tick()
    assert serving_one(1)(cluster.status), cluster.status.message


def test_a_paused_rollout_within_a_budget_follows_the_autoscaler_within_it() -> None:
    cluster = Cluster(healthy={1})  # revision 2's pods never get Ready: it stays in flight
    run(cluster, model("7", 3, 1, None), serving_one(1))
    cluster.reconcile(model("8", 3, 1, None))
    cluster.tick()
    paused = model("8", 6, 1, None)
    paused["paused"] = True
    plan = cluster.reconcile(paused)
    assert plan.status.phase == Phase.PAUSED, plan.status.message
    assert {n: r.asked for n, r in cluster.revisions.items()} == {1: 6, 2: 1}

