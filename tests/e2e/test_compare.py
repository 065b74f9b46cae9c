"""End to end on the real node: a compare metric judges a canary by what it answers.

Two scikit-learn models served by MLServer disagree on a known share of the inputs: revision 2 was trained on
labels with 10 of 50 flipped, revision 3 on the same labels as revision 1 (another tree, the same answers on these
inputs). The operator runs the comparator (`<md>-mirror`, from the operator's own image) and points the
HTTPRoute's RequestMirror filter at it. There is no mesh data plane here, so the test does what the gateway would
with that filter: it sends a copy of each request to the Service the filter names. Before it does, it asks both
revisions' Services itself, and the share it sees them disagree on is what the verdict must rest on.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from typing import Any

import pytest
import servers
import yaml

from helpers import wait_for
from model_volumes import ON_REAL_NODE, cluster_ip, models_claim, models_folder
from modeldeployments import MD, apply, get, manifest, status, wait_phase
from routes import ROUTES

pytestmark = pytest.mark.skipif(os.environ.get("MODELDEPLOY_REAL_NODE", "1") == "0",
                                reason="the KWOK-only cluster has no real node")

ROWS, FLIPPED = 50, 10  # revision 2 answers 10 of the 50 rows otherwise: 20%
MIRROR = f"{MD}-mirror"


def models() -> tuple[list[list[float]], dict[str, Any]]:
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(7)
    features = rng.normal(size=(ROWS, 4)).round(3)
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    flipped = labels.copy()
    flipped[:FLIPPED] = 1 - flipped[:FLIPPED]
    # A tree grown in full answers every training row with its label: the disagreement is known exactly
    return features.tolist(), {
        "1": DecisionTreeClassifier(random_state=0).fit(features, labels),
        "2": DecisionTreeClassifier(random_state=0).fit(features, flipped),
        "3": DecisionTreeClassifier(random_state=3, splitter="random").fit(features, labels),
    }


def predicted(ip: str, rows: list[list[float]]) -> list[int]:
    return list(servers.infer(ip, "iris", rows)["outputs"][0]["data"])


def mirror_target(route: dict[str, Any]) -> str | None:
    """Where the HTTPRoute's RequestMirror filter sends copies, if it has one."""
    for rule in route["spec"]["rules"]:
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestMirror":
                return str(f["requestMirror"]["backendRef"]["name"])
    return None


class Gateway:
    """What a gateway does with the route's RequestMirror filter (100%): a copy of each request to that Service,
    its answer dropped. From a thread, until stopped."""

    def __init__(self, ip: str, rows: list[list[float]]) -> None:
        self.ip, self.rows, self.sent, self.failed = ip, rows, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                servers.infer(self.ip, "iris", self.rows, timeout=5)
                self.sent += 1
            except OSError:
                self.failed += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def ready_endpoints(cluster: Any, namespace: str, service: str) -> int:
    slices = get(cluster, namespace, "endpointslices") or {"items": []}
    return sum(1 for s in slices["items"] if s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
               == service for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def canary_under_comparison(cluster: Any, namespace: str, revision: int, rows: list[list[float]]) -> float:
    """Once the route mirrors to the comparator and the canary and the comparator are Ready: the share of
    predictions the two revisions' Services really disagree on, asked directly."""
    wait_for(lambda: get(cluster, namespace, "httproute", "fraud-route"), timeout=120,
             message="the route's mirror goes to the comparator", until=lambda r: mirror_target(r) == MIRROR)
    wait_for(lambda: status(cluster, namespace), timeout=180, message=f"revision {revision}'s pods Ready",
             until=lambda s: s.get("canaryRevision") == revision and s.get("readyReplicas", 0) >= 2)
    for service in (f"{MD}-canary", MIRROR):
        wait_for(lambda s=service: ready_endpoints(cluster, namespace, s), timeout=120,
                 message=f"a Ready endpoint behind {service}")
    stable = wait_for(lambda: predicted(cluster_ip(cluster, namespace, f"{MD}-stable"), rows), timeout=30,
                      ignore=(OSError,), message="stable answers")
    canary = wait_for(lambda: predicted(cluster_ip(cluster, namespace, f"{MD}-canary"), rows), timeout=30,
                      ignore=(OSError,), message="the canary answers")
    return sum(a != b for a, b in zip(stable, canary, strict=True)) / len(rows)


def test_a_canary_that_answers_otherwise_is_rolled_back_on_its_answers_and_one_that_agrees_is_promoted(
        cluster, namespace, start_operator, mesh_crds, operator_image, tmp_path):
    import joblib

    start_operator("--comparator-image", operator_image)
    cluster.kubectl("label", "namespace", namespace, "--overwrite", "pod-security.kubernetes.io/enforce=restricted")
    pv = models_claim(cluster, namespace)
    folder = models_folder(namespace)
    rows, trained = models()
    for version, model in trained.items():
        (folder / f"v{version}").mkdir()
        joblib.dump(model, folder / f"v{version}" / "model.joblib")
        (folder / f"v{version}" / "model-settings.json").write_text(json.dumps({
            "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": version}}))
    route = copy.deepcopy(ROUTES["httproute"])
    route["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    gateway: Gateway | None = None

    def spec(version: str) -> dict[str, Any]:
        return manifest(
            namespace, version=version, replicas=1, model={"uri": f"pvc://models/v{version}", "version": version},
            runtime={"preset": "mlserver"}, template=ON_REAL_NODE,
            rollout={"steps": [{"mirror": {"percent": 100}}, {"analysis": {}}, {"setWeight": 50},
                               {"pause": {"duration": "1s"}}],
                     "trafficRouting": {"gatewayAPI": {"httpRoute": "fraud-route"}}, "scaleDownDelaySeconds": 2,
                     "analysis": {"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 100, "metrics": [{
                         "name": "agreement", "compare": {"maxDisagreement": 0.1, "minPredictions": 500}}]}})

    try:
        apply(cluster, spec("1"))
        wait_phase(cluster, namespace, "Healthy", timeout=180, stableRevision=1, readyReplicas=1)
        assert get(cluster, namespace, "deployment", MIRROR) is None  # no canary: no comparator

        # Revision 2 answers 20% of the rows otherwise: rolled back on what the comparator counted
        apply(cluster, spec("2"))
        served = canary_under_comparison(cluster, namespace, 2, rows)
        assert served == FLIPPED / ROWS, served
        gateway = Gateway(cluster_ip(cluster, namespace, MIRROR), rows)
        st = wait_phase(cluster, namespace, "Degraded", timeout=120, stableRevision=1)
        gateway.stop()
        (m,) = st["analysis"]["measurements"]
        print(f"revision 2: {m['message']} (asked directly: {served:.0%}; {gateway.sent} copies sent)")
        assert m["value"] == pytest.approx(served) and m["verdict"] == "Fail"
        assert "differ from revision 1's; maxDisagreement 10.0%" in m["message"]
        assert "agreement=0.2" in st["message"], st["message"]
        # The comparator and the route's copy go with the canary
        wait_for(lambda: get(cluster, namespace, "deployment", MIRROR), timeout=30, until=lambda d: d is None,
                 message="the comparator removed")
        assert mirror_target(get(cluster, namespace, "httproute", "fraud-route")) is None

        # Revision 3 gives revision 1's answers: promoted, on a disagreement measured as 0
        apply(cluster, spec("3"))
        served = canary_under_comparison(cluster, namespace, 3, rows)
        assert served == 0, served
        gateway = Gateway(cluster_ip(cluster, namespace, MIRROR), rows)
        st = wait_phase(cluster, namespace, "Healthy", timeout=180, stableRevision=3)
        gateway.stop()
        (m,) = st["analysis"]["measurements"]
        print(f"revision 3: {m['message']} ({gateway.sent} copies sent)")
        assert m["value"] == 0 and m["verdict"] == "Pass"
        assert m["message"].startswith("0 of ") and "differ from revision 1's" in m["message"]
        wait_for(lambda: get(cluster, namespace, "deployment", MIRROR), timeout=30, until=lambda d: d is None,
                 message="the comparator removed")
    finally:
        if gateway:
            gateway.stop()
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)
