"""End to end on the real node: a model server that is slow for its first requests, judged by the latency its
clients get, is rolled back without a warm-up and promoted with a warm-up by requests.

The server is MLServer with a scikit-learn model behind a small custom runtime (in the model's folder, as
MLServer loads them) that answers its first COLD requests after a delay: a cold cache, as a large model's first
requests are. The latency check is a webhook that times one real inference through the canary's Service per
run. The warm-up counts the canary's requests by MLServer's own counter, scraped by Prometheus.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
from typing import Any

import pytest
import servers

from helpers import wait_for
from model_volumes import ON_REAL_NODE, cluster_ip, models_claim, models_folder
from modeldeployments import MD, apply, manifest, status, wait_phase

pytestmark = pytest.mark.skipif(os.environ.get("MODELDEPLOY_REAL_NODE", "1") == "0",
                                reason="the KWOK-only cluster has no real node")

COLD, DELAY, SLOW = 40, 0.5, 0.25  # the first 40 requests take 0.5 s more; the check fails an answer over 0.25 s
SLOW_START = f'''\
"""scikit-learn, slow for its first {COLD} requests (a cold cache)."""
import asyncio

from mlserver_sklearn import SKLearnModel


class SlowStart(SKLearnModel):
    served = 0

    async def predict(self, payload):
        self.served += 1
        if self.served <= {COLD}:
            await asyncio.sleep({DELAY})
        return await super().predict(payload)
'''
COUNT = 'sum(model_infer_request_success_total{namespace="$namespace", revision="$revision"})'


class LatencyCheck:
    """The webhook: one inference through `<md>-canary`, timed; 2xx when it answered within SLOW seconds."""

    def __init__(self, cluster: Any, namespace: str, row: list[float]) -> None:
        self.cluster, self.namespace, self.row = cluster, namespace, row
        self.seen: list[tuple[str, float, float]] = []  # (revision, when, seconds)
        self.errors: list[str] = []

    def __call__(self, body: dict[str, Any]) -> int:
        # `<md>-canary` is made with the canary: until kube-proxy has its endpoints, a connection is refused
        ends = time.monotonic() + 5
        ip = cluster_ip(self.cluster, self.namespace, f"{MD}-canary")
        while True:
            began = time.monotonic()
            try:
                servers.infer(ip, "iris", [self.row], timeout=5)
                break
            except urllib.error.HTTPError as exc:
                self.errors.append(f"revision {body['revision']}: {exc}")
                return 503
            except OSError as exc:
                if time.monotonic() > ends:
                    self.errors.append(f"revision {body['revision']}: {exc}")
                    return 503
                time.sleep(0.2)
        took = time.monotonic() - began
        self.seen.append((body["revision"], time.time(), took))
        return 200 if took <= SLOW else 500


def test_a_model_slow_for_its_first_requests_is_rolled_back_without_a_warm_up_and_promoted_with_one(
        cluster, namespace, operator, webhooks, pod_prometheus):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    pv = models_claim(cluster, namespace)
    folder = models_folder(namespace)
    for version in ("1", "2", "3"):
        (folder / f"v{version}").mkdir(parents=True)
        joblib.dump(model, folder / f"v{version}" / "model.joblib")
        slow = version != "1"
        if slow:
            (folder / f"v{version}" / "slowstart.py").write_text(SLOW_START)
        (folder / f"v{version}" / "model-settings.json").write_text(json.dumps({
            "name": "iris", "implementation": "slowstart.SlowStart" if slow else "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": version}}))
    check = LatencyCheck(cluster, namespace, features[0].tolist())
    hook = webhooks(check)
    load = None

    def spec(version: str, warmup: dict[str, Any] | None) -> dict[str, Any]:
        analysis: dict[str, Any] = {
            "interval": "2s", "failureLimit": 0, "inconclusiveLimit": 20,
            "metrics": [{"name": "latency", "webhook": {"url": hook.url(), "timeoutSeconds": 8}}]}
        if warmup:
            analysis["warmup"] = warmup
        return manifest(namespace, version=version, replicas=1,
                        model={"uri": f"pvc://models/v{version}", "version": version},
                        runtime={"preset": "mlserver", "env": [{"name": "MLSERVER_PARALLEL_WORKERS", "value": "0"}]},
                        template=ON_REAL_NODE,
                        rollout={"steps": [{"setWeight": 50}, {"analysis": {}}], "scaleDownDelaySeconds": 2,
                                 "progressDeadlineSeconds": 300, "analysis": analysis})

    try:
        apply(cluster, spec("1", None))
        wait_phase(cluster, namespace, "Healthy", timeout=180, stableRevision=1, readyReplicas=1)
        ip = cluster_ip(cluster, namespace, MD)
        wait_for(lambda: servers.infer(ip, "iris", features[:1].tolist()), timeout=20, ignore=(OSError,),
                 message="the Service answers")
        load = servers.Load(ip, "iris", features[::3].tolist())  # the clients

        # Without a warm-up: the first run times a cold answer, and a good model is rolled back
        apply(cluster, spec("2", None))
        st = wait_phase(cluster, namespace, "Degraded", timeout=180, stableRevision=1)
        assert "latency=500" in st["message"], (st["message"], check.errors)
        cold = [took for rev, _, took in check.seen if rev == "2"]
        print(f"revision 2, no warm-up: rolled back on its first check ({cold[0]:.2f} s); {st['message']}")
        assert cold and cold[0] > SLOW, check.seen

        # With a warm-up of COLD requests, counted by Prometheus from MLServer's counter: the same server promoted
        began = time.time()
        apply(cluster, spec("3", {"requests": COLD, "requestCount": {"address": pod_prometheus.address,
                                                                      "query": COUNT}}))
        st = wait_phase(cluster, namespace, "Healthy", timeout=240, stableRevision=3)
        a = st["analysis"]
        checks = [(when, took) for rev, when, took in check.seen if rev == "3"]
        ended = datetime_of(a["warmupEndsAt"])
        print(f"revision 3, warm-up of {COLD} requests: {a['warmupRuns']} runs not counted, ended after "
              f"{ended - began:.0f} s at {a['warmupRequests']} requests; checks (s): "
              + ", ".join(f"{took:.2f}" for _, took in checks))
        assert a["warmupRequests"] >= COLD and a["warmupRuns"] >= 1, a
        # The warm-up left out what was really slow, and what counted was fast
        assert any(took > SLOW for when, took in checks if when < ended), checks
        assert a["measurements"][0]["verdict"] == "Pass" and a["passed"] >= 1, a
    finally:
        if load:
            load.stop()
        cluster.kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)
    assert status(cluster, namespace)["stableRevision"] == 3


def datetime_of(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
