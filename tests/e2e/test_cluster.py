"""Acceptance checks of the local control plane (DESIGN.md, "The local control plane").

They pin down what the operator's end-to-end tests rely on: workload controllers,
KWOK's simulated pod behaviours, garbage collection, CRDs with a status
subresource, server-side apply, PodSecurity admission, RBAC and a GPU node.
Everything a test makes lives in its own namespace, except the CRD, which the
`widget_crd` fixture deletes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from helpers import holds_for, wait_for

IMAGE = "registry.example/pause:1"  # KWOK never pulls it
BEHAVIOR = "sim.modeldeploy.dev/behavior"
TIMEOUT = 30


@pytest.fixture(scope="module")
def api(cluster) -> Iterator[client.ApiClient]:
    with cluster.api_client() as api_client:
        yield api_client


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": IMAGE}]}},
        },
    }


def _pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": IMAGE, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [container], **spec}}


def _message(exc: client.ApiException) -> str:
    """The message of the Status an API error carries."""
    return json.loads(exc.body)["message"]


def _is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _ready_replicas(apps: client.AppsV1Api, name: str, namespace: str) -> int:
    return apps.read_namespaced_deployment_status(name, namespace).status.ready_replicas or 0


def test_deployment_reaches_ready_replicas_and_scales(api, namespace):
    apps = client.AppsV1Api(api)
    # Given a Deployment of 3 replicas
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))
    # Then 3 replicas become ready
    wait_for(lambda: _ready_replicas(apps, "web", namespace), TIMEOUT, until=lambda n: n == 3,
             message="Deployment web has 3 ready replicas")

    # When it is scaled to 5
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    # Then 5 replicas become ready, on 5 ready pods
    wait_for(lambda: _ready_replicas(apps, "web", namespace), TIMEOUT, until=lambda n: n == 5,
             message="Deployment web has 5 ready replicas")
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert sum(map(_is_ready, pods)) == 5, [(p.metadata.name, p.status.phase) for p in pods]


def test_never_ready_pod_runs_but_stays_unready(api, namespace):
    core = client.CoreV1Api(api)
    # Given a pod labelled never-ready
    core.create_namespaced_pod(namespace, _pod("stuck", {BEHAVIOR: "never-ready"}))

    def observe() -> dict[str, Any]:
        status = core.read_namespaced_pod_status("stuck", namespace).status
        return {"phase": status.phase, "ready": _is_ready(client.V1Pod(status=status)),
                "started": [c.started for c in status.container_statuses or []],
                "containers_ready": [c.ready for c in status.container_statuses or []]}

    # Then it becomes Running, with its container started
    seen = wait_for(observe, TIMEOUT, until=lambda s: s["phase"] == "Running", message="pod stuck is Running")
    assert seen["started"] == [True]
    # ... and it stays unready
    holds_for(observe, 3, message="pod stuck stays Running and unready",
              until=lambda s: s["phase"] == "Running" and not s["ready"] and s["containers_ready"] == [False])


def test_crash_loop_pod_restart_count_rises(api, namespace):
    core = client.CoreV1Api(api)
    # Given a pod labelled crash-loop
    core.create_namespaced_pod(namespace, _pod("crasher", {BEHAVIOR: "crash-loop"}))

    def restarts() -> int:
        statuses = core.read_namespaced_pod_status("crasher", namespace).status.container_statuses
        return statuses[0].restart_count if statuses else 0

    # Then its container restarts ...
    first = wait_for(restarts, TIMEOUT, message="pod crasher has restarted")
    # ... and keeps restarting, in CrashLoopBackOff and never ready
    wait_for(restarts, TIMEOUT, until=lambda n: n > first, message=f"restartCount of crasher rises above {first}")
    pod = core.read_namespaced_pod_status("crasher", namespace)
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert not _is_ready(pod)


def test_deleting_deployment_garbage_collects_replicasets_and_pods(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    # Given a ready Deployment, with its ReplicaSet and pods
    apps.create_namespaced_deployment(namespace, _deployment("doomed", 2))
    wait_for(lambda: _ready_replicas(apps, "doomed", namespace), TIMEOUT, until=lambda n: n == 2,
             message="Deployment doomed has 2 ready replicas")

    def replicasets() -> list[str]:
        return [rs.metadata.name for rs in
                apps.list_namespaced_replica_set(namespace, label_selector="app=doomed").items]

    def pods() -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=doomed").items]

    assert len(replicasets()) == 1
    assert len(pods()) == 2

    # When the Deployment is deleted (background propagation)
    apps.delete_namespaced_deployment("doomed", namespace, propagation_policy="Background")
    # Then the garbage collector removes its ReplicaSet and its pods
    wait_for(replicasets, TIMEOUT, until=lambda names: not names, message="ReplicaSets of doomed are gone")
    wait_for(pods, TIMEOUT, until=lambda names: not names, message="pods of doomed are gone")


@pytest.fixture
def widget_crd(api) -> Iterator[dict[str, str]]:
    """A throwaway namespaced CRD `Widget` with a status subresource, in a unique group."""
    ext = client.ApiextensionsV1Api(api)
    group = f"{secrets.token_hex(4)}.test.modeldeploy.dev"
    name = f"widgets.{group}"
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"},
                                                    "observedGeneration": {"type": "integer"}}},
    }}
    ext.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name, "labels": {"modeldeploy.dev/test": "true"}},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}}}],
        },
    })
    try:
        def established() -> bool:
            conditions = ext.read_custom_resource_definition_status(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_for(established, TIMEOUT, message=f"CRD {name} is Established")
        yield {"group": group, "version": "v1", "plural": "widgets"}
    finally:
        try:
            ext.delete_custom_resource_definition(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def test_crd_status_subresource_round_trips(api, namespace, widget_crd):
    custom = client.CustomObjectsApi(api)
    ref = {**widget_crd, "namespace": namespace}
    # Given the CRD's endpoint serves
    wait_for(lambda: custom.list_namespaced_custom_object(**ref) is not None, TIMEOUT,
             ignore=(client.ApiException,), message="the Widget endpoint serves")

    # When a Widget is created with a spec (and a status, which the main endpoint must drop)
    created = custom.create_namespaced_custom_object(**ref, body={
        "apiVersion": f"{widget_crd['group']}/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 3}, "status": {"phase": "Forged"}})
    # Then the spec is kept and the status is not
    assert created["spec"] == {"size": 3}
    assert "status" not in created
    generation = created["metadata"]["generation"]

    # When the status is written through the status subresource (with a spec change it must ignore)
    custom.patch_namespaced_custom_object_status(
        **ref, name="w", body={"status": {"phase": "Ready", "observedGeneration": generation},
                               "spec": {"size": 99}},
        _content_type="application/merge-patch+json")
    # Then reading back shows both: the original spec and the new status, generation unchanged
    widget = custom.get_namespaced_custom_object(**ref, name="w")
    assert widget["spec"] == {"size": 3}
    assert widget["status"] == {"phase": "Ready", "observedGeneration": generation}
    assert widget["metadata"]["generation"] == generation
    assert custom.get_namespaced_custom_object_status(**ref, name="w")["status"]["phase"] == "Ready"

    # When the spec changes through the main endpoint
    custom.patch_namespaced_custom_object(**ref, name="w", body={"spec": {"size": 4}},
                                          _content_type="application/merge-patch+json")
    # Then the generation moves on and the status is kept
    widget = custom.get_namespaced_custom_object(**ref, name="w")
    assert widget["metadata"]["generation"] == generation + 1
    assert widget["status"]["phase"] == "Ready"


def test_server_side_apply_tracks_field_managers_and_conflicts(api, namespace):
    core = client.CoreV1Api(api)

    def apply(manager: str, value: str, force: bool | None = None) -> client.V1ConfigMap:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                "data": {"mode": value}}
        return core.patch_namespaced_config_map("settings", namespace, body, field_manager=manager,
                                                force=force, _content_type="application/apply-patch+yaml")

    # When manager a applies a ConfigMap
    cm = apply("a", "fast")
    # Then managedFields lists a as the applier owning data.mode
    owners = {(m.manager, m.operation): m.fields_v1 for m in cm.metadata.managed_fields}
    assert owners == {("a", "Apply"): {"f:data": {"f:mode": {}}}}

    # When manager b applies a different value to the same field, without force
    with pytest.raises(client.ApiException) as conflict:
        apply("b", "slow")
    # Then the API server refuses with 409 Conflict, naming manager a and the field
    assert conflict.value.status == 409
    assert _message(conflict.value) == 'Apply failed with 1 conflict: conflict with "a": .data.mode'
    assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "fast"}

    # When b forces it, then b owns the field and a no longer does
    cm = apply("b", "slow", force=True)
    assert cm.data == {"mode": "slow"}
    assert {m.manager for m in cm.metadata.managed_fields if m.fields_v1 and "f:data" in m.fields_v1} == {"b"}


def test_restricted_namespace_rejects_privileged_pod(api, namespace):
    core = client.CoreV1Api(api)
    # Given a namespace enforcing the restricted Pod Security Standard
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    privileged = _pod("root", container={"securityContext": {"privileged": True}})

    def rejected_in_dry_run() -> int | None:
        try:
            core.create_namespaced_pod(namespace, privileged, dry_run="All")
        except client.ApiException as exc:
            return exc.status
        return None

    # (admission sees the new label once its namespace cache has it)
    wait_for(rejected_in_dry_run, TIMEOUT, message="dry-run of a privileged pod is rejected")

    # When a privileged pod is created
    with pytest.raises(client.ApiException) as denied:
        core.create_namespaced_pod(namespace, privileged)
    # Then it is forbidden by PodSecurity
    assert denied.value.status == 403
    message = _message(denied.value)
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "app" must not set securityContext.privileged=true)' in message

    # ... while a restricted-compliant pod is admitted
    compliant = _pod(
        "nonroot",
        securityContext={"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        container={"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
    )
    core.create_namespaced_pod(namespace, compliant)


def test_service_account_without_rbac_is_denied(api, cluster, namespace):
    core = client.CoreV1Api(api)
    # Given a ServiceAccount without any RBAC binding, and a token for it
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    admin = api.configuration
    config = client.Configuration(host=admin.host, ssl_ca_cert=admin.ssl_ca_cert,
                                  api_key={"BearerToken": token}, api_key_prefix={"BearerToken": "Bearer"})
    user = f"system:serviceaccount:{namespace}:nobody"

    with client.ApiClient(config) as sa_api:
        # When it lists pods in its own namespace
        with pytest.raises(client.ApiException) as denied:
            client.CoreV1Api(sa_api).list_namespaced_pod(namespace)
        # Then it is authenticated as itself, but forbidden
        assert denied.value.status == 403
        assert f'User "{user}" cannot list resource "pods"' in _message(denied.value)

        # ... and kubectl agrees
        can_i = cluster.kubectl("auth", "can-i", "list", "pods", f"--as={user}", "-n", namespace, check=False)
        assert (can_i.returncode, can_i.stdout.strip()) == (1, "no"), can_i

        # When a Role allowing it is bound, then the same token may list pods
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "pod-reader"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": "nobody-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}]})
        wait_for(lambda: client.CoreV1Api(sa_api).list_namespaced_pod(namespace) is not None, TIMEOUT,
                 ignore=(client.ApiException,), message="the bound ServiceAccount may list pods")


def test_a_node_advertises_gpus(api, namespace):
    core = client.CoreV1Api(api)
    # Given the cluster's nodes
    gpus = {n.metadata.name: int((n.status.allocatable or {}).get("nvidia.com/gpu", "0"))
            for n in core.list_node().items}
    # Then at least one advertises allocatable nvidia.com/gpu
    gpu_nodes = [name for name, count in gpus.items() if count > 0]
    assert gpu_nodes, f"no node advertises nvidia.com/gpu: {gpus}"

    # When a pod requests a GPU, then the scheduler places it on such a node and it runs
    core.create_namespaced_pod(namespace, _pod("trainer", container={
        "resources": {"limits": {"nvidia.com/gpu": "1"}}}))
    pod = wait_for(lambda: core.read_namespaced_pod("trainer", namespace), TIMEOUT, until=_is_ready,
                   message="GPU pod trainer is ready")
    assert pod.spec.node_name in gpu_nodes
