"""The Deployment of one revision: pod security, credentials, model volume, labels, ownership, probes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.desired import workload
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.runtime import PRESETS
from modeldeploy.desired.settings import Settings

OWNER = workload.Owner("fraud", "risk", "6f1c2b7e-0000-4000-8000-000000000003")
SETTINGS = Settings(storage_initializer_image="registry.example/storage-initializer:1")


def spec(uri: str = "s3://models/fraud/v7", **fields: Any) -> ModelDeploymentSpec:
    raw: dict[str, Any] = {"model": {"uri": uri, "version": "7"}, "runtime": {"image": "srv:1"}, "replicas": 2}
    for key, value in fields.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return ModelDeploymentSpec.model_validate(raw)


def deployment(s: ModelDeploymentSpec, revision: int = 3, replicas: int = 2, **kw: Any) -> dict[str, Any]:
    return workload.deployment(s, OWNER, revision, replicas, SETTINGS, **kw)


def pod(s: ModelDeploymentSpec, revision: int = 3) -> dict[str, Any]:
    return deployment(s, revision)["spec"]["template"]


def containers(p: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from p["spec"].get("initContainers", [])
    yield from p["spec"]["containers"]


def server(p: dict[str, Any]) -> dict[str, Any]:
    (c,) = p["spec"]["containers"]
    return c


SPECS = {
    "s3": spec(),
    "pvc": spec("pvc://models/fraud/v7"),
    "preset-with-credentials": spec(model={"credentialsSecret": "s3-creds"}, runtime={"image": None, "preset": "vllm"}),
    "service-account-and-tolerations": spec(template={"serviceAccountName": "reader", "tolerations": [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}),
}


@pytest.mark.parametrize("s", SPECS.values(), ids=SPECS.keys())
def test_pod_meets_the_restricted_pod_security_standard(s: ModelDeploymentSpec) -> None:
    # Given any spec, When its pod template is built
    p = pod(s)
    # Then the pod and every container run as the "restricted" standard requires
    assert p["spec"]["securityContext"]["runAsNonRoot"] is True
    assert p["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in containers(p):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert "privileged" not in sc and "add" not in sc["capabilities"]
    # And only volume types the standard allows are used, and no host namespaces
    for v in p["spec"]["volumes"]:
        assert set(v) - {"name"} <= {"emptyDir", "persistentVolumeClaim", "secret", "configMap", "projected"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(p["spec"])


def paths_to(value: str, obj: Any, path: str = "") -> Iterator[str]:
    """Every path in obj where the string value appears."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_to(value, v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_to(value, v, f"{path}[{i}]")
    elif obj == value:
        yield path


def test_credentials_secret_is_env_from_on_both_containers_and_nowhere_else() -> None:
    # Given spec.model.credentialsSecret
    s = spec(model={"credentialsSecret": "s3-creds"})
    # When the Deployment is built
    d = deployment(s)
    p = d["spec"]["template"]
    # Then the fetcher and the server take the Secret's keys as environment
    for c in containers(p):
        assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}], c["name"]
    assert [c["name"] for c in containers(p)] == [workload.INIT_CONTAINER, workload.SERVER_CONTAINER]
    # And the Secret's name appears only as those references, never as a literal value
    assert sorted(paths_to("s3-creds", d)) == [
        ".spec.template.spec.containers[0].envFrom[0].secretRef.name",
        ".spec.template.spec.initContainers[0].envFrom[0].secretRef.name",
    ]


def test_no_credentials_means_no_env_from() -> None:
    assert all("envFrom" not in c for c in containers(pod(spec())))


@pytest.mark.parametrize(("uri", "claim", "sub_path"), [
    ("pvc://models/fraud/v7", "models", "fraud/v7"),
    ("pvc://models/model.onnx", "models", "model.onnx"),
    ("pvc://models", "models", None),
], ids=["nested-path", "file", "whole-claim"])
def test_pvc_uri_mounts_the_claim_read_only(uri: str, claim: str, sub_path: str | None) -> None:
    # Given a model on a PersistentVolumeClaim
    p = pod(spec(uri))
    # Then the claim is mounted read-only at the model dir, at its subPath, with no fetcher
    (volume,) = p["spec"]["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    (mount,) = server(p)["volumeMounts"]
    assert (mount["name"], mount["mountPath"], mount["readOnly"]) == (volume["name"], names.MODEL_MOUNT_PATH, True)
    assert mount.get("subPath") == sub_path
    assert "initContainers" not in p["spec"]


@pytest.mark.parametrize("uri", ["s3://models/fraud/v7", "gs://b/m", "hf://org/model", "https://h/m.tgz",
                                 "oci://registry/model:7"], ids=["s3", "gs", "hf", "https", "oci"])
def test_remote_uri_is_fetched_by_the_storage_initializer(uri: str) -> None:
    # Given a model at a remote URI
    p = pod(spec(uri))
    # Then the storage initializer fetches it into an emptyDir the server reads
    (init,) = p["spec"]["initContainers"]
    assert init["name"] == workload.INIT_CONTAINER
    assert init["image"] == SETTINGS.storage_initializer_image
    assert init["args"] == [uri, names.MODEL_MOUNT_PATH]
    assert init["volumeMounts"] == [{"name": workload.MODEL_VOLUME, "mountPath": names.MODEL_MOUNT_PATH}]
    assert p["spec"]["volumes"] == [{"name": workload.MODEL_VOLUME, "emptyDir": {}}]
    assert server(p)["volumeMounts"] == [{"name": workload.MODEL_VOLUME, "mountPath": names.MODEL_MOUNT_PATH,
                                          "readOnly": True}]
    # and a failed fetch leaves its last log lines in the pod's status, for the operator to quote
    assert init["terminationMessagePolicy"] == server(p)["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_a_private_ca_is_trusted_by_the_fetcher_alone_from_its_configmap() -> None:
    # Given a model on a server behind a private CA, whose certificates are in a ConfigMap
    p = pod(spec("https://models.internal/fraud/v7.tar.gz", model={"caBundleConfigMap": "models-ca"}))
    # Then the ConfigMap's ca.crt is mounted read-only into the fetcher, whose HTTP and S3 clients trust it
    (init,) = p["spec"]["initContainers"]
    assert {"name": workload.CA_VOLUME, "configMap": {"name": "models-ca", "items": [
        {"key": "ca.crt", "path": "ca.crt"}]}} in p["spec"]["volumes"]
    assert {"name": workload.CA_VOLUME, "mountPath": "/etc/modeldeploy/model-ca", "readOnly": True} in \
        init["volumeMounts"]
    assert init["env"] == [{"name": "REQUESTS_CA_BUNDLE", "value": workload.CA_FILE},
                           {"name": "AWS_CA_BUNDLE", "value": workload.CA_FILE}]
    # and the model server, which fetches nothing, gets neither
    assert not {"REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"} & {e["name"] for e in server(p)["env"]}
    assert [m["name"] for m in server(p)["volumeMounts"]] == [workload.MODEL_VOLUME]


def test_a_ca_bundle_for_a_mounted_model_is_refused() -> None:
    with pytest.raises(ValidationError, match="caBundleConfigMap is for a model the fetcher downloads"):
        spec("pvc://models/fraud", model={"caBundleConfigMap": "models-ca"})


def test_labels_selector_and_owner() -> None:
    # Given user template labels (the operator's own keys are refused by the schema: see test_reserved_keys)
    s = spec(template={"metadata": {"labels": {"team": "risk"},
                                    "annotations": {"prometheus.io/scrape": "true"}}})
    d = deployment(s, revision=3)
    p = d["spec"]["template"]
    # Then the pods carry the standard labels, the revision and the user's own labels
    assert p["metadata"]["labels"] == {
        "team": "risk",
        names.LABEL_NAME: "fraud",
        names.LABEL_MANAGED_BY: "modeldeploy",
        names.LABEL_MD: "fraud",
        names.LABEL_REVISION: "3",
    }
    assert p["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # And the Deployment selects exactly its revision's pods
    selector = d["spec"]["selector"]["matchLabels"]
    assert selector == {names.LABEL_MD: "fraud", names.LABEL_REVISION: "3"}
    assert selector.items() <= p["metadata"]["labels"].items()
    # And it is named and labelled for the revision, and owned by the ModelDeployment
    meta = d["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fraud-r3", "risk")
    assert meta["labels"] == {names.LABEL_NAME: "fraud", names.LABEL_MANAGED_BY: "modeldeploy",
                              names.LABEL_MD: "fraud", names.LABEL_REVISION: "3",
                              names.LABEL_REVISION_HASH: template_hash(s.serving_template())}
    # And it says which serving template it runs (in its own metadata only: never a pod restart)
    assert json.loads(meta["annotations"][names.ANN_SERVING_TEMPLATE]) == s.serving_template()
    assert names.ANN_SERVING_TEMPLATE not in p["metadata"]["annotations"]
    assert meta["ownerReferences"] == [{"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                        "name": "fraud", "uid": OWNER.uid, "controller": True,
                                        "blockOwnerDeletion": True}]
    # And no role label: promotion never changes the pod template
    assert not any("role" in k for k in p["metadata"]["labels"])


def test_pod_template_does_not_depend_on_replicas_or_scale_down() -> None:
    s = spec()
    a = deployment(s, replicas=2)
    b = deployment(s, replicas=0, scale_down_at=datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC))
    assert a["spec"]["template"] == b["spec"]["template"]
    assert b["metadata"]["annotations"][names.ANN_SCALE_DOWN_AT] == "2025-06-01T12:00:30Z"
    assert names.ANN_SCALE_DOWN_AT not in a["metadata"]["annotations"]
    assert (a["spec"]["replicas"], b["spec"]["replicas"]) == (2, 0)


@pytest.mark.parametrize(("runtime", "path", "port", "image"), [
    ({"image": "srv:1"}, "/v2/health/ready", 8080, "srv:1"),
    ({"image": "srv:1", "readinessPath": "/healthz", "port": 9000}, "/healthz", 9000, "srv:1"),
    *[({"preset": name}, p.readiness_path, p.port, p.image) for name, p in sorted(PRESETS.items())],
    ({"preset": "torchserve", "readinessPath": "/ready"}, "/ready", PRESETS["torchserve"].port,
     PRESETS["torchserve"].image),
], ids=["image-default", "image-custom", *[f"preset-{n}" for n in sorted(PRESETS)], "preset-overridden"])
def test_readiness_probe_and_port(runtime: dict[str, Any], path: str, port: int, image: str) -> None:
    # Given a runtime image or preset
    s = spec(runtime={"image": None, **runtime})
    c = server(pod(s))
    # Then the probe hits the runtime's readiness path on the named http port
    assert c["readinessProbe"]["httpGet"] == {"path": path, "port": "http"}
    assert c["ports"][0] == {"name": "http", "containerPort": port, "protocol": "TCP"}
    assert c["image"] == image


@pytest.mark.parametrize(("runtime", "user"), [
    ({"image": "srv:1"}, None),  # the image's own numeric USER
    ({"preset": "mlserver"}, None),  # USER 1000 in the image
    ({"preset": "torchserve"}, 1000),  # USER model-server: a name the kubelet cannot check
    ({"preset": "triton"}, 1000),
])
def test_a_preset_whose_image_has_no_numeric_non_root_user_runs_as_one(runtime: dict[str, Any],
                                                                       user: int | None) -> None:
    c = server(pod(spec(runtime={"image": None, **runtime})))
    assert c["securityContext"].get("runAsUser") == user
    assert c["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(("runtime", "ports"), [
    ({"image": "srv:1"}, [8080]),
    ({"preset": "mlserver"}, [8080, 8082]),
    ({"preset": "triton"}, [8000, 8002]),
    ({"preset": "vllm"}, [8000]),  # /metrics on the API port
    ({"preset": "mlserver", "port": 8082}, [8082]),  # the server moved onto its metrics port: one port
])
def test_a_preset_declares_its_servers_metrics_port_for_scrapers_to_find(runtime: dict[str, Any],
                                                                          ports: list[int]) -> None:
    c = server(pod(spec(runtime={"image": None, **runtime})))
    assert [p["containerPort"] for p in c["ports"]] == ports
    assert [p["name"] for p in c["ports"]] == ["http", "metrics"][:len(ports)]


def test_a_stopping_server_keeps_serving_while_its_endpoint_is_removed() -> None:
    # Given any revision's pod
    c = server(pod(spec()))
    # Then the server is told to stop only after a drain, well inside the pod's grace period
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": workload.DRAIN_SECONDS}}}
    assert 0 < workload.DRAIN_SECONDS < 30
    assert "terminationGracePeriodSeconds" not in pod(spec())["spec"]  # the default 30 s


def test_runtime_args_env_resources_and_scheduling() -> None:
    s = spec(runtime={"args": ["--workers", "2"], "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                      "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}}},
             template={"nodeSelector": {"pool": "cpu"}, "serviceAccountName": "reader",
                       "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]})
    p = pod(s)
    c = server(p)
    assert c["args"] == ["--workers", "2"]
    assert c["env"] == [{"name": "LOG_LEVEL", "value": "debug"},
                        {"name": "MODEL_DIR", "value": names.MODEL_MOUNT_PATH},
                        {"name": "MODEL_VERSION", "value": "7"}]
    assert c["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}}
    assert p["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert p["spec"]["serviceAccountName"] == "reader"
    assert p["spec"]["tolerations"] == [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]


def test_rolling_update_never_drops_ready_pods() -> None:
    strategy = deployment(spec())["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}


@pytest.mark.parametrize("template", [
    pytest.param({"metadata": {"labels": {names.LABEL_REVISION: "9"}}}, id="revision-label"),
    pytest.param({"metadata": {"labels": {names.LABEL_MANAGED_BY: "me"}}}, id="managed-by-label"),
    pytest.param({"metadata": {"annotations": {names.ANN_MODEL_VERSION: "1"}}}, id="model-version-annotation"),
])
def test_reserved_keys_are_refused_naming_them(template: dict) -> None:
    with pytest.raises(ValidationError, match="belong to the operator"):
        spec(template=template)


@pytest.mark.parametrize("name", ["MODEL_DIR", "MODEL_VERSION"])
def test_reserved_env_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="set by the operator"):
        spec(runtime={"image": "x", "env": [{"name": name, "value": "/elsewhere"}]})
