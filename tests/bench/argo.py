"""The Argo Rollouts half of `make bench-peers`: its controller on the local control plane, timed.

`build()` builds the controller from the pinned Go module in peers/ (cached, like the control plane),
`start()` runs it as a local process under a ServiceAccount of its own, `run()` creates N Rollouts,
rolls each out once with a basic canary and returns the times, the controller's CPU and memory, and its
API requests. Those are counted by API Priority and Fairness (`flow_schema()`, `requests()`): the API
server's metrics name no user, but they name the FlowSchema that matched each request.

    .venv/bin/python tests/bench/argo.py          # a smoke run: N=5 (BENCH_ARGO_ROLLOUTS=50 for more)
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import proc  # tests/bench, on the path when this file runs or is imported from here
import yaml

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
KUBECTL = ROOT / ".cluster" / "bin" / "kubectl"
LOGS = ROOT / ".cluster" / "logs"
# Where Argo's own manifests put it; the controller also reads its notification config from here.
CONTROLLER_NAMESPACE = SERVICE_ACCOUNT = "argo-rollouts"
FLOW_SCHEMA = "bench-argo-rollouts"
TIMEOUT = 600.0
IMAGE = "registry.example/sklearn-server:1.4"  # never pulled: KWOK runs no containers
GROUP_VERSION = "argoproj.io/v1alpha1"

# Argo Rollouts v1.10.2's ClusterRole (manifests/role/argo-rollouts-clusterrole.yaml), one rule a line:
# (API groups, resources, verbs). The traffic router rules are kept: the controller looks for Istio's
# VirtualServices at start, and the e2e tests install Istio's CRDs on this cluster.
RULES: list[tuple[tuple[str, ...], str, str]] = [
    (("argoproj.io",), "rollouts rollouts/status rollouts/finalizers", "get list watch update patch"),
    (("argoproj.io",), "analysisruns analysisruns/finalizers experiments experiments/finalizers",
     "create get list watch update patch delete"),
    (("argoproj.io",), "analysistemplates clusteranalysistemplates", "get list watch"),
    (("apps",), "replicasets", "create get list watch update patch delete"),
    (("", "apps"), "deployments podtemplates", "get list watch update"),
    (("",), "services", "get list watch patch create delete"),
    (("coordination.k8s.io",), "leases", "create get update"),
    (("",), "secrets configmaps", "get list watch"),
    (("",), "pods", "list update watch"),
    (("",), "pods/eviction", "create"),
    (("",), "events", "create update patch"),
    (("networking.k8s.io", "extensions"), "ingresses", "create get list watch update patch"),
    (("batch",), "jobs", "create get list watch update patch delete"),
    (("networking.istio.io",), "virtualservices destinationrules", "watch get update patch list"),
    (("split.smi-spec.io",), "trafficsplits", "create watch get update patch"),
    (("getambassador.io", "x.getambassador.io"), "mappings ambassadormappings", "create watch get update list delete"),
    (("",), "endpoints", "get"),
    (("elbv2.k8s.aws", "eks.amazonaws.com"), "targetgroupbindings", "list get"),
    (("appmesh.k8s.aws",), "virtualservices", "watch get list"),
    (("appmesh.k8s.aws",), "virtualnodes virtualrouters", "watch get list update patch"),
    (("traefik.containo.us", "traefik.io"), "traefikservices", "watch get update"),
    (("apisix.apache.org",), "apisixroutes", "watch get update"),
]
# The controller's informers wait for all five kinds: without any one of these CRDs it never starts.
CRDS = [f"crd/{plural}.argoproj.io" for plural in
        ("rollouts", "analysisruns", "analysistemplates", "clusteranalysistemplates", "experiments")]
# One FlowSchema per verb: the dispatched-requests counter has no verb label, only the schema's name.
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def kubectl(*args: str, kubeconfig: Path = KUBECONFIG, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The cluster's kubectl, against the given kubeconfig (the cluster admin's by default)."""
    cmd = [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def apply(docs: Iterable[dict[str, Any]], kubeconfig: Path = KUBECONFIG) -> None:
    """Server-side apply, as one request per object from one kubectl (what a user or Argo CD would do)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", kubeconfig=kubeconfig,
            input=yaml.safe_dump_all(list(docs)), timeout=300)


def build() -> Path:
    """Build (or find cached) the controller and its CRDs: the folder holding them."""
    out = subprocess.run([str(PEERS / "build.sh")], stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def flow_schema(name: str, namespace: str, serviceaccount: str, kubeconfig: Path = KUBECONFIG) -> None:
    """FlowSchemas `<name>-<verb>` and `<name>` (everything else) for one ServiceAccount's requests.

    They lead the exempt priority level, as the cluster admin's requests (kube-controller-manager's,
    the scheduler's, KWOK's) do here: API Priority and Fairness then only counts, and queues nobody."""
    subject = [{"kind": "ServiceAccount", "serviceAccount": {"name": serviceaccount, "namespace": namespace}}]

    def schema(schema_name: str, precedence: int, verbs: list[str], non_resource: bool) -> dict[str, Any]:
        rule: dict[str, Any] = {"subjects": subject, "resourceRules": [
            {"verbs": verbs, "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": True}]}
        if non_resource:
            rule["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        # Low precedence numbers match first: ahead of every suggested schema but `exempt` (system:masters).
        return {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                "metadata": {"name": schema_name},
                "spec": {"matchingPrecedence": precedence, "priorityLevelConfiguration": {"name": "exempt"},
                         "rules": [rule]}}

    schemas = [*(schema(f"{name}-{verb}", 10, [verb], False) for verb in VERBS), schema(name, 11, ["*"], True)]
    apply(schemas, kubeconfig)
    # The API server has taken them in once it marks them not Dangling: requests before that go elsewhere.
    names = [f"flowschema/{s['metadata']['name']}" for s in schemas]
    _wait(lambda: kubectl("wait", "--for=condition=Dangling=false", "--timeout=10s", *names, kubeconfig=kubeconfig,
                          check=False).returncode == 0, 60, "the FlowSchemas in effect", interval=1)


def requests_by_verb(name: str, kubeconfig: Path = KUBECONFIG) -> dict[str, int]:
    """Requests dispatched so far under `flow_schema(name, ...)`: verb -> count ("other": the rest)."""
    metrics = kubectl("get", "--raw", "/metrics", kubeconfig=kubeconfig).stdout
    schemas = {name: "other", **{f"{name}-{verb}": verb for verb in VERBS}}
    out = dict.fromkeys([*VERBS, "other"], 0)
    for m in re.finditer(r'^apiserver_flowcontrol_dispatched_requests_total\{flow_schema="([^"]+)",[^}]*\} (\S+)$',
                         metrics, re.MULTILINE):
        if m[1] in schemas:
            out[schemas[m[1]]] += int(float(m[2]))
    return out


def requests(name: str, kubeconfig: Path = KUBECONFIG) -> int:
    """All requests dispatched so far under `flow_schema(name, ...)`."""
    return sum(requests_by_verb(name, kubeconfig).values())


def throttled_seconds(component: str = "kube-controller-manager") -> float | None:
    """Seconds a control plane component's clients have waited in their own rate limiters (client-side QPS:
    --kube-api-qps, --kube-api-burst), summed over its concurrent workers: read from its /metrics, on the port
    kwokctl gave it. None when that cannot be found."""
    try:
        config = next(Path(ROOT / ".cluster" / "kwok" / "clusters").glob("*/kwok.yaml"))
        docs = [d for d in yaml.safe_load_all(config.read_text()) if d and d.get("kind") == "KwokctlConfiguration"]
        found = next(c for c in docs[0]["components"] if c["name"] == component)
        port = next(a.split("=", 1)[1] for a in found["args"] if a.startswith("--secure-port="))
        # Its serving certificate is self-signed, and /metrics is open to anyone (always-allow-paths).
        text = subprocess.run(["curl", "-sfk", f"https://127.0.0.1:{port}/metrics"], capture_output=True,
                              text=True, timeout=10, check=True).stdout
    except (StopIteration, OSError, subprocess.SubprocessError, IndexError, KeyError):
        return None
    return sum(float(v) for v in re.findall(r"^rest_client_rate_limiter_duration_seconds_sum\{[^}]*\} (\S+)$",
                                            text, re.MULTILINE))


# Whose client-side throttling `run()` reports: the components that make a Rollout's pods.
THROTTLED = {"kcm": "kube-controller-manager", "scheduler": "kube-scheduler"}


def _not_terminating(namespace: str, kubeconfig: Path) -> bool:
    phase = kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}", kubeconfig=kubeconfig,
                    check=False).stdout
    return phase != "Terminating"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token_kubeconfig(admin: Path, token: str, namespace: str, path: Path) -> Path:
    """A kubeconfig with the admin's server and CA, the token as its only credential, `namespace` as its own."""
    server = yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]
    ca = server.get("certificate-authority-data") or base64.b64encode(
        Path(server["certificate-authority"]).read_bytes()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "argo",
        "clusters": [{"name": "local", "cluster": {"server": server["server"], "certificate-authority-data": ca}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "argo", "context": {"cluster": "local", "user": SERVICE_ACCOUNT,
                                                   "namespace": namespace}}],
    }))
    path.chmod(0o600)
    return path


@dataclass
class Controller:
    """The running controller: its process, log, metrics port, and the admin kubeconfig it was set up with."""

    proc: subprocess.Popen[bytes]
    kubeconfig: Path
    namespace: str
    metrics_port: int
    log_path: Path
    workdir: Path
    flow_schema: str = FLOW_SCHEMA
    requests_before_start: int = 0  # so `run()` can tell its start-up (lists, watches) apart
    _log: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.pid)

    def memory_mib(self) -> tuple[float, float]:
        return proc.memory_mib(self.pid)

    def stop(self) -> None:
        """SIGTERM (it drains its work queues), SIGKILL after 15 s; drops the token's kubeconfig."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log:
            self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start(kubeconfig_path: Path, namespace: str, extra_args: Sequence[str] = ()) -> Controller:
    """Install the CRDs and the ServiceAccount with Argo's rules, and start the controller for `namespace`.

    `extra_args` go to rollouts-controller as they are (e.g. ["--qps=100", "--burst=200"]: its own client
    is limited to 40 requests a second, bursts of 80, unless told otherwise)."""
    kubeconfig = Path(kubeconfig_path)
    cache = build()
    for crd in sorted(cache.glob("*-crd.yaml")):  # server-side: the CRDs are too big for the last-applied annotation
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd), kubeconfig=kubeconfig)
    # `kubectl wait` fails outright on a CRD that has no status yet: poll it.
    _wait(lambda: kubectl("wait", "--for=condition=Established", "--timeout=10s", *CRDS, kubeconfig=kubeconfig,
                          check=False).returncode == 0, 60, "the Argo CRDs Established", interval=1)
    for ns in (CONTROLLER_NAMESPACE, namespace):  # an earlier run's, still being deleted, would refuse new objects
        _wait(functools.partial(_not_terminating, ns, kubeconfig), 300, f"namespace {ns} deleted", interval=1)
    rules = [{"apiGroups": list(groups), "resources": resources.split(), "verbs": verbs.split()}
             for groups, resources, verbs in RULES]
    apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": CONTROLLER_NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": SERVICE_ACCOUNT}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": SERVICE_ACCOUNT},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SERVICE_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": CONTROLLER_NAMESPACE}]},
    ], kubeconfig)
    flow_schema(FLOW_SCHEMA, CONTROLLER_NAMESPACE, SERVICE_ACCOUNT, kubeconfig)
    user = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{SERVICE_ACCOUNT}"
    # RBAC reaches the authorizer through informers: the first lists must not be refused.
    _wait(lambda: kubectl("auth", "can-i", "watch", "rollouts.argoproj.io", f"--as={user}", "-n", namespace,
                          kubeconfig=kubeconfig, check=False).stdout.strip() == "yes", 30, "the controller's RBAC")
    # The TokenRequest API (what `kubectl create token` calls): a bound token, as a pod would get.
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", CONTROLLER_NAMESPACE, "--duration=2h",
                    kubeconfig=kubeconfig).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="argo-rollouts-"))
    own = _token_kubeconfig(kubeconfig, token, namespace, workdir / "kubeconfig")
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"argo-rollouts-{namespace}.log"
    log = log_path.open("wb")  # afresh: `started()` below looks for a line in it
    metrics_port, before = _free_port(), requests(FLOW_SCHEMA, kubeconfig)
    # --namespaced watches only the kubeconfig's namespace, which --namespace sets. Its metrics and healthz
    # servers listen on 0.0.0.0 (no flag for an address): free ports at least, read over loopback.
    proc = subprocess.Popen(
        [str(cache / "rollouts-controller"), f"--kubeconfig={own}", "--namespaced", f"--namespace={namespace}",
         "--leader-elect=false", f"--metricsPort={metrics_port}", f"--healthzPort={_free_port()}",
         "--logformat=text", "--loglevel=info", *extra_args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "POD_NAMESPACE": CONTROLLER_NAMESPACE})
    ctl = Controller(proc, kubeconfig, namespace, metrics_port, log_path, workdir, requests_before_start=before,
                     _log=log)

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"rollouts-controller exited {proc.returncode}; log: {log_path}")
        return "Started controller" in log_path.read_text(errors="replace")  # after its caches synced

    try:
        _wait(started, 60, f"rollouts-controller started (log: {log_path})")
    except BaseException:
        ctl.stop()
        raise
    return ctl


def workload(namespace: str, n: int, version: str = "1") -> list[dict[str, Any]]:
    """N Rollouts of 2 replicas, each a basic canary (replica ratio, no traffic routing): 50 %, 2 s, done.

    The pods land on the KWOK nodes as modeldeploy's do: those nodes have no taints, so neither has a
    toleration or a node selector. No `sim.modeldeploy.dev/behavior` label: Ready 0.3-1 s after scheduling.
    The security context passes the `restricted` Pod Security level, as modeldeploy's pods do."""
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                  "seccompProfile": {"type": "RuntimeDefault"}}

    def rollout(i: int) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": f"bench-{i}"}
        server = {"name": "server", "image": IMAGE, "ports": [{"name": "http", "containerPort": 8080}],
                  "env": [{"name": "MODEL_VERSION", "value": version}], "securityContext": restricted}
        return {"apiVersion": GROUP_VERSION, "kind": "Rollout",
                "metadata": {"name": f"bench-{i}", "namespace": namespace},
                "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [server]}},
                         "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}]}}}}

    return [rollout(i) for i in range(n)]


def _wait(done: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Poll until `done()`; the seconds it took."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not done within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - started


class _Lister:
    """Lists of Rollouts and pods as plain dicts, on one kept-alive connection: a kubectl a poll would cost
    more CPU than the controller under test. As the cluster admin, so they count under `exempt`, not ours."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        import kubernetes

        client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.custom, self.core = kubernetes.client.CustomObjectsApi(client), kubernetes.client.CoreV1Api(client)
        self.namespace = namespace

    def rollouts(self) -> list[dict[str, Any]]:
        out: Any = self.custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", self.namespace, "rollouts")
        return list(out["items"])

    def pods(self) -> list[dict[str, Any]]:
        raw: Any = self.core.list_namespaced_pod(self.namespace, _preload_content=False)  # bytes, not models
        return list(json.loads(raw.data)["items"])


def _promoted(r: dict[str, Any], old: dict[str, str]) -> bool:
    """Healthy at its current generation, its stable ReplicaSet the current one, and not the one in `old`
    (the Rollout's before the update): Healthy alone is also what a Rollout not yet seen to change reports."""
    s = r.get("status") or {}
    return (s.get("phase") == "Healthy" and str(s.get("observedGeneration")) == str(r["metadata"]["generation"])
            and bool(s.get("stableRS")) and s.get("stableRS") == s.get("currentPodHash")
            and s.get("currentPodHash") != old.get(r["metadata"]["name"]))


def _converged(pods: list[dict[str, Any]], hashes: dict[str, str], n: int) -> bool:
    """Exactly 2 Ready pods per Rollout, all of its current template, none terminating."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in (p.get("status") or {}).get("conditions", []))
             and hashes.get(p["metadata"]["labels"].get("app.kubernetes.io/name", ""))
             == p["metadata"]["labels"].get("rollouts-pod-template-hash")]
    return len(hashes) == n and len(live) == 2 * n and len(ready) == 2 * n


def run(namespace: str, n: int, controller: Controller | None = None,
        kubeconfig: Path = KUBECONFIG) -> dict[str, float]:
    """Create N Rollouts, wait until all are Healthy and their pods converged; give each a new pod template
    and wait until all are promoted and their pods converged again. Starts (and stops) a controller unless
    given one. Per phase (create, update): seconds from the `kubectl apply` until all Rollouts are done and
    until the pods are, the controller's CPU seconds and API requests (by verb), and how long
    kube-controller-manager waited on its own client-side rate limit; the controller's memory at the end."""
    ctl = controller or start(kubeconfig, namespace)
    try:
        return _measure(ctl, namespace, n, kubeconfig)
    finally:
        if controller is None:
            ctl.stop()


def _phase(ctl: Controller, lister: _Lister, kubeconfig: Path, n: int, phase: str, version: str,
           old: dict[str, str], out: dict[str, float]) -> dict[str, str]:
    """Apply the workload at `version`, wait, and record into `out`; each Rollout's promoted template hash."""
    done = "healthy" if not old else "promoted"
    hashes: dict[str, str] = {}

    def promoted() -> bool:
        hashes.clear()
        hashes.update({r["metadata"]["name"]: r["status"]["currentPodHash"]
                       for r in lister.rollouts() if _promoted(r, old)})
        return len(hashes) == n

    cpu, reqs = ctl.cpu_seconds(), requests_by_verb(ctl.flow_schema, kubeconfig)
    throttled = {short: throttled_seconds(component) for short, component in THROTTLED.items()}
    began = time.monotonic()
    apply(workload(lister.namespace, n, version), kubeconfig)
    _wait(promoted, TIMEOUT, f"{phase}: {n} Rollouts {done}")
    out[f"{phase}_{done}_s"] = time.monotonic() - began
    _wait(lambda: _converged(lister.pods(), hashes, n), TIMEOUT, f"{phase}: pods converged")
    out[f"{phase}_pods_s"] = time.monotonic() - began
    out[f"{phase}_cpu_s"] = ctl.cpu_seconds() - cpu
    after = requests_by_verb(ctl.flow_schema, kubeconfig)
    out[f"{phase}_requests"] = sum(after.values()) - sum(reqs.values())
    out.update({f"{phase}_requests_{verb}": after[verb] - reqs[verb] for verb in after})
    for short, component in THROTTLED.items():
        before, later = throttled[short], throttled_seconds(component)
        if before is not None and later is not None:
            out[f"{phase}_{short}_throttled_s"] = later - before
    return hashes


def _measure(ctl: Controller, namespace: str, n: int, kubeconfig: Path) -> dict[str, float]:
    lister = _Lister(kubeconfig, namespace)
    out: dict[str, float] = {"n": n, "rss_start_mib": ctl.memory_mib()[0],
                             "start_requests": requests(ctl.flow_schema, kubeconfig) - ctl.requests_before_start}
    hashes = _phase(ctl, lister, kubeconfig, n, "create", "1", {}, out)
    _phase(ctl, lister, kubeconfig, n, "update", "2", hashes, out)
    out["rss_end_mib"], out["rss_peak_mib"] = ctl.memory_mib()
    return out


def uninstall(kubeconfig: Path = KUBECONFIG) -> None:
    """Remove what `start()` installed: the controller's namespace, RBAC, FlowSchemas and the CRDs."""
    names = [f"flowschema/{FLOW_SCHEMA}", *(f"flowschema/{FLOW_SCHEMA}-{v}" for v in VERBS),
             f"clusterrolebinding/{SERVICE_ACCOUNT}", f"clusterrole/{SERVICE_ACCOUNT}",
             f"namespace/{CONTROLLER_NAMESPACE}"]
    kubectl("delete", "--ignore-not-found", "--timeout=300s", *names, kubeconfig=kubeconfig, timeout=330)
    kubectl("delete", "--ignore-not-found", *CRDS, kubeconfig=kubeconfig)


def main() -> None:
    n = int(os.environ.get("BENCH_ARGO_ROLLOUTS", "5"))
    namespace = f"bench-argo-{secrets.token_hex(3)}"
    ctl: Controller | None = None
    try:
        ctl = start(KUBECONFIG, namespace)
        result = run(namespace, n, ctl)
    finally:
        if ctl:
            ctl.stop()
        # Waited for: a namespace still being emptied would load the control plane of the next run.
        kubectl("delete", "namespace", namespace, "--timeout=300s", check=False, timeout=330)
        uninstall()
    for key, value in result.items():
        print(f"{key:<28} {value:.2f}" if isinstance(value, float) else f"{key:<28} {value}")
    print(f"controller log: {LOGS / f'argo-rollouts-{namespace}.log'}")


if __name__ == "__main__":
    main()
