"""End to end: a model that takes its time to load (KWOK's `slow-load` pods: the server runs at once and is
Ready 12 s later; tests/cluster/kwok.yaml)."""

from __future__ import annotations

import re
from typing import Any

from helpers import wait_for
from modeldeployments import MD, apply, deployments, events, manifest, status, wait_phase

LOAD_SECONDS = 12


def slow(namespace: str, version: str, startup: int) -> dict[str, Any]:
    body = manifest(namespace, version=version, replicas=2)
    body["spec"]["runtime"]["startup"] = {"timeoutSeconds": startup, "periodSeconds": 5}
    body["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "slow-load"}}}
    body["spec"]["rollout"] = {"progressDeadlineSeconds": 5, "scaleDownDelaySeconds": 2}
    return body


def test_a_load_within_its_startup_budget_outlasts_the_progress_deadline_and_says_how_far_it_is(
        cluster, namespace, operator):
    # Given a model that loads for 12 s, a startup budget of 60 s, and a progress deadline of 5 s
    apply(cluster, slow(namespace, "1", startup=60))
    # Then while it loads, status says so, in the load's own terms
    st = wait_for(lambda: status(cluster, namespace), timeout=30, message="the load shown",
                  until=lambda s: "loading model" in (s.get("message") or ""))
    assert re.fullmatch(r"revision 1 \(model 1\): 0/2 pods ready; loading model \(\d*0s of up to 1m\)",
                        st["message"]), st["message"]
    # And the pods carry a startup probe of that budget, apart from readiness
    server = deployments(cluster, namespace)[f"{MD}-r1"]["spec"]["template"]["spec"]["containers"][0]
    assert server["startupProbe"]["periodSeconds"] == 5 and server["startupProbe"]["failureThreshold"] == 12
    # And past the 5 s deadline it is still loading, not failed, and then serves
    wait_phase(cluster, namespace, "Healthy", timeout=LOAD_SECONDS + 20, stableRevision=1, readyReplicas=2)
    assert not events(cluster, namespace, "RolloutStuck"), events(cluster, namespace, "RolloutStuck")


def test_a_new_revision_that_loads_past_its_budget_is_rolled_back(cluster, namespace, operator):
    apply(cluster, slow(namespace, "1", startup=60))
    wait_phase(cluster, namespace, "Healthy", timeout=LOAD_SECONDS + 25, stableRevision=1)
    # When revision 2 may load for 5 s only, and takes 12
    apply(cluster, slow(namespace, "2", startup=5))
    st = wait_phase(cluster, namespace, "Degraded", timeout=LOAD_SECONDS, stableRevision=1)
    assert re.match(r"revision 2 \(model 2\) failed: 0/2 pods ready; loading model for \d+s, past its startup "
                    r"budget of 5s after \d+s \(progressDeadlineSeconds 5\)", st["message"]), st["message"]
