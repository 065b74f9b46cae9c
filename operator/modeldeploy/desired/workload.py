"""The Deployment that runs one revision of a model: `<md>-r<N>`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.runtime import resolve
from modeldeploy.desired.settings import Settings

MODEL_VOLUME = "model"
SERVER_CONTAINER = "server"
INIT_CONTAINER = "storage-initializer"
# spec.model.caBundleConfigMap's ca.crt, in the fetcher only; the variables are the ones its HTTP (requests) and
# S3 (boto3) clients read, and each replaces the default trust.
CA_VOLUME = "model-ca"
CA_FILE = "/etc/modeldeploy/model-ca/ca.crt"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")
# A pod leaving its Services (a scale-down, a rollback, a promotion) keeps serving this long after it is told
# to stop: the removal of its endpoint reaches kube-proxy on every node (and any mesh's proxies) a moment later,
# and a server that quit at once fails the requests still routed to it. Measured on the local control plane's
# real node: 1 request in 400 failed at a canary step without it. Well inside the default 30 s grace period.
DRAIN_SECONDS = 5


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns a child object."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        """ownerReference: garbage collection removes children with their owner."""
        return {"apiVersion": names.API_VERSION, "kind": names.KIND, "name": self.name,
                "uid": self.uid, "controller": True, "blockOwnerDeletion": True}

    def metadata(self, name: str, extra_labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Metadata of a child: name, namespace, standard labels, owner reference."""
        meta: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {**names.base_labels(self.name), **(extra_labels or {})},
            "ownerReferences": [self.reference()],
        }
        if annotations:
            meta["annotations"] = annotations
        return meta


def split_pvc_uri(uri: str) -> tuple[str, str]:
    """pvc://<claim>/<path> -> (claim, path within the claim)."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    return claim, path


def _restricted_container_security() -> dict[str, Any]:
    # The "restricted" Pod Security Standard, per container.
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _credentials(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    # Credentials arrive as env from the Secret: never inline in the spec.
    secret = spec.model.credentials_secret
    return [{"secretRef": {"name": secret}}] if secret else []


def pod_template(spec: ModelDeploymentSpec, owner: Owner, revision: int,
                 settings: Settings) -> dict[str, Any]:
    """The pod template of a revision: model fetcher, model server, restricted security."""
    runtime = resolve(spec.runtime)
    template = spec.template
    user_meta = template.metadata if template and template.metadata else None
    labels = {**(user_meta.labels or {} if user_meta else {}),
              **names.base_labels(owner.name), names.LABEL_REVISION: str(revision)}
    annotations = {**(user_meta.annotations or {} if user_meta else {}),
                   names.ANN_MODEL_VERSION: spec.model.version}

    mount = {"name": MODEL_VOLUME, "mountPath": names.MODEL_MOUNT_PATH, "readOnly": True}
    init_containers: list[dict[str, Any]] = []
    if spec.model.uri.startswith("pvc://"):
        claim, path = split_pvc_uri(spec.model.uri)
        volume: dict[str, Any] = {"name": MODEL_VOLUME,
                                  "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        if path:
            mount["subPath"] = path
    else:
        volume = {"name": MODEL_VOLUME, "emptyDir": {}}
        init_containers.append({
            "name": INIT_CONTAINER,
            "image": settings.storage_initializer_image,
            "args": [spec.model.uri, names.MODEL_MOUNT_PATH],
            "envFrom": _credentials(spec),
            "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": names.MODEL_MOUNT_PATH}],
            "securityContext": _restricted_container_security(),
            # An initializer that fails says why in its last log lines: the kubelet puts them in the
            # container's status, and the operator quotes them.
            "terminationMessagePolicy": "FallbackToLogsOnError",
        })
    volumes = [volume]
    ca = spec.model.ca_bundle_config_map
    if ca and init_containers:
        volumes.append({"name": CA_VOLUME, "configMap": {"name": ca, "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
        fetcher = init_containers[0]
        fetcher["env"] = [{"name": name, "value": CA_FILE} for name in CA_VARIABLES]
        fetcher["volumeMounts"].append({"name": CA_VOLUME, "mountPath": CA_FILE.rpartition("/")[0],
                                        "readOnly": True})

    env = [e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in (spec.runtime.env or [])]
    env += [{"name": "MODEL_DIR", "value": names.MODEL_MOUNT_PATH},
            {"name": "MODEL_VERSION", "value": spec.model.version}]
    server: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": runtime.image,
        "ports": [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"},
                  *([{"name": "metrics", "containerPort": runtime.metrics_port, "protocol": "TCP"}]
                    if runtime.metrics_port else [])],
        "env": env,
        "envFrom": _credentials(spec),
        "readinessProbe": {"httpGet": {"path": runtime.readiness_path, "port": "http"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [mount],
        "securityContext": _restricted_container_security(),
    }
    if runtime.startup is not None:
        # The readiness probe waits for it; so a load is bounded by the startup budget, not by readiness's.
        period = runtime.startup.period_seconds
        server["startupProbe"] = {"httpGet": {"path": runtime.readiness_path, "port": "http"},
                                  "periodSeconds": period,
                                  "failureThreshold": max(1, math.ceil(runtime.startup.timeout_seconds / period))}
    if runtime.run_as_user is not None:
        server["securityContext"]["runAsUser"] = runtime.run_as_user
    if runtime.args:
        server["args"] = list(runtime.args)
    if spec.runtime.resources:
        server["resources"] = spec.runtime.resources.model_dump(by_alias=True, exclude_none=True, mode="json")
    if not server["envFrom"]:
        del server["envFrom"]
    for c in init_containers:
        if not c["envFrom"]:
            del c["envFrom"]

    pod_spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [server],
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if template and template.node_selector:
        pod_spec["nodeSelector"] = dict(template.node_selector)
    if template and template.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True, mode="json")
                                   for t in template.tolerations]
    if template and template.service_account_name:
        pod_spec["serviceAccountName"] = template.service_account_name
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def deployment(spec: ModelDeploymentSpec, owner: Owner, revision: int, replicas: int,
               settings: Settings, scale_down_at: datetime | None = None,
               superseded_at: datetime | None = None) -> dict[str, Any]:
    """The Deployment `<md>-r<N>` at the given replica count."""
    selector = {names.LABEL_MD: owner.name, names.LABEL_REVISION: str(revision)}
    serving = spec.serving_template()
    # The Deployment carries its own revision's identity (only in its metadata: pods never restart for it),
    # so a lost history is rebuilt from what runs, never by replacing it.
    annotations = {names.ANN_MODEL_VERSION: spec.model.version,
                   names.ANN_SERVING_TEMPLATE: json.dumps(serving, sort_keys=True, separators=(",", ":"))}
    if scale_down_at is not None:
        annotations[names.ANN_SCALE_DOWN_AT] = scale_down_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if superseded_at is not None:
        annotations[names.ANN_SUPERSEDED_AT] = superseded_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(names.deployment_name(owner.name, revision),
                                   {names.LABEL_REVISION: str(revision),
                                    names.LABEL_REVISION_HASH: template_hash(serving)}, annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # A revision's Deployment never changes its pod template, so it
            # needs no history of its own; rollouts happen across Deployments.
            "revisionHistoryLimit": 1,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": pod_template(spec, owner, revision, settings),
        },
    }
