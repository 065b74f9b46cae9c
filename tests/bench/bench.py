"""`make bench`: how fast and how small the operator is, on the local control plane.

It prints numbers and asserts nothing: a timer that fails a build on a busy
machine teaches nothing. For N ModelDeployments (BENCH_MODELS, default 50) of
one replica each, in a namespace of their own:

1. at rest: the operator's memory before it has work;
2. create: all N applied at once, until each is Healthy;
3. settled: a quiet spell (BENCH_SETTLE_SECONDS, default 15), in which a settled
   operator should write nothing;
4. touched: every model gets an annotation that changes nothing, so each is
   reconciled once more: a reconcile of a known object should read nothing;
5. unrelated churn: U objects (BENCH_UNRELATED, default 2000; half Deployments of
   0 replicas, half Pods no node can take) are created and then relabelled in a
   namespace of their own, which the cluster-wide operator must not even receive;
   its watch events and CPU are printed beside those of a quiet spell as long;
6. what each model costs the cluster: the objects it makes (EndpointSlices and
   ReplicaSets included, which kube-controller-manager makes for it);
7. roll out: every model gets a new version, until each serves revision 2;
8. roll back: K of them (BENCH_ROLLBACKS, default 10) get a version whose pods
   crash-loop, until each is rolled back to revision 2;
9. restart: the operator is restarted with N settled models, and at the same
   moment one more model gets a crash-looping version: the requests the restart
   costs, and how long that roll-back waits behind N resumed models;
10. memory at the end, and its peak.

For each busy phase: wall time, each model's time to done (p50, p95, max),
reconciles, their mean duration, and API reads and writes per reconcile (from
the operator's own metrics). The operator watches every namespace, as the default
install does.
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
sys.path.insert(0, str(TESTS / "cluster"))  # as pyproject.toml gives pytest: conftest imports from both
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kubernetes  # noqa: E402
import proc  # noqa: E402
import yaml  # noqa: E402

from conftest import Cluster, OperatorProcess, _localcluster  # noqa: E402
from helpers import wait_for  # noqa: E402

N = int(os.environ.get("BENCH_MODELS", "50"))
ROLLBACKS = min(N, int(os.environ.get("BENCH_ROLLBACKS", "10")))
SETTLE = float(os.environ.get("BENCH_SETTLE_SECONDS", "15"))
UNRELATED = int(os.environ.get("BENCH_UNRELATED", "2000"))
TIMEOUT = max(300.0, 1.2 * N)
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
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(bodies)), timeout=TIMEOUT)

    def count(self, resource: str, namespace: str | None = None) -> int:
        where = ["-n", namespace or self.namespace]
        return len(self.cluster.kubectl("get", resource, *where, "-o", "name", timeout=TIMEOUT).stdout.split())

    def statuses(self, names: list[str]) -> dict[str, Status]:
        if len(names) <= 10:  # a few: one GET each, rather than a LIST of the whole fleet
            return {name: self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
                    .get("status") or {} for name in names}
        out = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        return {md["metadata"]["name"]: md.get("status") or {} for md in out["items"]}

    def until(self, names: list[str], done: Callable[[Status], bool]) -> tuple[float, list[float]]:
        """Wall time until every named model is done, and each one's time to done (polled every 0.1 s; every
        0.5 s for a fleet of hundreds, whose LIST would otherwise load the API server it measures)."""
        started = time.monotonic()
        took: dict[str, float] = {}
        while len(took) < len(names):
            now = time.monotonic() - started
            if now > TIMEOUT:
                missing = sorted(set(names) - set(took))
                raise SystemExit(f"bench: {len(missing)} models not done after {TIMEOUT:g} s, e.g. {missing[:3]}; "
                                 f"operator log: {self.operator.log_path}")
            current = self.statuses([n for n in names if n not in took])
            for name in names:
                if name not in took and done(current.get(name, {})):
                    took[name] = now
            time.sleep(0.1 if len(names) <= 200 else 0.5)
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
            "events": sum(scraped.get("modeldeploy_watch_events_total", {}).values()),
            "cpu": self.cpu(),
        }

    def cpu(self) -> float:
        """CPU seconds the operator process has used (user and system)."""
        assert self.operator.proc is not None
        return proc.cpu_seconds(self.operator.proc.pid)

    def memory(self) -> tuple[float, float]:
        """The operator's resident memory now and at its peak, MiB."""
        assert self.operator.proc is not None
        return proc.memory_mib(self.operator.proc.pid)


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
    row = ROW
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

    touched(bench)
    unrelated(bench)
    costs(bench)

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

    rss, peak = bench.memory()  # before the restart, which starts a new process
    restart(bench, names)
    print(row("operator memory at the end", f"{rss:.1f} MiB RSS, peak {peak:.1f} MiB (before the restart)"),
          flush=True)


ROW = "{:<34} {}".format


def touched(bench: Bench) -> None:
    """Every model reconciled once more with nothing to change: what a reconcile of a known object reads."""
    before = bench.counters()
    stamp = secrets.token_hex(3)
    bench.cluster.kubectl("annotate", "modeldeployments", "--all", "-n", bench.namespace, f"bench/touched={stamp}",
                          "--overwrite", timeout=TIMEOUT)
    # kopf reacts to annotations (they are part of what it diffs); wait until every one of them was reconciled
    wait_for(lambda: bench.counters()["reconciles"] - before["reconciles"], timeout=TIMEOUT, interval=0.5,
             until=lambda n: n >= N, message=f"{N} reconciles after the annotation")
    time.sleep(2)
    d = {k: v - before[k] for k, v in bench.counters().items()}
    n = d["reconciles"] or 1
    print(ROW(f"touched {N} (nothing to change):", f"{d['reconciles']:.0f} reconciles, {d['reads'] / n:.2f} reads "
              f"and {d['writes'] / n:.2f} writes per reconcile"), flush=True)


def _unrelated(namespace: str, i: int, generation: str) -> dict[str, Any]:
    labels = {"app": f"unrelated-{i}", "bench/generation": generation}
    meta = {"name": f"unrelated-{i}", "namespace": namespace, "labels": labels}
    container = {"name": "main", "image": "registry.example/unrelated:1"}
    if i % 2:
        # A Pod no node takes (no node has the label): the scheduler tries it, nothing runs it.
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"nodeSelector": {"bench.modeldeploy.dev/nowhere": "true"}, "containers": [container]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": f"unrelated-{i}"}},
                     "template": {"metadata": {"labels": {"app": f"unrelated-{i}"}},
                                  "spec": {"containers": [container]}}}}


def unrelated(bench: Bench) -> None:
    """Objects of other teams, created and changed: a cluster-wide operator should not receive them at all."""
    if UNRELATED < 1:
        return
    other = f"{bench.namespace}-unrelated"
    bench.cluster.kubectl("create", "namespace", other)
    before = bench.counters()
    started = time.monotonic()
    bench.apply(_unrelated(other, i, "1") for i in range(UNRELATED))
    bench.cluster.kubectl("label", "deployments,pods", "--all", "-n", other, "bench/generation=2", "--overwrite",
                          timeout=TIMEOUT)
    wall = time.monotonic() - started
    churn = {k: v - before[k] for k, v in bench.counters().items()}
    before = bench.counters()
    time.sleep(wall)
    quiet = {k: v - before[k] for k, v in bench.counters().items()}
    print(ROW(f"{UNRELATED} unrelated objects churned:", f"created and relabelled in {wall:.1f} s; the operator got "
              f"{churn['events']:.0f} watch events and used {churn['cpu']:.2f} s CPU "
              f"(a quiet spell as long: {quiet['events']:.0f} events, {quiet['cpu']:.2f} s CPU)"), flush=True)
    bench.cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def costs(bench: Bench) -> None:
    """The objects each model puts in the cluster, its own and those other controllers make for it."""
    kinds = ["deployments", "replicasets", "pods", "services", "endpointslices", "controllerrevisions",
             "poddisruptionbudgets", "horizontalpodautoscalers"]
    counted = {kind: bench.count(kind) for kind in kinds}
    print(ROW(f"objects per model (of {N}):", ", ".join(f"{v / N:.1f} {k}" for k, v in counted.items())),
          flush=True)


def restart(bench: Bench, names: list[str]) -> None:
    """A restart with N settled models, and one roll-back that must not wait behind them."""
    bench.operator.stop()
    victim = names[-1]
    bench.apply([model(bench.namespace, N - 1, "4", crash=True)])
    bench.operator.start()  # a new process: its counters start at 0
    wall, _ = bench.until([victim], lambda s: s.get("phase") == "Degraded" and s.get("stableRevision") == 2
                          and not s.get("canaryRevision"))
    rolled_back = wall
    # Then until the resumed models are all reconciled: the reconcile count stops growing.
    last, quiet_since = -1.0, time.monotonic()
    while time.monotonic() - quiet_since < 3:
        now = bench.counters()["reconciles"]
        if now != last:
            last, quiet_since = now, time.monotonic()
        time.sleep(0.5)
    after = bench.counters()
    print(ROW(f"restart with {N} settled:", f"one crash-looping canary applied at the restart rolled back in "
              f"{rolled_back:.1f} s"))
    print(ROW("", f"the restart: {after['reconciles']:.0f} reconciles, {after['reads']:.0f} reads, "
              f"{after['writes']:.0f} writes, {after['cpu']:.1f} s operator CPU"), flush=True)


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
    operator = OperatorProcess(cluster, namespace, tag="bench", cluster_wide=True)
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
