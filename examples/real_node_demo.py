"""`make demo` on the local control plane's real node: real models, real requests, real metrics.

A fraud model (scikit-learn, trained here) is put in an S3 bucket, fetched by KServe's storage code and
served by MLServer. A load generator sends V2 requests through the Service while version 8 goes out as a
canary: at each step the share of requests that version 8 answered is measured and printed beside the share
the operator reports. Then version 9, which fails on part of the requests, is rolled back on the error
rate Prometheus measured from MLServer's own counters. The S3 server, Prometheus and the load generator
stop with the demo; the cluster stays up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from democluster import KUBECONFIG, LOG, NAMESPACE, ROOT, kubectl, say

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import realnode
import servers

PROVIDER = "demo-prometheus"
REPLICAS = 4
# Rows whose first feature (the amount) is unknown, sent as -1: version 9 takes logarithms and fails on them.
UNKNOWN_EVERY = 4


def status() -> dict[str, Any]:
    md = json.loads(kubectl("get", "modeldeployment", "fraud", "-n", NAMESPACE, "-o", "json"))
    return md.get("status") or {}


SAID = {"message": ""}  # the last status message printed


def wait(until: Any, timeout: float) -> dict[str, Any]:
    """Print each new status message of fraud until `until(status)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        st = status()
        if st.get("message") and st["message"] != SAID["message"]:
            SAID["message"] = st["message"]
            say(f"   [{st.get('phase', '-')}] {st['message']}")
        if until(st):
            return st
        if time.monotonic() > deadline:
            raise SystemExit(f"error: the demo did not get there within {timeout:.0f} s; operator log: {LOG}")
        time.sleep(0.3)


def models() -> tuple[dict[str, Any], list[list[float]]]:
    """Versions 7, 8 and 9 of the fraud model, and the rows clients send."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, labels = make_classification(n_samples=2000, n_features=6, n_informative=4, random_state=7)
    features = features - features.min(axis=0) + 1  # amounts, counts, ages: positive
    trained = {
        "7": LogisticRegression(max_iter=1000).fit(features, labels),
        "8": LogisticRegression(C=0.2, max_iter=1000).fit(features, labels),
        # Logarithms of the features: a better fit on skewed amounts, and NaN (an error) on an unknown one
        "9": make_pipeline(FunctionTransformer(np.log), LogisticRegression(max_iter=1000)).fit(features, labels),
    }
    rows = [[-1.0, *row[1:]] if i % UNKNOWN_EVERY == 0 else row for i, row in enumerate(features[:400].tolist())]
    return trained, rows


def manifest(version: str, secret: str) -> dict[str, Any]:
    analysis = {"interval": "5s", "failureLimit": 0, "inconclusiveLimit": 10, "metrics": [{
        "name": "error-rate", "thresholdRange": {"max": 0.05},
        "prometheus": {"provider": PROVIDER, "query": servers.MLSERVER_ERROR_RATE.format(w="10s")}}]}
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": f"s3://models/fraud/v{version}", "version": version, "credentialsSecret": secret},
            "runtime": {"preset": "mlserver", "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}}},
            "template": {"nodeSelector": {realnode.LABEL: "true"},
                         "tolerations": [{"key": realnode.LABEL, "operator": "Exists", "effect": "NoSchedule"}]},
            "replicas": REPLICAS,
            "rollout": {"steps": [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"analysis": {}},
                                  {"setWeight": 50}, {"pause": {"duration": "10s"}}, {"analysis": {}}],
                        "analysis": analysis, "scaleDownDelaySeconds": 10},
        },
    }


def share(answers: list[str], version: str) -> str:
    return f"{100 * answers.count(version) / max(len(answers), 1):.0f}% of {len(answers)} requests"


def measure(load: servers.Load, seconds: float = 6) -> list[str]:
    """What clients got over `seconds`, once kube-proxy has followed the EndpointSlices (its sync is 1 s)."""
    time.sleep(2)
    mark = load.mark()
    time.sleep(seconds)
    return load.since(mark)


def canary(load: servers.Load, version: str, secret: str) -> dict[str, Any]:
    """Apply `version`, and at each step print the share of requests it answered beside what status says,
    until the rollout ends; the final status."""
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest(version, secret)))
    wait(lambda s: s.get("canaryRevision"), 60)
    measured: set[int] = set()  # the weights measured: once each
    while True:
        st = wait(lambda s: s.get("canaryRevision") is None
                  or (s.get("canaryWeight") and s.get("canaryWeight") == s.get("stepWeight")
                      and s["canaryWeight"] not in measured), 600)
        if st.get("canaryRevision") is None:
            return st
        measured.add(st["canaryWeight"])
        answers = measure(load)
        errors = sum(a.startswith("error") for a in answers)
        say(f"-- at {st['stepWeight']}%: the operator reports version {version} serving {st['canaryWeight']}%; "
            f"clients got version {version} on {share(answers, version)}"
            + (f" and an error on {errors} (version {version} failed {errors} of the "
               f"{errors + answers.count(version)} it got)" if errors else ""))


def main() -> int:
    trained, rows = models()
    say("== modeldeploy demo on the local control plane's real node")
    say("-- installing the CRDs; a namespace that enforces Pod Security \"restricted\"")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/modeldeployments.modeldeploy.dev",
            "crd/analysisproviders.modeldeploy.dev")
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
    kubectl("create", "namespace", NAMESPACE)
    kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted")

    work = Path(tempfile.mkdtemp(prefix="modeldeploy-demo-"))
    running: list[Any] = []
    try:
        s3 = servers.S3(work / "s3")
        running.append(s3)
        s3.client().create_bucket(Bucket="models")
        for version, model in trained.items():
            s3.put_mlserver_model("models", f"fraud/v{version}", model, "fraud", version)
        kubectl("create", "secret", "generic", "models-s3", "-n", NAMESPACE,
                *(f"--from-literal={k}={v}" for k, v in s3.credentials().items()))
        say(f"-- an S3 server at {s3.endpoint} holds fraud/v7, v8 and v9 (scikit-learn, trained just now)")
        prometheus = servers.Prometheus(work, servers.SCRAPE_MODEL_SERVERS.format(kubeconfig=KUBECONFIG,
                                                                                  node=realnode.NAME))
        running.append(prometheus)
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
            "apiVersion": "modeldeploy.dev/v1alpha1", "kind": "AnalysisProvider", "metadata": {"name": PROVIDER},
            "spec": {"prometheus": {"address": prometheus.address}}}))
        say(f"-- Prometheus at {prometheus.address} finds the model servers through Kubernetes discovery "
            f"(AnalysisProvider {PROVIDER})")

        say(f"-- starting the operator for namespace {NAMESPACE} (log: {LOG.relative_to(ROOT)})")
        LOG.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, KUBECONFIG=str(KUBECONFIG))
        with LOG.open("w") as log:
            op = subprocess.Popen([sys.executable, "-m", "modeldeploy.cli.main", "run", "--namespace", NAMESPACE,
                                   "--metrics-port", "0", "--health-port", "0"], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
        running.append(op)

        say(f"-- fraud, model version 7 from s3://models/fraud/v7, {REPLICAS} MLServer pods")
        started = time.monotonic()
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest("7", "models-s3")))
        wait(lambda s: s.get("phase") == "Healthy" and s.get("readyReplicas") == REPLICAS, 300)
        ip = kubectl("get", "service", "fraud", "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}")
        answer = servers.wait_until(lambda: servers.infer(ip, "fraud", rows[1:2]), 30, "fraud answers")
        say(f"-- Healthy after {time.monotonic() - started:.0f} s. POST http://{ip}/v2/models/fraud/infer "
            f"{[round(x, 2) for x in rows[1]]} -> {answer['outputs'][0]['data']} (model version "
            f"{answer['model_version']})")
        load = servers.Load(ip, "fraud", rows)
        running.insert(0, load)
        say(f"-- a load generator sends V2 requests through the Service, {100 // UNKNOWN_EVERY}% "
            "of them with an unknown amount (-1)")
        say()

        say("-- version 8 as a canary: 25%, analysis, 50%, analysis, then all")
        st = canary(load, "8", "models-s3")
        say(f"-- {st['phase']}: revision {st['stableRevision']} serves; clients got version 8 on "
            f"{share(measure(load), '8')}")
        say()

        say("-- version 9 as a canary: it takes logarithms of the amount")
        st = canary(load, "9", "models-s3")
        rate = next((m for m in (st.get("analysis") or {}).get("measurements") or [] if m["metric"] == "error-rate"),
                    {})
        say(f"-- {st['phase']}: rolled back on an error rate of {rate.get('value', float('nan')):.2f} that "
            f"Prometheus measured from MLServer's counters (threshold 0.05); about 1 request in "
            f"{UNKNOWN_EVERY} has an unknown amount")
        after = measure(load)
        say(f"-- clients got version 8 on {share(after, '8')}, "
            f"{sum(a.startswith('error') for a in after)} errors")
        say()
        for command in ("history", "status"):
            say(f"-- kubectl modeldeploy {command} fraud")
            say(subprocess.run([sys.executable, "-m", "modeldeploy.cli.main", command, "fraud", "-n", NAMESPACE],
                               capture_output=True, text=True, env=env).stdout.rstrip())
            say()
    finally:
        for thing in running:
            if isinstance(thing, subprocess.Popen):
                thing.terminate()
                thing.wait(15)
            else:
                thing.stop()
        kubectl("delete", "analysisprovider", PROVIDER, "--ignore-not-found", check=False)
    say("== done: a real model served from S3, a canary split measured on real requests, a bad model rolled "
        "back on its measured error rate.")
    say(f"   look around: source .cluster/env; kubectl get md,pods -n {NAMESPACE}; "
        f"kubectl modeldeploy history fraud -n {NAMESPACE} --plot rollout.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
