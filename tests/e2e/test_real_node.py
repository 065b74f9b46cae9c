"""The local control plane's real node (tests/cluster/realnode.py) and its addresses (hostnet.py).

A pod here runs in a real container and is reached through a real kube-proxy,
so what these tests read is what a client gets. They are skipped on the
KWOK-only cluster (MODELDEPLOY_REAL_NODE=0). That the host is as before once
the cluster stops is checked by `make cluster-down` itself, which CI runs last.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import wait_for
from model_volumes import ON_REAL_NODE, models_claim, models_folder
from modeldeployments import MD, apply, cli, events, get, manifest, status, wait_phase

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import hostnet
import images
import realnode
import servers

pytestmark = pytest.mark.skipif(os.environ.get("MODELDEPLOY_REAL_NODE", "1") == "0",
                                reason="the KWOK-only cluster has no real node")



def echo_pod(name: str, version: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "echo"}},
        "spec": {
            **ON_REAL_NODE,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "echo", "image": realnode.ECHO_SERVER, "imagePullPolicy": "Never",
                "env": [{"name": "MODEL_VERSION", "value": version},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=3) as r:
        return json.loads(r.read())


def test_a_real_pod_starts_passes_its_probe_and_answers_through_its_cluster_ip(cluster, namespace):
    node = json.loads(cluster.kubectl("get", "node", realnode.NAME, "-o", "json").stdout)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert {"key": realnode.LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(echo_pod("echo", "7")))
    cluster.kubectl("create", "service", "clusterip", "echo", "--tcp=80:8080", "-n", namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/echo", "--timeout=60s")
    pod = json.loads(cluster.kubectl("get", "pod", "echo", "-n", namespace, "-o", "json").stdout)
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(hostnet.NODE_PODS)

    ip = cluster.kubectl("get", "service", "echo", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(hostnet.SERVICES)

    def answers() -> dict | None:
        try:
            return get_json(f"http://{ip}/")
        except OSError:
            return None  # kube-proxy has not programmed the new Service yet

    assert wait_for(answers, timeout=30, message="the Service answers") == {"pod": "echo", "version": "7"}
    # The API server reaches the kubelet, logged in with a certificate the kubelet checks.
    logs = cluster.kubectl("logs", "echo", "-n", namespace).stdout
    assert "echo-server listening on :8080" in logs


def test_no_cluster_address_routes_off_this_machine(cluster, namespace):
    # KWOK's pods, the real node's pods, ClusterIPs: each range's first, middle and last address.
    for cidr in (hostnet.KWOK_PODS, hostnet.NODE_PODS, hostnet.SERVICES):
        net = ipaddress.ip_network(cidr)
        for address in (net[1], net[net.num_addresses // 2], net[-2]):
            route = hostnet.route_of(str(address))
            # Into the bridge; the bridge's own address is this host's (by loopback).
            assert route.get("dev") in (hostnet.BRIDGE, "lo") and "gateway" not in route, (address, route)

    # A KWOK-backed Service: kube-proxy rewrites its ClusterIP to a pod IP no machine has.
    cluster.kubectl("create", "deployment", "sim", "--image=registry.example/none:1", "-n", namespace)
    cluster.kubectl("expose", "deployment", "sim", "--port=80", "-n", namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment/sim", "--timeout=30s")
    pod_ip = cluster.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[0].status.podIP}").stdout
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(hostnet.KWOK_PODS)
    assert hostnet.route_of(pod_ip).get("dev") == hostnet.BRIDGE


def _guard_drops() -> int:
    table = json.loads(hostnet._run("nft", "-j", "list", "table", "inet", hostnet.GUARD_TABLE).stdout)
    counters = [item["rule"] for item in table["nftables"] if "rule" in item and item["rule"]["chain"] == "keep_local"
                and any("counter" in e for e in item["rule"]["expr"])]
    assert len(counters) == 1, counters
    return next(e["counter"]["packets"] for e in counters[0]["expr"] if "counter" in e)


def test_the_guard_drops_a_packet_for_the_cluster_that_would_leave_by_the_default_route(cluster):
    default = json.loads(hostnet._run("ip", "-j", "route", "show", "default").stdout or "[]")
    if not default:
        pytest.skip("this host has no default route: nothing could leave")
    before = _guard_drops()  # asserts first that the dropping rule is in place
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # Forced out of the default route's interface, as a packet would go without the route into the bridge.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, default[0]["dev"].encode())
        # A netfilter drop of a packet this host sends comes back to the sender as EPERM. (A pod address:
        # kube-proxy itself drops packets for unallocated ClusterIPs, before the guard would count them.)
        with contextlib.suppress(PermissionError):
            s.sendto(b"x", (str(ipaddress.ip_network(hostnet.KWOK_PODS)[-2]), 9))
    assert _guard_drops() == before + 1


ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 400
# Each request opens a new connection, and kube-proxy picks an endpoint for it at random, so a share p
# over 400 requests has a standard deviation of at most 2.5 points: 10 points is 4 of them.
TOLERANCE = 0.10


def _answers(ip: str) -> list[str]:
    """REQUESTS requests, each on a new connection through the ClusterIP: the version that answered
    each, or the error a client got."""
    out = []
    for _ in range(REQUESTS):
        try:
            out.append(get_json(f"http://{ip}/")["version"])
        except OSError as exc:
            out.append(f"error: {exc}")
    return out


def _served_share(ip: str, version: str) -> float:
    """The share of REQUESTS answered by `version`; a request that fails fails the test."""
    answers = _answers(ip)
    errors = [a for a in answers if a.startswith("error")]
    assert not errors, f"{len(errors)} of {len(answers)} requests failed: {sorted(set(errors))}"
    return answers.count(version) / len(answers)


def _ready_pods(cluster, namespace: str, service: str) -> dict[str, dict]:
    """Ready endpoints behind `service` (its EndpointSlices say): address -> its pod."""
    slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", namespace, "-l",
                                        f"kubernetes.io/service-name={service}", "-o", "json").stdout)["items"]
    pods = {p["metadata"]["name"]: p for p in
            json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]}
    return {endpoint["addresses"][0]: pods[endpoint["targetRef"]["name"]]
            for endpoint in (e for s in slices for e in s.get("endpoints") or [])
            if endpoint.get("conditions", {}).get("ready") and endpoint["targetRef"]["name"] in pods}


def _ready_endpoints(cluster, namespace: str, service: str) -> dict[str, str]:
    """Ready endpoints behind `service`: address -> the model version of its pod."""
    return {address: next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "MODEL_VERSION")
            for address, pod in _ready_pods(cluster, namespace, service).items()}


def _proxied(namespace: str, service: str) -> set[str]:
    """The pod addresses kube-proxy's nftables rules send `service`'s requests to now: the data plane itself,
    which follows the EndpointSlices a moment later (its minimum sync period is 1 s)."""
    table = hostnet._run("nft", "list", "table", "ip", "kube-proxy").stdout
    chain = re.search(rf"chain service-\w+-{re.escape(namespace)}/{re.escape(service)}/tcp/[^{{]*{{(.*?)}}\n\s*}}",
                      table, re.S)
    return set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. \d+", chain[1])) if chain else set()


def _settled_split(cluster, namespace: str, service: str) -> tuple[dict, dict[str, str]]:
    """Once status, the EndpointSlices and kube-proxy agree on who serves: the status and the endpoints."""
    def look() -> tuple[dict, dict[str, str], set[str]]:
        return status(cluster, namespace), _ready_endpoints(cluster, namespace, service), _proxied(namespace, service)

    def agreed(seen: tuple[dict, dict[str, str], set[str]]) -> bool:
        st, endpoints, proxied = seen
        share = round(100 * list(endpoints.values()).count("2") / len(endpoints)) if endpoints else None
        return set(endpoints) == proxied and st.get("canaryWeight") == share

    st, endpoints, _ = wait_for(look, timeout=30, until=agreed,
                                message="status, EndpointSlices and kube-proxy agree on the split")
    return st, endpoints


def test_a_replicas_canary_splits_real_requests_as_its_status_says(cluster, namespace, operator):
    """The replicas router on real pods: the request share clients measure at each step is the pod share
    the operator reports in status.canaryWeight, within the tolerance above."""
    pv = models_claim(cluster, namespace)
    try:
        def model(version: str) -> dict:
            return manifest(
                namespace, version=version, replicas=4,
                model={"uri": "pvc://models", "version": version},
                runtime={"image": realnode.ECHO_SERVER, "port": 8080, "readinessPath": "/healthz",
                         "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                template=ON_REAL_NODE,
                rollout={"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]})

        apply(cluster, model("1"))
        wait_phase(cluster, namespace, "Healthy", timeout=90, stableRevision=1, readyReplicas=4)
        ip = cluster.kubectl("get", "service", MD, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
        assert wait_for(lambda: _served_share(ip, "1"), timeout=20, message="all answers from v1",
                        ignore=(OSError,)) == 1.0

        apply(cluster, model("2"))
        seen = []
        for weight in (25, 50):
            wait_phase(cluster, namespace, "Paused", timeout=90, canaryRevision=2, stepWeight=weight)
            st, endpoints = _settled_split(cluster, namespace, MD)
            share = _served_share(ip, "2")
            seen.append((weight, st["canaryWeight"], sorted(endpoints.values()), share))
            # What clients got is what status says is served, and what the step asked (4 pods: steps of 25)
            assert abs(share - st["canaryWeight"] / 100) <= TOLERANCE, seen
            assert st["canaryWeight"] == weight, seen
            assert cli(cluster, "promote", MD, "-n", namespace).returncode == 0
        wait_phase(cluster, namespace, "Healthy", timeout=90, stableRevision=2)
        # Revision 1 keeps its pods warm for the scale-down delay (30 s), but no longer serves
        only_v2 = wait_for(lambda: (_ready_endpoints(cluster, namespace, MD), _proxied(namespace, MD)), timeout=10,
                           until=lambda seen: set(seen[0].values()) == {"2"} and set(seen[0]) == seen[1],
                           message="only revision 2 behind the Service and in kube-proxy once promoted")
        assert len(only_v2[0]) == 4
        assert _served_share(ip, "2") == 1.0
        assert "canaryWeight" not in status(cluster, namespace)
    finally:
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)


def _enforce_restricted(cluster, namespace: str) -> None:
    """Pod Security "restricted", enforced: the API server refuses any pod short of it (shown first)."""
    cluster.kubectl("label", "namespace", namespace, "--overwrite", "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    loose = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loose"},
             "spec": {**ON_REAL_NODE, "containers": [{"name": "c", "image": realnode.ECHO_SERVER}]}}
    refused = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(loose),
                              check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr, refused


def _infer(ip: str, model: str, rows: list[list[float]]) -> list:
    """The predictions of a V2 request through the ClusterIP."""
    return servers.infer(ip, model, rows)["outputs"][0]["data"]


def _serves_predictions_of(cluster, namespace: str, model, features) -> str:
    """Once the first revision is Healthy, MLServer's V2 predictions through the Service are `model`'s own on
    every tenth iris row. Returns the ClusterIP."""
    wait_phase(cluster, namespace, "Healthy", timeout=180, stableRevision=1, readyReplicas=1)
    ip = cluster.kubectl("get", "service", MD, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
    predicted = wait_for(lambda: _infer(ip, "iris", features[::10].tolist()), timeout=20, ignore=(OSError,),
                         message="MLServer answers through the Service")
    assert predicted == model.predict(features[::10]).tolist()
    return ip


def test_the_mlserver_preset_serves_a_real_scikit_learn_model(cluster, namespace, operator):
    """The mlserver preset as a platform team runs it, in a namespace enforcing Pod Security "restricted":
    upstream's port, probe path, models folder and user, on a scikit-learn model the test trains; the
    predictions through the Service are the model's."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    _enforce_restricted(cluster, namespace)
    pv = models_claim(cluster, namespace)
    try:
        features, labels = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=1000).fit(features, labels)
        folder = models_folder(namespace)
        joblib.dump(model, folder / "model.joblib")
        (folder / "model-settings.json").write_text(json.dumps({
            "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "1"}}))
        apply(cluster, manifest(namespace, version="1", replicas=1,
                                model={"uri": "pvc://models", "version": "1"},
                                runtime={"preset": "mlserver"}, template=ON_REAL_NODE))
        _serves_predictions_of(cluster, namespace, model, features)
        # The preset's image, run as its numeric user (runAsNonRoot, as the operator's pods ask)
        pod = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"][0]
        assert pod["spec"]["containers"][0]["image"] == realnode.MLSERVER
        uid = cluster.kubectl("exec", "-n", namespace, pod["metadata"]["name"], "-c", "server", "--", "id", "-u")
        assert uid.stdout.strip() == "1000"
    finally:
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)


@pytest.mark.parametrize(("runtime", "reasons"), [
    pytest.param({"image": f"{images.REGISTRY}/not-built:1"}, ("ErrImagePull", "ImagePullBackOff"),
                 id="an-image-the-node-does-not-have"),
    pytest.param({"image": realnode.ECHO_SERVER, "readinessPath": "/healthz",
                  "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "key"}}}]},
                 ("CreateContainerConfigError",), id="a-container-the-kubelet-cannot-make"),
])
def test_pods_that_cannot_start_say_why_in_status_and_an_event_within_seconds(cluster, namespace, operator,
                                                                                runtime, reasons):
    pv = models_claim(cluster, namespace)
    try:
        apply(cluster, manifest(namespace, version="1", replicas=2, model={"uri": "pvc://models", "version": "1"},
                                runtime=runtime, template=ON_REAL_NODE))
        began = time.monotonic()
        st = wait_for(lambda: status(cluster, namespace), timeout=30, message=f"status names {reasons}",
                      until=lambda s: any(r in (s.get("message") or "") for r in reasons))
        took = time.monotonic() - began
        # Told by the kubelet's own words, long before the 600 s progress deadline
        assert st["phase"] == "Pending" and "0/2 pods ready; pod fraud-r1-" in st["message"], st["message"]
        assert took < 30
        said = wait_for(lambda: events(cluster, namespace, "PodsCannotStart"), timeout=10,
                        message="a PodsCannotStart Event")
        assert any(r in said[0] for r in reasons), said
        warning = get(cluster, namespace, "events")["items"]
        assert {e["type"] for e in warning if e.get("reason") == "PodsCannotStart"} == {"Warning"}
    finally:
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)


ERROR_RATE = servers.MLSERVER_ERROR_RATE.format(w="20s")
# One row in BAD_SHARE has a negative feature: a model that takes square roots fails on it.
BAD_SHARE = 0.3


def test_prometheus_analysis_on_mlservers_own_metrics_rolls_back_a_failing_model_and_promotes_a_good_one(
        cluster, namespace, operator, pod_prometheus):
    """Analysis on what the model servers themselves count: a new model that fails on part of the requests
    clients really send is rolled back on its measured error rate; a good one is promoted."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, labels = load_iris(return_X_y=True)
    models = {
        "1": LogisticRegression(max_iter=1000).fit(features, labels),
        # Square roots of the features: fine on iris, NaN (and MLServer's error) on a negative input
        "2": make_pipeline(FunctionTransformer(np.sqrt), LogisticRegression(max_iter=1000)).fit(features, labels),
        "3": LogisticRegression(C=0.5, max_iter=1000).fit(features, labels),
    }
    _enforce_restricted(cluster, namespace)
    pv = models_claim(cluster, namespace)
    load = None
    try:
        for version, model in models.items():
            folder = models_folder(namespace) / f"v{version}"
            folder.mkdir()
            joblib.dump(model, folder / "model.joblib")
            (folder / "model-settings.json").write_text(json.dumps({
                "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": version}}))

        def spec(version: str) -> dict:
            return manifest(
                namespace, version=version, replicas=2, model={"uri": f"pvc://models/v{version}", "version": version},
                runtime={"preset": "mlserver"}, template=ON_REAL_NODE,
                rollout={"steps": [{"setWeight": 50}, {"pause": {"duration": "20s"}}, {"analysis": {}}],
                         "analysis": {"interval": "5s", "failureLimit": 0, "inconclusiveLimit": 10, "metrics": [{
                             "name": "error-rate", "thresholdRange": {"max": 0.05},
                             "prometheus": {"address": pod_prometheus.address, "query": ERROR_RATE}}]}})

        apply(cluster, spec("1"))
        wait_phase(cluster, namespace, "Healthy", timeout=180, stableRevision=1, readyReplicas=2)
        ip = cluster.kubectl("get", "service", MD, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
        rows = [[-x if i % 10 < 10 * BAD_SHARE and j == 0 else x for j, x in enumerate(row)]
                for i, row in enumerate(features[::5].tolist())]
        wait_for(lambda: _infer(ip, "iris", rows[1:2]), timeout=20, ignore=(OSError,),
                 message="the Service answers (kube-proxy has programmed it)")
        load = servers.Load(ip, "iris", rows)
        mark = load.mark()
        wait_for(lambda: load.since(mark), timeout=20, until=lambda a: len(a) >= 100,
                 message="100 answers from revision 1")
        assert set(load.since(mark)) == {"1"}, "the stable model fails no request"

        # A model that fails on negative inputs: rolled back on what MLServer counted
        apply(cluster, spec("2"))
        wait_phase(cluster, namespace, "Progressing", timeout=120, canaryRevision=2, canaryWeight=50)
        canary_began = load.mark()
        st = wait_phase(cluster, namespace, "Degraded", timeout=120, stableRevision=1)
        while_canary = load.since(canary_began)
        value = st["analysis"]["measurements"][0]["value"]
        # What clients saw from revision 2 (revision 1 failed none above): errors / (its answers + errors)
        errors = sum(a.startswith("error") for a in while_canary)
        seen_by_clients = errors / (errors + while_canary.count("2"))
        print(f"canary error rate: {value:.3f} measured by Prometheus, {seen_by_clients:.3f} seen by clients "
              f"({len(while_canary)} requests while it served); rows it fails: {BAD_SHARE}")
        assert value > 0.05 and abs(value - BAD_SHARE) < 0.15, st["analysis"]
        assert abs(seen_by_clients - BAD_SHARE) < 0.15, while_canary
        assert "error-rate=0." in st["message"], st["message"]
        rolled_back = events(cluster, namespace, "RolledBack")
        assert rolled_back and "error-rate=0." in rolled_back[-1], rolled_back
        # And clients are back on revision 1 alone, with no errors, at once: while revision 1 gets back the pod
        # it lent, its one Ready pod serves every request rather than the failed model serving some
        assert _ready_endpoints_by_revision(cluster, namespace).get("1", 0) < 2, "revision 1 is not back yet"
        time.sleep(3)  # the EndpointSlice controller, then kube-proxy's 1 s sync
        mark = load.mark()
        wait_for(lambda: load.since(mark), timeout=20, until=lambda a: len(a) >= 100, message="100 more answers")
        assert set(load.since(mark)) == {"1"}

        # A good model: promoted, its error rate measured as 0
        apply(cluster, spec("3"))
        st = wait_phase(cluster, namespace, "Healthy", timeout=240, stableRevision=3)
        assert [m["value"] for m in st["analysis"]["measurements"]] == [0], st["analysis"]
        time.sleep(2)
        mark = load.mark()
        wait_for(lambda: load.since(mark), timeout=20, until=lambda a: len(a) >= 100, message="100 more answers")
        assert set(load.since(mark)) == {"3"}
    finally:
        if load:
            load.stop()
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)


def _ready_endpoints_by_revision(cluster, namespace: str) -> dict[str, int]:
    """Ready endpoints behind the client Service, counted by their pods' revision."""
    revisions = [pod["metadata"]["labels"]["modeldeploy.dev/revision"]
                 for pod in _ready_pods(cluster, namespace, MD).values()]
    return {r: revisions.count(r) for r in set(revisions)}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = servers.S3(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


def _secret(cluster, namespace: str, name: str, data: dict[str, str]) -> None:
    cluster.kubectl("create", "secret", "generic", name, "-n", namespace,
                    *(f"--from-literal={k}={v}" for k, v in data.items()))


def test_a_model_is_fetched_from_s3_by_kserves_storage_code_and_served(cluster, namespace, operator, s3):
    """s3:// with a credentialsSecret, fetched by the storage initializer (kserve-storage) into the pod, served
    by MLServer; a model that cannot be fetched says why in the storage code's own words, within seconds, while
    the serving revision keeps serving."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    _enforce_restricted(cluster, namespace)
    features, labels = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0).fit(features, labels)
    bucket = f"models-{namespace}"[:63]
    s3.client().create_bucket(Bucket=bucket)
    s3.put_mlserver_model(bucket, "iris/v1", model, "iris", "1")
    _secret(cluster, namespace, "s3", s3.credentials())
    _secret(cluster, namespace, "s3-wrong", s3.credentials(secret_key="not-the-key"))

    def spec(version: str, uri: str, secret: str) -> dict:
        return manifest(namespace, version=version, replicas=1, model={"uri": uri, "version": version,
                                                                        "credentialsSecret": secret},
                        runtime={"preset": "mlserver"}, template=ON_REAL_NODE)

    apply(cluster, spec("1", f"s3://{bucket}/iris/v1", "s3"))
    ip = _serves_predictions_of(cluster, namespace, model, features)
    pod = get(cluster, namespace, "pods")["items"][0]
    init = pod["status"]["initContainerStatuses"][0]
    assert init["image"] == realnode.STORAGE_INITIALIZER
    assert init["state"]["terminated"]["exitCode"] == 0

    cases = [
        # wrong credentials: the server refuses the request's signature (a HEAD: a status, no error code)
        ("2", f"s3://{bucket}/iris/v1", "s3-wrong", "HeadBucket operation: Forbidden"),
        # a missing object: kserve-storage finds nothing under the prefix
        ("3", f"s3://{bucket}/iris/v9", "s3", "No model found in iris/v9"),
    ]
    for version, uri, secret, said in cases:
        apply(cluster, spec(version, uri, secret))
        began = time.monotonic()
        st = wait_for(lambda: status(cluster, namespace), timeout=60, message=f"status quotes {said!r}",
                      until=lambda s, said=said: said in (s.get("message") or ""))
        took = time.monotonic() - began
        print(f"{uri} with {secret}: told in {took:.1f} s: {st['message']}")
        assert "init container storage-initializer failed (exit 1): fetching " + uri in st["message"], st
        assert st["stableRevision"] == 1
        reported = wait_for(lambda: events(cluster, namespace, "PodsCannotStart"), timeout=10,
                            until=lambda e, said=said: any(said in m for m in e), message="a PodsCannotStart Event")
        assert reported
        # Revision 1 still serves, right
        assert _infer(ip, "iris", features[::10].tolist()) == model.predict(features[::10]).tolist()


# -- the operator as a pod: the Dockerfile's image, installed with the Helm chart ------------------------------
LOCAL_VALUES = ROOT / "examples" / "local-cluster-values.yaml"


def test_helm_install_runs_the_dockerfiles_image_on_the_real_node_and_it_rolls_out_a_model(
        cluster, crd, namespace, operator_image):
    helm = [str(cluster.bin / "helm"), f"--kubeconfig={cluster.kubeconfig}"]
    release = "md-" + namespace[-6:]
    # As the README installs it, serving this namespace only, so it never meets another test's operator.
    install = subprocess.run([*helm, "install", release, str(ROOT / "helm" / "modeldeploy"), "-n", namespace,
                              "-f", str(LOCAL_VALUES), "--set", f"watchedNamespaces={{{namespace}}}",
                              "--wait", "--timeout", "120s"], capture_output=True, text=True, timeout=180)
    try:
        pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l",
                                          f"app.kubernetes.io/instance={release}", "-o", "json").stdout)["items"]
        assert install.returncode == 0, (f"helm install failed: {install.stderr}\n"
                                         + json.dumps([p.get("status") for p in pods], indent=1)[-3000:])
        (pod,) = pods
        # The chart's default image, which only the local build provides: nothing is pulled on this node.
        assert pod["spec"]["containers"][0]["image"] == operator_image
        assert pod["spec"]["nodeName"] == realnode.NAME
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"] and container["restartCount"] == 0, container
        # A real process: the kubelet runs it as the image's non-root user, and its log is the operator's.
        uid = cluster.kubectl("exec", "-n", namespace, pod["metadata"]["name"], "--", "id", "-u").stdout.strip()
        assert uid == "65532"

        # It reconciles with nothing but its ServiceAccount: no other operator serves this namespace.
        apply(cluster, manifest(namespace, version="1", replicas=2))
        wait_phase(cluster, namespace, "Healthy", timeout=90)
        apply(cluster, manifest(namespace, version="2", replicas=2, rollout={"steps": [{"setWeight": 50}]}))
        wait_for(lambda: status(cluster, namespace), timeout=120, message="revision 2 serves alone",
                 until=lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == 2)
        logs = cluster.kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
        assert namespace in logs, logs[-2000:]
    finally:
        subprocess.run([*helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s"],
                       capture_output=True, text=True, timeout=90)


# -- names: the cluster's DNS -----------------------------------------------------------------------------------
RESOLVE = """
import socket, sys, urllib.request
url, outside = sys.argv[1], sys.argv[2]
print("address", socket.gethostbyname(url.split("/")[2]))
print("answer", urllib.request.urlopen(url, timeout=5).read().decode())
try:
    print("outside", socket.gethostbyname(outside))
except OSError as exc:
    print("outside refused", exc)
"""


def _client_pod(cluster, namespace: str) -> None:
    """A pod `client` with Python (the storage initializer's image), idle until the test execs in it."""
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"}, "spec": {
        **ON_REAL_NODE, "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "client", "image": realnode.STORAGE_INITIALIZER, "imagePullPolicy": "Never",
                        "command": ["/opt/venv/bin/python", "-c", "import time; time.sleep(600)"]}]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(client))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/client", "--timeout=60s")


PROBE = """
import socket, sys
for port in sys.argv[2:]:
    with socket.socket() as s:
        s.settimeout(3)
        print(port, "open" if s.connect_ex((sys.argv[1], int(port))) == 0 else "closed")
"""


def test_pods_reach_kube_apiserver_and_no_other_control_plane_port(cluster, namespace):
    """kwokctl's components listen on every interface (etcd with no authentication at all): the guard lets
    pods reach kube-apiserver through the bridge and nothing else of the control plane."""
    import localcluster

    apiserver, others = localcluster._control_plane_ports()
    _client_pod(cluster, namespace)
    out = cluster.kubectl("exec", "-n", namespace, "client", "--", "/opt/venv/bin/python", "-c", PROBE,
                          hostnet.BRIDGE_ADDRESS.split("/")[0], str(apiserver), *map(str, others)).stdout
    seen = dict(line.split() for line in out.splitlines())
    assert seen == {str(apiserver): "open", **{str(p): "closed" for p in others}}, out


def test_a_pod_reaches_a_modeldeployment_by_its_status_url_and_no_other_name_resolves(cluster, namespace, operator):
    pv = models_claim(cluster, namespace)
    try:
        apply(cluster, manifest(namespace, version="3", replicas=1, model={"uri": "pvc://models", "version": "3"},
                                runtime={"image": realnode.ECHO_SERVER, "port": 8080, "readinessPath": "/healthz"},
                                template=ON_REAL_NODE))
        url = wait_phase(cluster, namespace, "Healthy", timeout=90, stableRevision=1)["url"]
        _client_pod(cluster, namespace)
        resolv = cluster.kubectl("exec", "-n", namespace, "client", "--", "cat", "/etc/resolv.conf").stdout
        assert f"nameserver {hostnet.BRIDGE_ADDRESS.split('/')[0]}" in resolv, resolv
        out = cluster.kubectl("exec", "-n", namespace, "client", "--", "/opt/venv/bin/python", "-c", RESOLVE,
                              url + "/", "example.com").stdout
        ip = cluster.kubectl("get", "service", MD, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
        assert f"address {ip}" in out, out
        assert json.loads(out.split("answer ", 1)[1].splitlines()[0])["version"] == "3", out
        # No zone but the cluster's and no forwarder: an outside name gets no answer, and no query leaves.
        assert "outside refused" in out, out
    finally:
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)


# -- https://, behind a private CA ------------------------------------------------------------------------------
def test_a_model_behind_a_private_ca_is_fetched_over_https_with_its_ca_bundle(cluster, namespace, operator,
                                                                               tmp_path):
    """https:// fetched by KServe's storage code, trusting the CA in spec.model.caBundleConfigMap; without it,
    the fetch fails in the storage code's words while revision 1 keeps serving."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    _enforce_restricted(cluster, namespace)
    features, labels = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0).fit(features, labels)
    store = servers.HTTPSFiles(tmp_path)
    try:
        uri = store.put_tarball("iris-v1.tar.gz", servers.mlserver_files(model, "iris", "1"))
        cluster.kubectl("create", "configmap", "models-ca", "-n", namespace, f"--from-file=ca.crt={store.ca}")

        def spec(version: str, **ca: str) -> dict:
            return manifest(namespace, version=version, replicas=1, model={"uri": uri, "version": version, **ca},
                            runtime={"preset": "mlserver"}, template=ON_REAL_NODE)

        apply(cluster, spec("1", caBundleConfigMap="models-ca"))
        ip = _serves_predictions_of(cluster, namespace, model, features)
        apply(cluster, spec("2"))  # the same server, without its CA: the public ones do not vouch for it
        st = wait_for(lambda: status(cluster, namespace), timeout=60, message="status quotes the TLS failure",
                      until=lambda s: "certificate verify failed" in (s.get("message") or ""))
        # (the message keeps its head and the storage code's last words, eliding the middle of a long one)
        assert "init container storage-initializer failed (exit 1" in st["message"], st["message"]
        assert st["stableRevision"] == 1
        assert _infer(ip, "iris", features[::10].tolist()) == model.predict(features[::10]).tolist()
    finally:
        store.stop()
