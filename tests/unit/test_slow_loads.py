"""Slow model loads: a startup probe sized for them, a deadline that counts from the load, and status that says
how far the load has got."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Phase
from modeldeploy.desired import rollout, workload
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.state import exact, span
from modeldeploy.reconcile.observe import loading_since
from planning import (
    NOW,
    PROGRESSING,
    SETTINGS,
    STABLE,
    observed,
    ready,
    record,
    spec,
    starting,
    status,
)

PRESET = {"preset": "mlserver"}
OWNER = workload.Owner("fraud", "risk", "6f1c2b7e-0000-4000-8000-000000000004")


def server(raw: dict[str, Any]) -> dict[str, Any]:
    dep = workload.deployment(ModelDeploymentSpec.model_validate(raw), OWNER, 1, 3, Settings())
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == workload.SERVER_CONTAINER)


@pytest.mark.parametrize(("runtime", "probe"), [
    (PRESET, {"periodSeconds": 10, "failureThreshold": 60}),  # a preset's default: 10 minutes
    ({**PRESET, "startup": {"timeoutSeconds": 1800, "periodSeconds": 30}}, {"periodSeconds": 30,
                                                                            "failureThreshold": 60}),
    ({"image": "registry.example/srv:1", "startup": {"timeoutSeconds": 95}}, {"periodSeconds": 10,
                                                                              "failureThreshold": 10}),
    ({"image": "registry.example/srv:1"}, None),  # your own server: as before, unless you ask
])
def test_a_startup_probe_is_sized_for_the_load_and_separate_from_readiness(runtime, probe) -> None:
    c = server(spec("7", runtime=runtime))
    if probe is None:
        assert "startupProbe" not in c
        return
    assert {k: c["startupProbe"][k] for k in probe} == probe
    assert c["startupProbe"]["httpGet"] == c["readinessProbe"]["httpGet"]
    assert c["readinessProbe"]["failureThreshold"] == 3  # readiness stays quick to react once loaded


def pod(name: str, started: str, ready: bool, terminating: bool = False, restarted: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = "2025-06-01T12:00:00Z"
    # (a container restarted mid-load runs since later; the pod's start stays)
    running = "2025-06-01T11:59:50Z" if restarted else started
    server = {"name": "server", "ready": ready, "restartCount": int(restarted),
              "state": {"running": {"startedAt": running}}}
    return {"metadata": meta, "status": {"startTime": started, "containerStatuses": [server]}}


def test_a_load_is_timed_from_when_the_longest_loading_pod_started_on_its_node() -> None:
    pods = [pod("a", "2025-06-01T11:55:00Z", ready=True), pod("b", "2025-06-01T11:58:00Z", False, restarted=True),
            pod("c", "2025-06-01T11:59:00Z", ready=False), pod("d", "2025-06-01T11:50:00Z", False, terminating=True),
            {"metadata": {"name": "e"}, "status": {"phase": "Pending"}}]  # waiting for a node: not loading
    assert loading_since(pods) == NOW - timedelta(minutes=2)
    assert loading_since(pods[:1]) is None
    # (fetching the model, in the init container, is part of the load)
    fetching = {"metadata": {"name": "f"}, "status": {"startTime": "2025-06-01T11:57:00Z", "initContainerStatuses": [
        {"name": "storage-initializer", "ready": False, "state": {"running": {}}}]}}
    assert loading_since([fetching]) == NOW - timedelta(minutes=3)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59, "50s"), (60, "1m"), (185, "3m"), (3900, "1h5m")])
def test_a_load_length_reads_in_steps_that_do_not_rewrite_status_each_second(seconds: float, text: str) -> None:
    assert span(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (60, "1m"), (90, "1m30s"), (600, "10m")])
def test_a_budget_reads_as_configured(seconds: float, text: str) -> None:
    assert exact(seconds) == text


def first(loaded_for: float, deadline: int = 120) -> rollout.Plan:
    block = {"progressDeadlineSeconds": deadline}
    raw = spec("7", runtime=PRESET, rollout=block)
    seen = observed(starting(1, ready=0, loading_since=NOW - timedelta(seconds=loaded_for)),
                    revisions=(record(1, "7", PROGRESSING, runtime=PRESET, rollout=block),))
    return rollout.plan(raw, status(Phase.PENDING, reason="Deploying", started_ago=loaded_for + 200), seen, SETTINGS)


def test_status_says_how_long_the_model_has_loaded_of_how_long_it_may() -> None:
    p = first(185)
    assert p.status.phase == Phase.PENDING, p.status.message
    assert p.status.message == "revision 1 (model 7): 0/3 pods ready; loading model (3m of up to 10m)"
    # (and it looks again when that text changes)
    assert p.requeue_after is not None and p.requeue_after <= 60.5


def test_a_load_within_its_startup_budget_is_not_failed_by_the_progress_deadline() -> None:
    # 385 s since the rollout began, 185 s of loading: past progressDeadlineSeconds 120, within 10 minutes
    assert first(185).status.phase == Phase.PENDING
    # Past the startup budget it is failed, as without one
    p = first(601)
    assert p.status.phase == Phase.DEGRADED, p.status.message
    assert "loading model for 10m1s, past its startup budget of 10m" in (p.status.message or ""), p.status.message


def rolling(loaded_for: float, steps: list[dict[str, Any]] | None = None) -> rollout.Plan:
    block: dict[str, Any] = {"progressDeadlineSeconds": 60, **({"steps": steps} if steps else {})}
    raw = spec("8", runtime=PRESET, rollout=block)
    seen = observed(ready(1), starting(2, replicas=3 if not steps else 2, ready=0,
                                       loading_since=NOW - timedelta(seconds=loaded_for)),
                    revisions=(record(1, "7", STABLE, runtime=PRESET, rollout=block),
                               record(2, "8", PROGRESSING, runtime=PRESET, rollout=block)))
    old = status(Phase.PROGRESSING, stable=1, canary=2, started_ago=loaded_for + 30,
                 **({"current_step_index": 0, "step_weight": 50, "canary_weight": 0,
                     "step_started_at": rollout.timestamp(NOW - timedelta(seconds=loaded_for + 30))}
                    if steps else {}))
    return rollout.plan(raw, old, seen, SETTINGS)


@pytest.mark.parametrize("steps", [None, [{"setWeight": 50}, {"pause": {}}]], ids=["plain", "canary"])
def test_a_new_revision_that_still_loads_is_not_rolled_back_until_its_budget_is_spent(steps) -> None:
    p = rolling(300, steps)
    assert p.status.canary_revision == 2 and p.status.phase == Phase.PROGRESSING, p.status.message
    assert "loading model (5m of up to 10m)" in (p.status.message or ""), p.status.message
    p = rolling(601, steps)
    assert p.status.phase == Phase.DEGRADED and p.status.canary_revision is None, p.status.message


def test_a_load_that_just_ended_is_progress_though_the_deployment_has_not_counted_it_yet() -> None:
    # The pods' server became Ready a second ago (no pod loads any more); the Deployment still says 0 Ready
    block = {"progressDeadlineSeconds": 5}
    seen = observed(starting(1, ready=0, last_ready_at=NOW - timedelta(seconds=1)),
                    revisions=(record(1, "7", PROGRESSING, runtime=PRESET, rollout=block),))
    p = rollout.plan(spec("7", runtime=PRESET, rollout=block), status(Phase.PENDING, reason="Deploying",
                                                                      started_ago=13), seen, SETTINGS)
    assert p.status.phase == Phase.PENDING, p.status.message
