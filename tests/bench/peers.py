"""`make bench-peers`: modeldeploy against the Argo Rollouts controller, on the same local control plane.

The same workload for both, one after the other: N objects of 2 replicas with a replica-ratio canary,
steps `setWeight: 50` then `pause: 2s` (Argo: Rollouts with a basic canary; modeldeploy: ModelDeployments
with the replicas router). Each is created, waited for until all are Healthy and their pods converged (2
Ready pods of the current revision each, none terminating), then given a new version and waited for until
all are promoted and converged again. For each: those times, the controller's CPU seconds and peak memory,
and its API requests, counted by the API server (each controller runs with its own ServiceAccount, and a
FlowSchema per verb counts that ServiceAccount's requests), and how long kube-controller-manager waited on
its own client-side rate limit. BENCH_PEERS_N sets N (default 200).

Both sides scale the old pods down at once after promotion (Argo's basic canary does; modeldeploy is given
`scaleDownDelaySeconds: 0`), so "converged" means the same thing for both.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "cluster"))  # as pyproject.toml gives pytest: conftest imports from both
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argo  # noqa: E402
import kubernetes  # noqa: E402
import proc  # noqa: E402

from conftest import Cluster, OperatorProcess, _localcluster  # noqa: E402

N = int(os.environ.get("BENCH_PEERS_N", "200"))
# Extra `modeldeploy run` flags (e.g. "--kube-qps 100"), and which sides to run ("argo", "modeldeploy" or both).
OPERATOR_ARGS = os.environ.get("BENCH_PEERS_OPERATOR_ARGS", "").split()
SIDES = os.environ.get("BENCH_PEERS_SIDES", "argo,modeldeploy").split(",")
ROOT = TESTS.parent
SYSTEM, SERVICE_ACCOUNT, FLOW_SCHEMA = "modeldeploy-system", "modeldeploy", "bench-modeldeploy"
GROUP, VERSION, PLURAL = "modeldeploy.dev", "v1alpha1", "modeldeployments"


def models(namespace: str, n: int, version: str) -> list[dict[str, Any]]:
    spec = {"replicas": 2, "runtime": {"image": argo.IMAGE},
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}], "scaleDownDelaySeconds": 0}}
    return [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
             "metadata": {"name": f"bench-{i}", "namespace": namespace},
             "spec": {**spec, "model": {"uri": f"s3://models/bench-{i}/v{version}", "version": version}}}
            for i in range(n)]


class Operator:
    """modeldeploy as installed (its CRDs, the ClusterRole of manifests/), run as a process with its
    ServiceAccount's token, so the API server counts its requests apart from the admin's."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        for path in ("crds", "manifests/namespace.yaml", "manifests/cluster-rbac.yaml"):
            argo.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / path))
        argo.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", SYSTEM, check=False)
        argo.flow_schema(FLOW_SCHEMA, SYSTEM, SERVICE_ACCOUNT)
        token = argo.kubectl("create", "token", SERVICE_ACCOUNT, "-n", SYSTEM, "--duration=4h").stdout.strip()
        self.workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-bench-"))
        kubeconfig = argo._token_kubeconfig(argo.KUBECONFIG, token, namespace, self.workdir / "kubeconfig")
        self.before = argo.requests(FLOW_SCHEMA)
        self.process = OperatorProcess(cluster, namespace, ["--own-namespace", SYSTEM, *OPERATOR_ARGS], tag="peers",
                                       kubeconfig=kubeconfig)
        self.process.start()

    def cpu_seconds(self) -> float:
        assert self.process.proc is not None
        return proc.cpu_seconds(self.process.proc.pid)

    def memory_mib(self) -> tuple[float, float]:
        assert self.process.proc is not None
        return proc.memory_mib(self.process.proc.pid)

    def stop(self) -> None:
        self.process.stop()


def _modeldeploy(cluster: Cluster, namespace: str, n: int) -> dict[str, float]:
    argo.kubectl("create", "namespace", namespace)
    op = Operator(cluster, namespace)
    api = kubernetes.config.new_client_from_config(config_file=str(argo.KUBECONFIG))
    custom, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
    out: dict[str, float] = {"n": n, "rss_start_mib": op.memory_mib()[0]}
    try:
        time.sleep(1)
        out["start_requests"] = argo.requests(FLOW_SCHEMA) - op.before
        for phase, version in (("create", "1"), ("update", "2")):
            revision = int(version)
            cpu, reqs = op.cpu_seconds(), argo.requests_by_verb(FLOW_SCHEMA)
            throttled = argo.throttled_seconds()
            began = time.monotonic()
            argo.apply(models(namespace, n, version))

            def done(revision: int = revision) -> bool:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
                return sum(1 for md in items if (md.get("status") or {}).get("phase") == "Healthy"
                           and md["status"].get("stableRevision") == revision
                           and md["status"].get("observedGeneration") == md["metadata"]["generation"]) == n

            def converged(revision: int = revision) -> bool:
                pods = core.list_namespaced_pod(namespace).items
                live = [p for p in pods if not p.metadata.deletion_timestamp]
                ready = [p for p in live if (p.metadata.labels or {}).get("modeldeploy.dev/revision") == str(revision)
                         and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
                return len(live) == 2 * n and len(ready) == 2 * n

            argo._wait(done, argo.TIMEOUT, f"{phase}: {n} ModelDeployments on revision {revision}", interval=0.5)
            key = "healthy" if phase == "create" else "promoted"
            out[f"{phase}_{key}_s"] = time.monotonic() - began
            argo._wait(converged, argo.TIMEOUT, f"{phase}: pods converged", interval=0.5)
            out[f"{phase}_pods_s"] = time.monotonic() - began
            out[f"{phase}_cpu_s"] = op.cpu_seconds() - cpu
            after = argo.requests_by_verb(FLOW_SCHEMA)
            out[f"{phase}_requests"] = sum(after.values()) - sum(reqs.values())
            out.update({f"{phase}_requests_{verb}": after[verb] - reqs[verb] for verb in after})
            later = argo.throttled_seconds()
            if throttled is not None and later is not None:
                out[f"{phase}_kcm_throttled_s"] = later - throttled
        out["rss_end_mib"], out["rss_peak_mib"] = op.memory_mib()
    finally:
        op.stop()
        api.close()
        argo.kubectl("delete", "namespace", namespace, "--timeout=300s", check=False, timeout=330)
    return out


ROWS = [("create: all Healthy", "create_healthy_s", "s"), ("create: pods converged", "create_pods_s", "s"),
        ("update: all promoted", "update_promoted_s", "s"), ("update: pods converged", "update_pods_s", "s"),
        ("CPU, create", "create_cpu_s", "s"), ("CPU, update", "update_cpu_s", "s"),
        ("peak memory", "rss_peak_mib", "MiB"), ("requests at start", "start_requests", ""),
        ("requests, create", "create_requests", ""), ("requests, update", "update_requests", ""),
        ("  of them reads (get, list)", "reads", ""),
        ("kube-controller-manager throttled, create", "create_kcm_throttled_s", "s"),
        ("kube-controller-manager throttled, update", "update_kcm_throttled_s", "s")]


def report(ours: dict[str, float], theirs: dict[str, float]) -> None:
    for name, side in (("modeldeploy", ours), ("Argo Rollouts", theirs)):
        for phase in ("create", "update"):
            verbs = {k.rsplit("_", 1)[1]: int(v) for k, v in side.items() if k.startswith(f"{phase}_requests_") and v}
            if verbs:
                print(f"{name} requests by verb, {phase}: {verbs}")
    for side in (ours, theirs):
        side["reads"] = sum(side.get(f"{p}_requests_{v}", 0) for p in ("create", "update") for v in ("get", "list"))
    print(f"{'':<44} {'modeldeploy':>12} {'Argo Rollouts':>14} {'ratio':>7}")
    for label, key, unit in ROWS:
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            continue
        ratio = f"{a / b:.2f}" if b else "-"
        print(f"{label:<44} {a:>10.1f}{unit:>2} {b:>12.1f}{unit:>2} {ratio:>7}")
    print("ratio: modeldeploy / Argo Rollouts (below 1: modeldeploy used less)")


def main() -> None:
    lc = _localcluster()
    lc.up()
    cluster = Cluster(kubeconfig=lc.KUBECONFIG, bin=lc.BIN)
    argo.build()
    tag = secrets.token_hex(3)
    print(f"bench-peers: {N} objects of 2 replicas, canary setWeight 50 / pause 2s, on the local control plane "
          f"({os.cpu_count()} CPUs); Argo Rollouts first, then modeldeploy", flush=True)
    ctl = None
    theirs: dict[str, float] = {}
    ours: dict[str, float] = {}
    if "argo" in SIDES:
        try:
            namespace = f"bench-argo-{tag}"
            ctl = argo.start(argo.KUBECONFIG, namespace)
            theirs = argo.run(namespace, N, ctl)
        finally:
            if ctl is not None:
                ctl.stop()
            argo.kubectl("delete", "namespace", f"bench-argo-{tag}", "--timeout=300s", check=False, timeout=330)
            argo.uninstall()
        print("Argo Rollouts: " + ", ".join(f"{k} {v:.1f}" for k, v in theirs.items()), flush=True)
    if "modeldeploy" in SIDES:
        ours = _modeldeploy(cluster, f"bench-md-{tag}", N)
        print("modeldeploy: " + ", ".join(f"{k} {v:.1f}" for k, v in ours.items()), flush=True)
    if ours and theirs:
        report(ours, theirs)


if __name__ == "__main__":
    main()
