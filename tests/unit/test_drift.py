"""Drift detection: does a live object already say everything the desired manifest says?"""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.desired.drift import covers, needs_apply

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "fraud-r1", "namespace": "risk", "labels": {"modeldeploy.dev/name": "fraud"}},
    "spec": {
        "replicas": 3,
        "template": {"spec": {
            "containers": [{"name": "server", "image": "srv:1",
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                            "ports": [{"name": "http", "containerPort": 8080}]}],
            "volumes": [{"name": "model", "emptyDir": {}}],
        }},
    },
}


def live(**spec_changes: Any) -> dict[str, Any]:
    """DEPLOYMENT as the API server returns it: with defaults, status and server metadata added."""
    container = {**DEPLOYMENT["spec"]["template"]["spec"]["containers"][0],
                 "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}
    spec = {**DEPLOYMENT["spec"], "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
            "template": {"metadata": {"creationTimestamp": None},
                         "spec": {**DEPLOYMENT["spec"]["template"]["spec"], "containers": [container],
                                  "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}},
            **spec_changes}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**DEPLOYMENT["metadata"], "uid": "u-1", "resourceVersion": "42", "generation": 2,
                     "labels": {**DEPLOYMENT["metadata"]["labels"], "added-by-someone": "x"},
                     "managedFields": [{"manager": "modeldeploy"}]},
        "spec": spec,
        "status": {"replicas": 3, "readyReplicas": 3},
    }


def with_container(**changes: Any) -> dict[str, Any]:
    obj = live()
    c = obj["spec"]["template"]["spec"]["containers"][0]
    obj["spec"]["template"]["spec"]["containers"][0] = {**c, **changes}
    return obj


@pytest.mark.parametrize(("live_obj", "expected"), [
    (live(), False),
    (live(replicas=5), True),
    (with_container(image="srv:2"), True),
    (with_container(resources={"requests": {"cpu": "0.5", "memory": "1073741824"}}), False),
    (with_container(resources={"requests": {"cpu": "0.6", "memory": "1Gi"}}), True),
    (with_container(resources={"requests": {"cpu": "500m"}}), True),
    (with_container(ports=[]), True),
    (with_container(ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                           {"name": "metrics", "containerPort": 9090}]), True),
    (None, True),
], ids=["server-defaults-ignored", "replicas-changed", "image-changed", "quantities-normalised",
        "cpu-changed", "memory-request-removed", "list-shorter", "list-longer",
        "missing-live-object"])
def test_needs_apply(live_obj: dict[str, Any] | None, expected: bool) -> None:
    # Given a desired Deployment and what the API server holds
    # When compared, Then an apply is needed exactly when the live object lacks or changed a field we set
    assert needs_apply(DEPLOYMENT, live_obj) is expected


def test_api_version_and_kind_are_not_compared() -> None:
    assert needs_apply(DEPLOYMENT, {k: v for k, v in live().items() if k not in ("apiVersion", "kind")}) is False


@pytest.mark.parametrize(("have", "want", "expected"), [
    ({"a": 1, "b": 2}, {"a": 1}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ({}, {"emptyDir": {}}, True),
    ({"emptyDir": {}}, {"emptyDir": {}}, True),
    ({"emptyDir": None}, {"emptyDir": {}}, True),
    ({"emptyDir": {"medium": "Memory"}}, {"emptyDir": {}}, False),
    ({}, {"args": []}, True),
    ({"args": ["a"]}, {"args": []}, False),
    ({"requests": {"cpu": "500m"}}, {"requests": {"cpu": "0.5"}}, True),
    ({"limits": {"memory": "1073741824"}}, {"limits": {"memory": "1Gi"}}, True),
    ({"limits": {"memory": "1G"}}, {"limits": {"memory": "1Gi"}}, False),
    ({"limits": {"cpu": "1"}}, {"limits": {"cpu": 1}}, True),
    ({"limits": {"cpu": "1"}}, {"limits": {"cpu": "1.0"}}, True),
    ({"x": "true"}, {"x": True}, False),
    ({"x": "http"}, {"x": "https"}, False),
    ({"x": [1, 2]}, {"x": [2, 1]}, False),
    ({"x": "a"}, {"x": {"y": 1}}, False),
    ({"x": {"y": 1}}, {"x": "a"}, False),
    ({"x": None}, {"x": "a"}, False),
    ({"selector": {"md": "fraud", "revision": "1"}}, {"selector": {"md": "fraud"}}, False),
    ({"selector": {"md": "fraud"}}, {"selector": {"md": "fraud"}}, True),
    ({"nodeSelector": {"pool": "gpu", "zone": "a"}}, {"nodeSelector": {"pool": "gpu"}}, False),
    ({"labels": {"md": "fraud", "team": "risk"}}, {"labels": {"md": "fraud"}}, True),
], ids=["extra-live-key", "missing-live-key", "empty-dict-vs-missing", "empty-dict-vs-empty-dict",
        "empty-dict-vs-null", "empty-dict-vs-filled", "empty-list-vs-missing", "empty-list-vs-filled",
        "millicores", "gibibyte", "gigabyte-is-not-gibibyte", "int-vs-numeric-string", "server-canonical-form",
        "string-true-is-not-bool", "different-strings", "list-order-matters",
        "scalar-vs-dict", "dict-vs-scalar", "null-vs-value",
        "a-selector-with-a-key-more-selects-fewer", "same-selector", "a-node-selector-with-a-key-more",
        "labels-may-have-more"])
def test_covers(have: Any, want: Any, expected: bool) -> None:
    assert covers(have, want) is expected


def test_version_strings_are_not_quantities() -> None:
    want = {"env": [{"name": "MODEL_VERSION", "value": "1.10"}]}
    have = {"env": [{"name": "MODEL_VERSION", "value": "1.1"}]}
    assert covers(have, want) is False
