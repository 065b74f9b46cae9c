"""End to end: canary rollouts, analysis on a real Prometheus, promotion, abort and rollback."""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

import pytest
import yaml

from helpers import holds_for, wait_for
from modeldeployments import MD, apply, cli, deployments, get, manifest, status, wait_phase
from routes import ROUTES, route_weights, without_weights


def canary_manifest(namespace: str, version: str, steps: list[dict[str, Any]], **rollout: Any) -> dict[str, Any]:
    body = manifest(namespace, version=version, replicas=4)
    body["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 3, **rollout}
    return body


def record_weights(cluster: Any, namespace: str, until: Any, timeout: float = 90,
                   field: str = "stepWeight") -> tuple[list[int], dict[str, Any]]:
    """Poll status, collecting each distinct step weight (or `field`) seen, until `until(status)`."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        st = status(cluster, namespace)
        w = st.get(field)
        if w is not None and (not seen or seen[-1] != w):
            seen.append(w)
        if until(st):
            return seen, st
        assert time.monotonic() < deadline, f"rollout did not finish; weights seen {seen}, status {st}"
        time.sleep(0.1)


def error_rate_analysis(prometheus: Any, namespace: str, interval: str = "2s", failure_limit: int = 0) -> dict:
    return {"interval": interval, "failureLimit": failure_limit, "metrics": [{
        "name": "error-rate",
        "prometheus": {"address": prometheus.address, "query": 'model_error_ratio{namespace="$namespace"}'},
        "thresholdRange": {"max": 0.05}}]}


STEPS = [{"setWeight": 20}, {"pause": {"duration": "5s"}}, {"analysis": {}}, {"setWeight": 50},
         {"pause": {"duration": "5s"}}]


def test_canary_steps_then_promotion(cluster, namespace, operator, prometheus):
    prometheus.set_error_ratio(namespace, 0.01)
    analysis = error_rate_analysis(prometheus, namespace)
    apply(cluster, canary_manifest(namespace, "1", STEPS, analysis=analysis))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When v2 is applied with steps 20% / pause 5s / analysis / 50% / pause 5s
    apply(cluster, canary_manifest(namespace, "2", STEPS, analysis=analysis))
    weights, st = record_weights(cluster, namespace,
                                 lambda s: s.get("stableRevision") == 2 and s.get("phase") == "Healthy")
    # Then status passed through those steps, and analysis passed on real measurements
    assert [w for w in weights if w in (20, 50)] == [20, 50], weights
    assert st["analysis"]["passed"] >= 1 and st["analysis"]["failed"] == 0
    assert st["analysis"]["measurements"][0]["value"] == pytest.approx(0.01)
    # The operator's metrics count the rollout and show the canary weight back at 0 (counted once the reconcile
    # that wrote this status has also posted its Events: a moment after the status shows)
    wait_for(lambda: operator.metric("modeldeploy_rollouts_total", namespace=namespace, name=MD, outcome="Promoted"),
             timeout=5, until=lambda n: n >= 1, message="the promotion counted")
    assert operator.metric("modeldeploy_canary_weight", namespace=namespace, name=MD) == 0
    assert operator.metric("modeldeploy_reconcile_duration_seconds_count") > 0
    # And v1 is scaled down after scaleDownDelaySeconds
    deps = deployments(cluster, namespace)
    assert deps[f"{MD}-r2"]["spec"]["replicas"] == 4
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r1"]["spec"]["replicas"], timeout=15,
             until=lambda n: n == 0, message="revision 1 scaled down after the delay")


def test_a_never_ready_canary_is_rolled_back_after_the_deadline(cluster, namespace, operator):
    steps = [{"setWeight": 25}, {"pause": {"duration": "2s"}}]
    apply(cluster, canary_manifest(namespace, "2", steps, progressDeadlineSeconds=6))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When v3's pods never become Ready
    bad = canary_manifest(namespace, "3", steps, progressDeadlineSeconds=6)
    bad["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "never-ready"}}}
    apply(cluster, bad)
    st = wait_phase(cluster, namespace, "Degraded", timeout=30)
    # Then it is rolled back: the stable revision serves 100%, the canary has no pods
    assert st["stableRevision"] == 1 and st.get("canaryRevision") is None
    assert "progressDeadlineSeconds 6" in st["message"]
    deps = deployments(cluster, namespace)
    assert deps[f"{MD}-r1"]["spec"]["replicas"] == 4 and deps[f"{MD}-r1"]["status"]["readyReplicas"] == 4
    assert deps[f"{MD}-r2"]["spec"]["replicas"] == 0
    rows = json.loads(cli(cluster, "history", MD, "-n", namespace, "-o", "json").stdout)
    assert rows[-1]["revision"] == 2 and rows[-1]["outcome"] == "Failed"
    # And it is not retried while the spec stays the same (no flapping)
    # (past every timer that could retry it: the 6 s deadline, the 3 s scale-down delay, twice over)
    holds_for(lambda: deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"] == 0, duration=12,
              message="the failed revision stays down")


def test_a_crash_looping_canary_is_rolled_back_before_its_deadline(cluster, namespace, operator):
    steps = [{"setWeight": 25}, {"pause": {"duration": "60s"}}]
    apply(cluster, canary_manifest(namespace, "1", steps))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When v2's pods crash and restart, long before the 10 min progress deadline
    bad = canary_manifest(namespace, "2", steps)
    bad["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "crash-loop"}}}
    apply(cluster, bad)
    st = wait_phase(cluster, namespace, "Degraded", timeout=60)
    # Then the restarts alone roll it back: the message names the pod, its count and how the container ended
    assert st["stableRevision"] == 1 and st.get("canaryRevision") is None
    assert re.search(r"pod fraud-r2-\S+ restarted \d+ times \(limit 3\): crash-looping; "
                     r"container server last exited 1 \(Error\)", st["message"]), st["message"]
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r2"]["status"].get("replicas", 0), timeout=15,
             until=lambda n: n == 0, message="crash-looping pods gone")


def test_a_failing_error_rate_rolls_back_within_one_interval(cluster, namespace, operator, prometheus):
    prometheus.set_error_ratio(namespace, 0.2)
    analysis = error_rate_analysis(prometheus, namespace, interval="3s")
    steps = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 75}]
    apply(cluster, canary_manifest(namespace, "1", steps, analysis=analysis))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, canary_manifest(namespace, "2", steps, analysis=analysis))
    wait_for(lambda: status(cluster, namespace), timeout=20, until=lambda s: s.get("canaryWeight") == 25,
             message="canary has traffic")
    got_traffic = time.monotonic()
    st = wait_phase(cluster, namespace, "Degraded", timeout=20)
    elapsed = time.monotonic() - got_traffic
    # 100% stable: no canary pod is left behind the Service.
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r2"]["status"].get("replicas", 0), timeout=10,
             until=lambda n: n == 0, message="canary pods gone")
    drained = time.monotonic() - got_traffic
    print(f"canary got traffic -> rolled back (status Degraded) in {elapsed:.1f} s, "
          f"-> no canary pod left in {drained:.1f} s (analysis interval 3 s)")
    assert elapsed < 3 + 5
    assert st["analysis"]["measurements"][0]["value"] == pytest.approx(0.2)
    assert "error-rate=0.2" in st["message"]
    events = get(cluster, namespace, "events")["items"]
    assert any(e["reason"] == "RolledBack" and "error-rate=0.2" in e["message"] for e in events)
    assert deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"] == 0
    out = cli(cluster, "status", MD, "-n", namespace).stdout
    assert "error-rate: Fail value 0.2" in out


def test_an_open_pause_waits_for_promote_and_abort_returns_traffic(cluster, namespace, operator):
    steps = [{"setWeight": 25}, {"pause": {}}]
    apply(cluster, canary_manifest(namespace, "1", steps, progressDeadlineSeconds=3))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # A pause without a duration waits, past the progress deadline (a pause waits on a person, not the canary) ...
    apply(cluster, canary_manifest(namespace, "2", steps, progressDeadlineSeconds=3))
    wait_phase(cluster, namespace, "Paused", canaryRevision=2, canaryWeight=25)
    holds_for(lambda: status(cluster, namespace).get("phase") == "Paused", duration=6, message="stays paused")
    # ... until `kubectl modeldeploy promote`
    out = cli(cluster, "promote", MD, "-n", namespace)
    assert out.returncode == 0, out.stderr
    wait_phase(cluster, namespace, "Healthy", stableRevision=2)
    # and `abort` sends traffic back to stable
    apply(cluster, canary_manifest(namespace, "3", steps))
    wait_phase(cluster, namespace, "Paused", canaryRevision=3)
    aborted = cli(cluster, "abort", MD, "-n", namespace)
    assert aborted.returncode == 0, aborted.stderr
    st = wait_phase(cluster, namespace, "Degraded", stableRevision=2)
    assert st.get("canaryRevision") is None
    assert deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"] == 4
    # The canary gives up its last pods as the stable revision's come back Ready
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r3"]["spec"]["replicas"], timeout=15,
             until=lambda n: n == 0, message="the aborted canary drains")
    # The spec was never rewritten
    md = get(cluster, namespace, "modeldeployment", MD)
    assert md["spec"]["model"]["version"] == "3"


def test_rollback_to_revision_and_git_revert_fast_track(cluster, namespace, operator):
    steps = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]
    apply(cluster, canary_manifest(namespace, "1", steps))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, canary_manifest(namespace, "2", steps))
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=30)
    # `rollback --to-revision 1` brings revision 1 back, spec untouched
    out = cli(cluster, "rollback", MD, "-n", namespace, "--to-revision", "1")
    assert out.returncode == 0, out.stderr
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    assert get(cluster, namespace, "modeldeployment", MD)["spec"]["model"]["version"] == "2"
    # A revision not in history is refused with a clear message
    bad = cli(cluster, "rollback", MD, "-n", namespace, "--to-revision", "9")
    assert bad.returncode == 1 and "revision 9 is not in the history" in bad.stderr
    # A new spec change lifts the rollback: v3 rolls out with steps
    apply(cluster, canary_manifest(namespace, "3", steps))
    wait_phase(cluster, namespace, "Healthy", stableRevision=3, timeout=30)
    # Reverting the spec to v2, as `git revert` would, skips the canary steps
    apply(cluster, canary_manifest(namespace, "2", steps))
    weights, _ = record_weights(cluster, namespace, lambda s: s.get("stableRevision") == 2, timeout=20)
    assert weights == [], f"a revert went through canary steps: {weights}"


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"], ids=["gatewayAPI", "istio"])
def test_mesh_router_weights_follow_the_steps(cluster, namespace, operator, mesh_crds, kind):
    route = copy.deepcopy(ROUTES[kind])
    route["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    routing = ({"gatewayAPI": {"httpRoute": "fraud-route"}} if kind == "httproute"
               else {"istio": {"virtualService": "fraud-vs", "routes": ["primary"]}})
    steps = [{"setWeight": 30}, {"pause": {"duration": "2s"}}, {"setWeight": 60}, {"pause": {"duration": "2s"}}]
    apply(cluster, canary_manifest(namespace, "1", steps, trafficRouting=routing))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    before = get(cluster, namespace, kind, route["metadata"]["name"])
    apply(cluster, canary_manifest(namespace, "2", steps, trafficRouting=routing))
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while status(cluster, namespace).get("stableRevision") != 2:
        obj = get(cluster, namespace, kind, route["metadata"]["name"])
        w = route_weights(obj, kind).get("fraud-canary")
        if w is not None and (not seen or seen[-1] != w):
            seen.append(w)
        assert time.monotonic() < deadline, f"rollout did not finish; route weights seen {seen}"
        time.sleep(0.1)
    # Then the route carried the step weights ...
    assert [w for w in seen if w in (30, 60)] == [30, 60], seen
    # ... and ends with all traffic on the (new) stable Service
    final = wait_for(lambda: get(cluster, namespace, kind, route["metadata"]["name"]), timeout=10,
                     until=lambda o: route_weights(o, kind).get("fraud-canary", 0) == 0,
                     message="canary weight back to 0")
    assert route_weights(final, kind)["fraud-stable"] == 100
    # ... and every field the operator does not manage is as the user wrote it
    assert without_weights(final, kind, "fraud-canary") == without_weights(before, kind, "fraud-canary")
    assert final["metadata"]["labels"] == {"owner": "platform"}


def ready_pods(cluster: Any, namespace: str) -> tuple[int, int]:
    """(revision 1, revision 2) Ready pods behind the Service, from the Deployments' status: the controller
    manager's count of Ready pods, not the operator's."""
    deps = deployments(cluster, namespace)
    r1, r2 = (deps.get(f"{MD}-r{n}", {}).get("status", {}).get("readyReplicas", 0) for n in (1, 2))
    return r1, r2


def test_killed_during_a_step_the_rollout_still_finishes(cluster, namespace, operator):
    steps = [{"setWeight": 25}, {"pause": {"duration": "4s"}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]
    apply(cluster, canary_manifest(namespace, "1", steps))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, canary_manifest(namespace, "2", steps))
    before = wait_for(lambda: status(cluster, namespace), timeout=20, until=lambda s: s.get("canaryWeight") == 25,
                      message="first step reached")
    # When the operator dies during the pause step and comes back
    operator.kill()
    time.sleep(1)
    operator.start()
    # Then the rollout finishes, having taken the steps it had left: watch what the plan asks for (stepWeight)
    # and what is served (Ready pods per revision)
    asked: list[int] = []
    served: list[tuple[int, int]] = []
    started: set[str | None] = set()

    def observe() -> dict[str, Any]:
        pods = ready_pods(cluster, namespace)
        if not served or served[-1] != pods:
            served.append(pods)
        st = status(cluster, namespace)
        if st.get("stepWeight") is not None and (not asked or asked[-1] != st["stepWeight"]):
            asked.append(st["stepWeight"])
        if st.get("canaryRevision") == 2:
            started.add(st.get("rolloutStartedAt"))
        return st

    wait_for(observe, timeout=60, interval=0.1, until=lambda s: s.get("stableRevision") == 2,
             message="revision 2 promoted after the restart")
    # the 50% step, not a jump to promotion: asked for, and served by 2 + 2 of the 4 pods (stable handed 2 over;
    # at the final stage stable keeps its pods until promotion, so 3 + 3 is not it)
    assert 50 in asked, asked
    assert (2, 2) in served, served
    # and the canary kept serving through the restart
    assert all(canary >= 1 for _, canary in served), served
    # It went on with the rollout it was in, not a new one
    assert started == {before["rolloutStartedAt"]}, (started, before)
    # And the history records the outcome, with no duplicate children
    outcomes = {int(r["revision"]): r["metadata"]["annotations"]["modeldeploy.dev/outcome"]
                for r in get(cluster, namespace, "controllerrevisions")["items"]}
    assert outcomes == {1: "Superseded", 2: "Stable"}, outcomes
    assert sorted(deployments(cluster, namespace)) == [f"{MD}-r1", f"{MD}-r2"]
