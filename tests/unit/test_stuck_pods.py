"""Pods that cannot start say why, in status and an Event, long before the progress deadline."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.status import Phase
from modeldeploy.desired import rollout
from modeldeploy.desired.state import PODS_STUCK
from modeldeploy.reconcile.observe import stuck
from planning import PROGRESSING, SETTINGS, condition, observed, ready, record, spec, starting, status


def pod(name: str, **waiting: str) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"containerStatuses": [{"name": "server", "restartCount": 0,
                                              "state": {"waiting": waiting} if waiting else {"running": {}}}]}}


def initializing(name: str, ready: bool = False, **states: Any) -> dict[str, Any]:
    """A pod whose storage initializer is in `states` (state=..., lastState=...)."""
    return {"metadata": {"name": name},
            "status": {"initContainerStatuses": [{"name": "storage-initializer", "restartCount": 1, "ready": ready,
                                                  **states}],
                       "containerStatuses": [{"name": "server", "restartCount": 0,
                                              "state": {"waiting": {"reason": "PodInitializing"}}}]}}


def unscheduled(name: str, message: str, reason: str = "Unschedulable") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                           "reason": reason, "message": message}]}}


NO_GPU = ("0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node "
          "affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.")
DENIED = "fetching s3://models/v1 failed: ClientError: An error occurred (InvalidAccessKeyId)"
DEPLOYMENT: dict[str, Any] = {"status": {}}
QUOTA = {"status": {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": 'pods "fraud-r1-x" is forbidden: exceeded quota: pods, used: 1, '
                                               'limited: 1'}]}}


@pytest.mark.parametrize(("dep", "pods", "expected"), [
    pytest.param(DEPLOYMENT, [pod("fraud-r1-b", reason="ErrImageNeverPull",
                                  message='Container image "srv:1" is not present with pull policy of Never')],
                 'pod fraud-r1-b: container server ErrImageNeverPull: Container image "srv:1" is not present '
                 'with pull policy of Never', id="image-not-there"),
    pytest.param(DEPLOYMENT, [pod("fraud-r1-b"), pod("fraud-r1-a", reason="CreateContainerConfigError",
                                                     message='secret "keys" not found')],
                 'pod fraud-r1-a: container server CreateContainerConfigError: secret "keys" not found',
                 id="config-the-kubelet-cannot-make"),
    pytest.param(QUOTA, [], 'pods cannot be created (FailedCreate): pods "fraud-r1-x" is forbidden: exceeded '
                            'quota: pods, used: 1, limited: 1', id="quota"),
    pytest.param(DEPLOYMENT, [initializing("fraud-r1-a", state={"terminated": {"exitCode": 1, "message": DENIED}})],
                 f"pod fraud-r1-a: init container storage-initializer failed (exit 1): {DENIED}",
                 id="model-download-failed"),
    pytest.param(DEPLOYMENT, [initializing("fraud-r1-a", state={"waiting": {"reason": "CrashLoopBackOff"}},
                                           lastState={"terminated": {"exitCode": 1, "message": "x" * 400 + DENIED}})],
                 f"pod fraud-r1-a: init container storage-initializer failed (exit 1): "
                 f"...{('x' * 400 + DENIED)[-300:]}", id="model-download-retried-the-end-of-its-log-quoted"),
    pytest.param(DEPLOYMENT, [initializing("fraud-r1-a", state={"running": {}})], "", id="model-downloading"),
    pytest.param(DEPLOYMENT, [initializing("fraud-r1-a", ready=True, state={"terminated": {"exitCode": 0}},
                                           lastState={"terminated": {"exitCode": 1}})], "",
                 id="model-downloaded-on-a-retry"),
    pytest.param(DEPLOYMENT, [unscheduled("fraud-r1-a", NO_GPU)], f"pod fraud-r1-a cannot be scheduled: {NO_GPU}",
                 id="no-node-has-the-gpus"),
    pytest.param(DEPLOYMENT, [unscheduled("fraud-r1-a", NO_GPU, reason="SchedulerError")], "",
                 id="not-a-lack-of-room"),
    pytest.param(DEPLOYMENT, [pod("fraud-r1-a", reason="CrashLoopBackOff")], "", id="crash-loops-count-restarts"),
    pytest.param(DEPLOYMENT, [pod("fraud-r1-a", reason="ContainerCreating")], "", id="still-starting"),
    pytest.param(DEPLOYMENT, [pod("fraud-r1-a")], "", id="running"),
])
def test_what_keeps_pods_from_starting_is_read_from_the_kubelet_and_the_replicaset(dep, pods, expected):
    assert stuck(dep, pods) == expected


WHY = 'pod fraud-r1-a: container server ErrImageNeverPull: Container image "srv:1" is not present'


def test_a_first_revision_whose_pods_cannot_start_says_why_with_a_warning():
    p = rollout.plan(spec(), status(Phase.PENDING, reason="Deploying"),
                     observed(starting(1, ready=0, stuck=WHY), revisions=(record(1, outcome=PROGRESSING),)), SETTINGS)
    assert p.status.phase == Phase.PENDING
    assert p.status.message == f"revision 1 (model 7): 0/3 pods ready; {WHY}"
    assert [(e.type, e.reason) for e in p.events] == [("Warning", PODS_STUCK)]


def test_a_canary_whose_pods_cannot_start_says_why_while_stable_serves():
    raw = spec("8", rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    seen = observed(ready(1), starting(2, replicas=2, ready=0, stuck=WHY.replace("r1", "r2")),
                    revisions=(record(1, "7"), record(2, "8")))
    p = rollout.plan(raw, status(Phase.HEALTHY, stable=1), seen, SETTINGS)
    assert p.status.canary_revision == 2 and condition(p.status, "Ready").reason == PODS_STUCK
    assert WHY.replace("r1", "r2") in (p.status.message or "")


def test_nothing_is_said_of_pods_that_are_merely_starting():
    p = rollout.plan(spec(), status(Phase.PENDING, reason="Deploying"),
                     observed(starting(1, ready=1), revisions=(record(1, outcome=PROGRESSING),)), SETTINGS)
    assert p.status.message == "revision 1 (model 7): 1/3 pods ready"
    assert condition(p.status, "Ready").reason == "Deploying"
    assert all(e.type == "Normal" for e in p.events)
