"""`make bench`: how fast and how small the operator is, on the local control plane.

It prints numbers and asserts nothing: a timer that fails a build on a busy
machine teaches nothing. For N ModelDeployments (BENCH_MODELS, default 50) of
one replica each, in a namespace of their own:

1. at rest: the operator's memory before it has work;
2. create: all N applied at once, until each is Healthy;
3. settled: a quiet spell (BENCH_SETTLE_SECONDS, default 15), in which a settled
   operator should write nothing;
4. roll out: every model gets a new version, until each serves revision 2;
5. roll back: K of them (BENCH_ROLLBACKS, default 10) get a version whose pods
   crash-loop, until each is rolled back to revision 2;
6. memory at the end, and its peak.

For each busy phase: wall time, each model's time to done (p50, p95, max),
reconciles, their mean duration, and API reads and writes per reconcile (from
the operator's own metrics).
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import kubernetes  # noqa: E402
import yaml  # noqa: E402

from conftest import Cluster, OperatorProcess, _localcluster  # noqa: E402
from helpers import wait_for  # noqa: E402

N = int(os.environ.get("BENCH_MODELS", "50"))
ROLLBACKS = min(N, int(os.environ.get("BENCH_ROLLBACKS", "10")))
SETTLE = float(os.environ.get("BENCH_SETTLE_SECONDS", "15"))
TIMEOUT = 300.0
GROUP, VERSION, PLURAL = "modeldeploy.dev", "v1alpha1", "modeldeployments"
CRD_FILE = TESTS.parent / "crds" / "modeldeploy.dev_modeldeployments.yaml"

Status = dict[str, Any]


def model(namespace: str, i: int, version: str, crash: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": f"s3://models/bench-{i}/v{version}", "version": version},
        "runtime": {"image": "registry.example/sklearn-server:1.4"},
        "replicas": 1,
        "rollout": {"scaleDownDelaySeconds": 5},
    }
    if crash:
        spec["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "crash-loop"}}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": f"bench-{i}", "namespace": namespace}, "spec": spec}


class Bench:
    def __init__(self, cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.operator = operator
        self.api = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig)))

    def apply(self, bodies: Iterable[dict[str, Any]]) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(bodies)), timeout=120)

    def statuses(self) -> dict[str, Status]:
        out = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        return {md["metadata"]["name"]: md.get("status") or {} for md in out["items"]}

    def until(self, names: list[str], done: Callable[[Status], bool]) -> tuple[float, list[float]]:
        """Wall time until every named model is done, and each one's time to done (polled every 0.1 s)."""
        started = time.monotonic()
        took: dict[str, float] = {}
        while len(took) < len(names):
            now = time.monotonic() - started
            if now > TIMEOUT:
                missing = sorted(set(names) - set(took))
                raise SystemExit(f"bench: {len(missing)} models not done after {TIMEOUT:g} s, e.g. {missing[:3]}; "
                                 f"operator log: {self.operator.log_path}")
            current = self.statuses()
            for name in names:
                if name not in took and done(current.get(name, {})):
                    took[name] = now
            time.sleep(0.1)
        return time.monotonic() - started, list(took.values())

    def counters(self) -> dict[str, float]:
        """The operator's counters, from one scrape so that the ratios between them hold."""
        scraped = self.operator.scrape()

        def m(name: str, labels: str = "") -> float:
            return scraped.get(name, {}).get(labels, 0.0)

        return {
            "reconciles": sum(scraped.get("modeldeploy_reconciles_total", {}).values()),
            "errors": m("modeldeploy_reconciles_total", 'result="error"'),
            "seconds": m("modeldeploy_reconcile_duration_seconds_sum"),
            "reads": m("modeldeploy_api_reads_total"),
            "writes": m("modeldeploy_api_writes_total"),
            "cpu": self.cpu(),
        }

    def cpu(self) -> float:
        """CPU seconds the operator process has used (user and system)."""
        assert self.operator.proc is not None
        fields = Path(f"/proc/{self.operator.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self) -> tuple[float, float]:
        """The operator's resident memory now and at its peak, MiB."""
        assert self.operator.proc is not None
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.operator.proc.pid}/status").read_text().splitlines() if ":" in line)
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def spread(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"each: p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s"


def work(before: dict[str, float], after: dict[str, float], models: int) -> str:
    d = {k: after[k] - before[k] for k in after}
    n = d["reconciles"] or 1
    return (f"{d['reconciles']:.0f} reconciles ({d['reconciles'] / models:.1f} per model, {d['errors']:.0f} errors), "
            f"mean {1000 * d['seconds'] / n:.0f} ms; per reconcile {d['reads'] / n:.1f} reads, "
            f"{d['writes'] / n:.1f} writes, {1000 * d['cpu'] / n:.0f} ms operator CPU")


def run(bench: Bench) -> None:
    names = [f"bench-{i}" for i in range(N)]
    row = "{:<34} {}".format
    rss, _ = bench.memory()
    print(row("operator memory at rest", f"{rss:.1f} MiB RSS"), flush=True)

    before = bench.counters()
    bench.apply(model(bench.namespace, i, "1") for i in range(N))
    wall, each = bench.until(names, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == 1)
    print(row(f"create {N}: all Healthy in", f"{wall:.1f} s ({spread(each)})"))
    print(row("", work(before, bench.counters(), N)), flush=True)

    before = bench.counters()
    time.sleep(SETTLE)
    d = {k: v - before[k] for k, v in bench.counters().items()}
    print(row(f"settled, {SETTLE:g} s quiet:", f"{d['reconciles']:.0f} reconciles, {d['reads']:.0f} reads, "
              f"{d['writes']:.0f} writes, {d['cpu']:.2f} s operator CPU"), flush=True)

    before = bench.counters()
    bench.apply(model(bench.namespace, i, "2") for i in range(N))
    wall, each = bench.until(names, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == 2)
    print(row(f"roll out {N}: all on revision 2 in", f"{wall:.1f} s ({spread(each)})"))
    print(row("", work(before, bench.counters(), N)), flush=True)

    # The old revisions scale down scaleDownDelaySeconds (5 s) after the roll-out: let that pass, so the
    # roll-back phase counts only its own reconciles.
    time.sleep(8)
    bad = names[:ROLLBACKS]
    before = bench.counters()
    bench.apply(model(bench.namespace, i, "3", crash=True) for i in range(ROLLBACKS))
    wall, each = bench.until(bad, lambda s: s.get("phase") == "Degraded" and s.get("stableRevision") == 2
                             and not s.get("canaryRevision"))
    print(row(f"roll back {ROLLBACKS} crash-looping:", f"{wall:.1f} s ({spread(each)})"))
    print(row("", "(a pod counts as crash-looping at 3 restarts; the simulated pods restart every 2-3 s)"))
    print(row("", work(before, bench.counters(), ROLLBACKS)), flush=True)

    rss, peak = bench.memory()
    print(row("operator memory at the end", f"{rss:.1f} MiB RSS, peak {peak:.1f} MiB"), flush=True)


def main() -> None:
    if N < 1 or ROLLBACKS < 1:
        raise SystemExit("bench: BENCH_MODELS and BENCH_ROLLBACKS must be at least 1")
    lc = _localcluster()
    lc.up()  # idempotent; it remakes a cluster started with older settings (e.g. a smaller Service range)
    cluster = Cluster(kubeconfig=lc.KUBECONFIG, bin=lc.BIN)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{PLURAL}.{GROUP}")
    # An earlier run's namespace still being deleted would load the control plane and skew the numbers.
    def earlier() -> list[str]:
        out = cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
        return [n for n in out if n.startswith("namespace/modeldeploy-bench-")]

    if earlier():
        print("waiting for an earlier run's namespace to be deleted ...", flush=True)
        for name in earlier():
            cluster.kubectl("delete", name, "--wait=false", check=False)
        wait_for(earlier, timeout=TIMEOUT, interval=1, until=lambda left: not left,
                 message="earlier bench namespaces deleted")
    namespace = f"modeldeploy-bench-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    operator = OperatorProcess(cluster, namespace, tag="bench")
    version = cluster.kubectl("version", "-o", "yaml").stdout
    server = yaml.safe_load(version).get("serverVersion", {}).get("gitVersion", "?")
    print(f"modeldeploy bench: {N} ModelDeployments of 1 replica, kube-apiserver {server} with KWOK nodes, "
          f"{os.cpu_count()} CPUs", flush=True)
    try:
        operator.start()
        run(Bench(cluster, namespace, operator))
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    print(f"operator log: {operator.log_path}")


if __name__ == "__main__":
    main()
