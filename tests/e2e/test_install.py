"""End to end: installing the operator (kustomize, Helm) and its RBAC being enough, and no more.

The RBAC tests run the real operator with nothing but the ServiceAccount's token and
the shipped rules, through a serving and a canary rollout; `kubectl auth can-i` shows
what that identity may not do. Everything a test creates outside its own namespace
has a unique name and is deleted afterwards; the shared ModelDeployment CRD never is.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import wait_for
from modeldeployments import MD, apply, deployments, get, manifest, status, wait_phase

ROOT = Path(__file__).resolve().parents[2]
TEST_NAMESPACE_LABEL = "modeldeploy.dev/test"  # as on the namespaces the `namespace` fixture makes
MANIFESTS = ROOT / "manifests"
OVERLAY = MANIFESTS / "overlays" / "namespaced"
CHART = ROOT / "helm" / "modeldeploy"
CRDS = ROOT / "crds"
INSTALL_NAMESPACE = "modeldeploy-system"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # client-side `kubectl apply`'s record
CANARY_STEPS = [{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}]


# -- rendering ------------------------------------------------------------------------------------------------
def load(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs)


def kustomize(cluster: Any, path: Path) -> list[dict[str, Any]]:
    return load(cluster.kubectl("kustomize", str(path)).stdout)


def name_suffix() -> str:
    """A unique `nameSuffix`. It starts with a letter: an all-hex one such as `-5512e0` reads as a number
    to kustomize's YAML 1.2 parser (PyYAML's 1.1 dumper leaves it unquoted) and fails the kustomization."""
    return f"-s{secrets.token_hex(3)}"


def customised(cluster: Any, workdir: Path, base: Path, namespace: str, suffix: str) -> list[dict[str, Any]]:
    """`base` as a user's own kustomization would use it: `namespace:` and `nameSuffix:` set."""
    here = workdir / f"kustomization{suffix}"
    here.mkdir()
    # kustomize takes relative paths only; directories outside the root are allowed.
    (here / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": [os.path.relpath(base, here)], "namespace": namespace, "nameSuffix": suffix}))
    return kustomize(cluster, here)


def helm(cluster: Any, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [str(cluster.bin / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def helm_template(cluster: Any, namespace: str, *values: str, release: str = "md") -> list[dict[str, Any]]:
    return load(helm(cluster, "template", release, str(CHART), "-n", namespace, *values).stdout)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """A Role's or ClusterRole's grants as (group, resource, verb) triples: order and grouping do not matter."""
    return {(g, r, v) for rule in role["rules"] for g in rule.get("apiGroups", [""])
            for r in rule["resources"] for v in rule["verbs"]}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """A lock across processes on this machine, for tests that use fixed names (e.g. modeldeploy-system)."""
    locks = ROOT / ".cluster" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def resource(doc: dict[str, Any]) -> str:
    """`kind.group/name` (lower-case kind), as kubectl names an object in its output."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"


def live(cluster: Any, doc: dict[str, Any], namespace: str | None = None) -> dict[str, Any] | None:
    """The object a manifest describes, as the API server has it (None when it has none)."""
    kind, _, name = resource(doc).partition("/")
    where = [] if doc["kind"] in CLUSTER_SCOPED else ["-n", doc["metadata"].get("namespace") or namespace or ""]
    out = cluster.kubectl("get", kind, name, *where, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def exists(cluster: Any, doc: dict[str, Any], namespace: str | None = None) -> bool:
    """Does the API server have the object a manifest describes?"""
    return live(cluster, doc, namespace) is not None


def applied(out: str) -> dict[str, str]:
    """What `kubectl apply` reported doing, per object: `kind.group/name` -> created, configured, unchanged, ..."""
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if " " in line)


def namespace_exists(cluster: Any, name: str) -> bool:
    return cluster.kubectl("get", "namespace", name, "-o", "name", check=False).returncode == 0


def delete_cluster_scoped(cluster: Any, docs: list[dict[str, Any]]) -> None:
    """Delete the ClusterRoles and ClusterRoleBindings among `docs` (never a CRD: other tests share it)."""
    for d in docs:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            cluster.kubectl("delete", d["kind"].lower(), d["metadata"]["name"], "--ignore-not-found",
                            "--wait=false")


def wait_deployment_available(cluster: Any, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    dep: dict[str, Any] = wait_for(lambda: get(cluster, namespace, "deployment", name), timeout=timeout,
                                   until=lambda d: d is not None and d.get("status", {}).get("availableReplicas", 0)
                                   >= d["spec"]["replicas"], message=f"Deployment {namespace}/{name} available")
    return dep


# -- what the files say, without a cluster (the cluster fixture only provides kubectl and helm) ------------------
def test_every_crd_is_in_the_kustomization_and_the_chart(cluster):
    files = {p.name: load(p.read_text()) for p in CRDS.glob("*.yaml")}
    crds = {d["metadata"]["name"]: d for docs in files.values() for d in docs}
    rendered = {d["metadata"]["name"]: d for d in kustomize(cluster, MANIFESTS)
                if d["kind"] == "CustomResourceDefinition"}
    assert rendered == crds, "manifests/ installs exactly crds/*.yaml, unchanged"
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert chart == {p.name: p.read_text() for p in CRDS.glob("*.yaml")}, "run `make helm-crds`"


def test_the_chart_and_the_manifests_grant_the_same_permissions(cluster):
    cluster_wide = kustomize(cluster, MANIFESTS)
    namespaced = kustomize(cluster, OVERLAY)
    chart = helm_template(cluster, "ops", release="modeldeploy")
    chart_ns = helm_template(cluster, "ops", "--set", "watchedNamespaces={team-a}", release="modeldeploy")
    assert rules(one(chart, "ClusterRole")) == rules(one(cluster_wide, "ClusterRole"))
    assert rules(one(chart_ns, "Role", "modeldeploy")) == rules(one(namespaced, "Role"))
    assert rules(one(chart_ns, "ClusterRole")) == rules(one(namespaced, "ClusterRole"))
    # Secrets: never cluster-wide; `get` only, only in a served namespace and the operator's own (where the
    # AnalysisProviders' tokens are), and nothing else there.
    assert not any(r == "secrets" for _, r, _ in rules(one(cluster_wide, "ClusterRole")))
    assert {(r, v) for _, r, v in rules(one(namespaced, "Role")) if r == "secrets"} == {("secrets", "get")}
    own = one(cluster_wide, "Role", "modeldeploy-provider-secrets")
    assert own["metadata"]["namespace"] == "modeldeploy-system" and rules(own) == {("", "secrets", "get")}
    for chart_docs in (chart, chart_ns):
        theirs = one(chart_docs, "Role", "modeldeploy-provider-secrets")
        assert theirs["metadata"]["namespace"] == "ops" and rules(theirs) == rules(own)
    # AnalysisProviders: read and watched, in both installs
    for verb in ("get", "list", "watch"):
        assert ("modeldeploy.dev", "analysisproviders", verb) in rules(one(cluster_wide, "ClusterRole"))
        assert ("modeldeploy.dev", "analysisproviders", verb) in rules(one(namespaced, "ClusterRole"))
    # Nothing is granted on everything, and nothing is ever replaced with PUT.
    for role in (one(cluster_wide, "ClusterRole"), one(namespaced, "Role"), one(namespaced, "ClusterRole")):
        for group, resource, verb in rules(role):
            assert "*" not in (group, resource, verb)
            assert verb != "update" or resource == "modeldeployments/finalizers"


def _rendered_deployments(cluster: Any) -> dict[str, dict[str, Any]]:
    return {
        "kustomize": one(kustomize(cluster, MANIFESTS), "Deployment"),
        "kustomize-namespaced": one(kustomize(cluster, OVERLAY), "Deployment"),
        "helm": one(helm_template(cluster, "ops"), "Deployment"),
        "helm-every-option": one(helm_template(
            cluster, "ops", "--set", "watchedNamespaces={team-a,team-b}", "--set", "replicas=2",
            "--set", "logLevel=debug", "--set", "logFormat=text", "--set", "serviceMonitor.enabled=true",
            "--set", "resyncSeconds=60"),
            "Deployment"),
    }


def test_the_operator_pod_is_locked_down(cluster):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, dep in _rendered_deployments(cluster).items():
        pod = dep["spec"]["template"]["spec"]
        c = container(dep)
        sc = c["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        # The image's user is the pod's (a named USER would fail runAsNonRoot's check).
        assert f"USER {pod['securityContext']['runAsUser']}:" in dockerfile, name
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], name
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, (name, probe)
        args = c["args"]
        assert args[args.index("--health-port") + 1] == str(ports["health"]), name
        assert args[args.index("--metrics-port") + 1] == str(ports["metrics"]), name
        labels = dep["spec"]["template"]["metadata"]["labels"]
        # The operator watches objects labelled managed-by=modeldeploy as its children.
        assert labels.get("app.kubernetes.io/managed-by") != "modeldeploy", name
        assert dep["metadata"]["labels"].get("app.kubernetes.io/managed-by") != "modeldeploy", name


def test_the_rendered_arguments_are_what_modeldeploy_run_takes(cluster):
    from modeldeploy.cli.main import parser

    parsed = {}
    for name, dep in _rendered_deployments(cluster).items():
        env = {e["name"] for e in container(dep)["env"]}
        args = container(dep)["args"]
        for a in args:  # $(VAR) is expanded by the kubelet from the container's env
            if a.startswith("$("):
                assert a[2:-1] in env, (name, a)
        parsed[name] = parser().parse_args([a.replace("$(POD_NAMESPACE)", "served") for a in args])
        assert parsed[name].func.__name__ == "cmd_run", name
        assert parsed[name].log_format in ("json", "text"), name
    assert parsed["kustomize"].all_namespaces and not parsed["kustomize"].namespace
    assert parsed["kustomize"].log_format == "json"
    assert parsed["kustomize-namespaced"].namespace == ["served"]
    assert not parsed["kustomize-namespaced"].all_namespaces
    assert parsed["helm"].all_namespaces and not getattr(parsed["helm"], "peering", None)
    every = parsed["helm-every-option"]
    assert every.namespace == ["team-a", "team-b"] and every.verbose and every.log_format == "text"
    assert every.peering == "modeldeploy" and every.resync_seconds == 60
    assert parsed["helm"].resync_seconds == parsed["kustomize"].resync_seconds == 300
    assert every.storage_initializer_image == "docker.io/kserve/storage-initializer:v0.21.0"
    # The comparator a compare metric runs is the operator's own image (kustomize: the default, its tag)
    for name, dep in _rendered_deployments(cluster).items():
        assert parsed[name].comparator_image == container(dep)["image"], name


def test_the_servicemonitor_is_rendered_only_when_enabled(cluster):
    assert not [d for d in helm_template(cluster, "ops") if d["kind"] == "ServiceMonitor"]
    docs = helm_template(cluster, "ops", "--set", "serviceMonitor.enabled=true",
                         "--set", "serviceMonitor.labels.release=prometheus")
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [p["name"] for p in svc["spec"]["ports"]] == ["metrics"]


@pytest.mark.parametrize(("values", "says"), [
    (["--set", "replicass=2"], "additional properties 'replicass' not allowed"),
    (["--set", "serviceMonitor.enabeld=true"], "additional properties 'enabeld' not allowed"),
    (["--set", "prometheusRule.degradedFor=30"], "at '/prometheusRule/degradedFor': got number, want string"),
    (["--set", "logLevel=verbose"], "at '/logLevel'"),
], ids=["top-level-typo", "nested-typo", "duration-without-unit", "unknown-log-level"])
def test_a_typo_in_values_fails_the_install_and_names_the_key(cluster, values, says):
    out = helm(cluster, "template", "md", str(CHART), "-n", "ops", *values, check=False)
    assert out.returncode != 0 and says in out.stderr, out.stderr


# -- installing -------------------------------------------------------------------------------------------------
def test_kubectl_apply_k_installs_the_operator(cluster, crd):
    rendered = kustomize(cluster, MANIFESTS)
    ours = [d for d in rendered if d["kind"] != "CustomResourceDefinition"]
    # modeldeploy-system is a fixed name: one test process at a time uses it.
    with exclusive(INSTALL_NAMESPACE):
        ns = get(cluster, "", "namespace", INSTALL_NAMESPACE)
        if ns is not None:
            leftover = (ns["metadata"].get("labels") or {}).get(TEST_NAMESPACE_LABEL) == "true"
            assert leftover or ns["metadata"].get("deletionTimestamp"), (
                f"namespace {INSTALL_NAMESPACE} exists and was not made by this test: a real install? "
                "This test installs into it and deletes it.")
            cluster.kubectl("delete", "namespace", INSTALL_NAMESPACE, "--ignore-not-found", "--wait=false")
            wait_for(lambda: not namespace_exists(cluster, INSTALL_NAMESPACE), timeout=90,
                     message=f"the leftover {INSTALL_NAMESPACE} is gone")
        # The CRDs may exist already (the `crd` fixture installs the ModelDeployment one, and CRDs are never
        # deleted), so their existence afterwards says nothing about this install. What `kubectl apply` leaves
        # on what it applied does: take its record off them first.
        crds = [d for d in rendered if d["kind"] == "CustomResourceDefinition"]
        for d in crds:
            if exists(cluster, d):
                cluster.kubectl("annotate", "crd", d["metadata"]["name"], f"{LAST_APPLIED}-")
        try:
            out = cluster.kubectl("apply", "-k", str(MANIFESTS))
            cluster.kubectl("label", "namespace", INSTALL_NAMESPACE, f"{TEST_NAMESPACE_LABEL}=true")
            # The API server accepted every object, the namespace enforces the restricted Pod
            # Security Standard, and the operator's pod was admitted there and became Ready.
            assert "would violate PodSecurity" not in out.stderr, out.stderr
            # kubectl applied every object it rendered; those in the namespace are new (it did not exist)
            did = applied(out.stdout)
            assert set(did) == {resource(d) for d in rendered}, out.stdout
            for d in ours:
                assert exists(cluster, d), f"{d['kind']} {d['metadata']['name']}"
                if d["kind"] == "Namespace" or d["kind"] not in CLUSTER_SCOPED:
                    assert did[resource(d)] == "created", out.stdout
            # and each CRD, as served, is the one this install applied
            for d in crds:
                served = live(cluster, d)
                assert served is not None, d["metadata"]["name"]
                record = (served["metadata"].get("annotations") or {}).get(LAST_APPLIED)
                assert record is not None, f"{d['metadata']['name']} was not applied by `kubectl apply -k`"
                assert json.loads(record)["spec"] == d["spec"] == {k: served["spec"][k] for k in d["spec"]}
            labels = get(cluster, "", "namespace", INSTALL_NAMESPACE)["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            dep = wait_deployment_available(cluster, INSTALL_NAMESPACE, "modeldeploy")
            assert container(dep)["image"] == "ghcr.io/modeldeploy/modeldeploy:0.1.0"
            pods = get(cluster, INSTALL_NAMESPACE, "pods")["items"]
            assert [p["spec"]["serviceAccountName"] for p in pods] == ["modeldeploy"]
            # Applying again changes nothing
            again = cluster.kubectl("apply", "-k", str(MANIFESTS))
            assert all(line.endswith("unchanged") for line in again.stdout.splitlines()), again.stdout
        finally:
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", input=dump(ours))
            wait_for(lambda: not namespace_exists(cluster, INSTALL_NAMESPACE), timeout=90,
                     message=f"{INSTALL_NAMESPACE} deleted")
    for d in ours:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert get(cluster, "", d["kind"].lower(), d["metadata"]["name"]) is None


def test_the_namespaced_overlay_installs_into_the_namespace_it_serves(cluster, crd, namespace, tmp_path):
    cluster.kubectl("label", "namespace", namespace, RESTRICTED)
    suffix = name_suffix()
    docs = [d for d in customised(cluster, tmp_path, OVERLAY, namespace, suffix)
            if d["kind"] != "CustomResourceDefinition"]
    try:
        out = cluster.kubectl("apply", "-f", "-", input=dump(docs))
        assert "would violate PodSecurity" not in out.stderr, out.stderr
        # Everything namespaced is in the served namespace, bound to the operator's own ServiceAccount
        sa = one(docs, "ServiceAccount")["metadata"]["name"]
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                assert d["metadata"]["namespace"] == namespace, d["kind"]
            for subject in d.get("subjects", []):
                assert subject == {"kind": "ServiceAccount", "name": sa, "namespace": namespace}
        dep = wait_deployment_available(cluster, namespace, f"modeldeploy{suffix}")
        assert "--namespace" in container(dep)["args"] and "--all-namespaces" not in container(dep)["args"]
        assert get(cluster, namespace, "role", f"modeldeploy{suffix}") is not None
    finally:
        delete_cluster_scoped(cluster, docs)


@pytest.mark.parametrize("values", [[], ["--set", "watchedNamespaces={NS}"]], ids=["cluster-wide", "namespaced"])
def test_helm_install_and_uninstall(cluster, crd, namespace, values):
    values = [v.replace("NS", namespace) for v in values]
    cluster.kubectl("label", "namespace", namespace, RESTRICTED)
    release = f"md-{secrets.token_hex(3)}"
    fullname = f"{release}-modeldeploy"
    rendered = helm_template(cluster, namespace, *values, release=release)
    # The ModelDeployment CRD (installed by the `crd` fixture) as it is before the install
    shared = get(cluster, "", "crd", "modeldeployments.modeldeploy.dev")["metadata"]
    try:
        helm(cluster, "install", release, str(CHART), "-n", namespace, *values, "--wait", "--timeout", "90s")
        dep = wait_deployment_available(cluster, namespace, fullname)
        assert container(dep)["image"] == "ghcr.io/modeldeploy/modeldeploy:0.1.0"
        # Every object the chart renders was made by this release (helm marks what it owns)
        for d in rendered:
            obj = live(cluster, d, namespace)
            assert obj is not None, f"{d['kind']} {d['metadata']['name']}"
            marks = obj["metadata"].get("annotations") or {}
            assert (marks.get("meta.helm.sh/release-name"), marks.get("meta.helm.sh/release-namespace")) == (
                release, namespace), f"{d['kind']} {d['metadata']['name']}: {marks}"
        # and the release records exactly what `helm template` rendered
        recorded = load(helm(cluster, "get", "manifest", release, "-n", namespace).stdout)
        assert sorted(map(resource, recorded)) == sorted(map(resource, rendered))
        # A CRD that already exists is left as it is: not taken into the release (so uninstall keeps it)
        crd_now = get(cluster, "", "crd", "modeldeployments.modeldeploy.dev")["metadata"]
        assert (crd_now["uid"], crd_now["generation"]) == (shared["uid"], shared["generation"])
        assert "meta.helm.sh/release-name" not in (crd_now.get("annotations") or {})
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)
    for d in rendered:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert get(cluster, "", d["kind"].lower(), d["metadata"]["name"]) is None, d["metadata"]["name"]
    assert helm(cluster, "status", release, "-n", namespace, check=False).returncode != 0
    # Uninstalling never deletes a CRD (every ModelDeployment in the cluster would go with it)
    assert get(cluster, "", "crd", "modeldeployments.modeldeploy.dev")["metadata"]["uid"] == shared["uid"]


@pytest.mark.parametrize("values", [
    [],
    ["--set", "watchedNamespaces={NS}", "--set", "replicas=2", "--set", "logLevel=debug",
     "--set", "logFormat=text", "--set", "storageInitializerImage=registry.example/init:1"],
    ["--set", "serviceAccount.create=false", "--set", "serviceAccount.name=default",
     "--set", "metrics.service.enabled=false", "--set", "rbac.create=false"],
], ids=["defaults", "namespaced-ha-debug", "bring-your-own-account"])
def test_helm_template_is_accepted_by_the_api_server(cluster, crd, namespace, values):
    values = [v.replace("NS", namespace) for v in values]
    text = helm(cluster, "template", f"md-{secrets.token_hex(3)}", str(CHART), "-n", namespace,
                "--include-crds", *values).stdout
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=text)
    assert out.stdout.count("(server dry run)") == len(load(text))


# -- RBAC: enough, and no more ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    variant: str
    namespace: str
    service_account: str
    kubeconfig: Path
    own_namespace: str = ""  # cluster-wide: the operator's namespace, where it may read provider tokens

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _kubeconfig_for_token(admin: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the admin's server and CA, and the ServiceAccount's bearer token as the only credential."""
    config = yaml.safe_load(admin.read_text())
    server = config["clusters"][0]["cluster"]
    ca = server.get("certificate-authority-data") or base64.b64encode(
        Path(server["certificate-authority"]).read_bytes()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": {"server": server["server"], "certificate-authority-data": ca}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
    }))
    path.chmod(0o600)
    return path


def can_i(cluster: Any, user: str, verb: str, resource: str, namespace: str | None = None,
          subresource: str | None = None) -> bool:
    """`kubectl auth can-i` as `user`; namespace None: across all namespaces (or a cluster-scoped kind)."""
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    args += [f"--subresource={subresource}"] if subresource else []
    out = cluster.kubectl(*args, check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {out.stdout} {out.stderr}"
    return answer == "yes"


@pytest.fixture(params=["cluster-wide", "namespaced"])
def identity(request, cluster, crd, namespace, tmp_path) -> Iterator[Identity]:
    """The operator's ServiceAccount and RBAC exactly as shipped (manifests/ or overlays/namespaced), made in
    this test's namespace under unique names, and a kubeconfig holding only a token minted for it."""
    base = MANIFESTS if request.param == "cluster-wide" else OVERLAY
    suffix = name_suffix()
    docs = [d for d in customised(cluster, tmp_path, base, namespace, suffix) if d["kind"] in RBAC_KINDS]
    own = f"op-{suffix.strip('-')}"  # the cluster-wide operator's own namespace, apart from the one it serves
    if request.param == "cluster-wide":
        cluster.kubectl("create", "namespace", own)
        for d in docs:
            if d["metadata"]["name"].startswith("modeldeploy-provider-secrets"):
                d["metadata"]["namespace"] = own
    try:
        cluster.kubectl("apply", "-f", "-", input=dump(docs))
        sa = one(docs, "ServiceAccount")["metadata"]["name"]
        # The TokenRequest API (what kubectl create token calls): a short-lived token, as a pod would get.
        token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
        ident = Identity(request.param, namespace, sa,
                         _kubeconfig_for_token(cluster.kubeconfig, token, tmp_path / "operator.kubeconfig"),
                         own if request.param == "cluster-wide" else namespace)
        # RBAC reaches the authorizer through informers: wait until every binding counts (the operator's
        # first requests must not be refused, and a late "yes" would make the checks below flaky).
        wait_for(lambda: can_i(cluster, ident.user, "watch", "modeldeployments.modeldeploy.dev", namespace)
                 and can_i(cluster, ident.user, "watch", "customresourcedefinitions.apiextensions.k8s.io"),
                 timeout=15, message="the operator's RBAC is in effect")
        whoami = subprocess.run([str(cluster.bin / "kubectl"), f"--kubeconfig={ident.kubeconfig}", "auth", "whoami",
                                 "-o", "jsonpath={.status.userInfo.username}"], capture_output=True, text=True,
                                timeout=30)
        assert whoami.stdout == ident.user, whoami.stderr
        yield ident
    finally:
        delete_cluster_scoped(cluster, docs)
        if request.param == "cluster-wide":
            cluster.kubectl("delete", "namespace", own, "--wait=false", check=False)


REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/\S*) HTTP/1\.1" (?P<status>\d{3}) ')  # urllib3's debug log
FORBIDDEN = re.compile(r"forbidden|not enough permissions", re.IGNORECASE)  # kopf's own requests (aiohttp)
# What the cluster-wide rules leave out on purpose. They are run here with --namespace (a cluster-wide
# operator would act on every other test's ModelDeployments too), where kopf lists and watches namespaces;
# with --all-namespaces, what those rules are for, it does not. And Secrets: the reconciler cannot check that
# credentialsSecret exists, and carries on.
CLUSTER_WIDE_DENIALS = [
    re.compile(r'"GET /api/v1/namespaces/[^/]+/secrets/[^/ ]+ HTTP/1\.1" 403 '),
    re.compile(r"GET https://\S+/api/v1/namespaces(\?\S*)? -> APIForbiddenError"),
    re.compile(r"Not enough permissions to (list|watch for) namespaces"),
]


def denials(log: Path, allowed: list[re.Pattern[str]]) -> list[str]:
    """The operator's log lines about requests it was not allowed to make (it logs them and retries)."""
    lines = log.read_text(errors="replace").splitlines()
    assert any(REQUEST.search(line) for line in lines), f"{log} logs no API requests: not run with --verbose?"
    return [line for line in lines
            if (((m := REQUEST.search(line)) and m["status"] == "403") or FORBIDDEN.search(line))
            and not any(a.search(line) for a in allowed)]


def secret_reads(log: Path) -> set[str]:
    """The HTTP statuses of the operator's reads of Secrets."""
    return {m["status"] for line in log.read_text(errors="replace").splitlines()
            if (m := REQUEST.search(line)) and "/secrets/" in m["path"] and m["method"] == "GET"}


def allowed_denials(ident: Identity) -> list[re.Pattern[str]]:
    return CLUSTER_WIDE_DENIALS if ident.variant == "cluster-wide" else []


def wait_serving(op: Any, ident: Identity) -> None:
    """kopf with --namespace and no namespaces permission retries the listing ~20 s before it falls back."""
    if ident.variant == "cluster-wide":
        wait_for(lambda: "Falling back to a list of namespaces" in op.log_path.read_text(errors="replace"),
                 timeout=60, message=f"kopf watches the namespace it was given ({op.log_path})")


def test_what_the_operator_may_and_may_not_do(cluster, identity):
    ns, user = identity.namespace, identity.user
    everywhere = None if identity.variant == "cluster-wide" else ns
    # What it needs (where it serves)
    for verb, resource, sub in [
        ("patch", "deployments.apps", None), ("create", "deployments.apps", None),
        ("delete", "controllerrevisions.apps", None), ("watch", "pods", None), ("create", "events", None),
        ("list", "modeldeployments.modeldeploy.dev", None), ("watch", "modeldeployments.modeldeploy.dev", None),
        ("patch", "modeldeployments.modeldeploy.dev", "status"), ("patch", "services", None),
        ("patch", "horizontalpodautoscalers.autoscaling", None), ("delete", "poddisruptionbudgets.policy", None),
        ("patch", "httproutes.gateway.networking.k8s.io", None),
        ("patch", "virtualservices.networking.istio.io", None),
    ]:
        assert can_i(cluster, user, verb, resource, everywhere, sub), f"can {verb} {resource} {sub or ''}"
    assert can_i(cluster, user, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    # What it does not need, anywhere
    for verb, resource, where in [
        ("create", "configmaps", ns), ("get", "configmaps", ns), ("create", "pods", ns), ("delete", "pods", ns),
        ("update", "deployments.apps", ns), ("create", "modeldeployments.modeldeploy.dev", ns),
        ("delete", "modeldeployments.modeldeploy.dev", ns), ("update", "modeldeployments.modeldeploy.dev", ns),
        ("list", "secrets", ns), ("watch", "secrets", ns), ("create", "secrets", ns),
        ("create", "serviceaccounts/token", ns), ("create", "rolebindings.rbac.authorization.k8s.io", ns),
        ("create", "roles.rbac.authorization.k8s.io", ns), ("patch", "namespaces", None),
        ("delete", "nodes", None), ("create", "clusterroles.rbac.authorization.k8s.io", None),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("impersonate", "serviceaccounts", ns), ("create", "pods/exec", ns),
        ("list", "httproutes.gateway.networking.k8s.io", ns),
    ]:
        assert not can_i(cluster, user, verb, resource, where), f"cannot {verb} {resource} in {where or 'all'}"
    peerings = "clusterkopfpeerings.kopf.dev" if identity.variant == "cluster-wide" else "kopfpeerings.kopf.dev"
    for verb in ("get", "list", "watch", "patch", "create"):  # `run --peering`: kopf's keep-alives
        assert can_i(cluster, user, verb, peerings, everywhere), f"can {verb} {peerings}"
    assert not can_i(cluster, user, "delete", peerings, everywhere)
    if identity.variant == "cluster-wide":
        # No Secret anywhere: the operator tolerates not being able to check that credentialsSecret exists.
        assert not can_i(cluster, user, "get", "secrets", None)
        assert not can_i(cluster, user, "get", "secrets", ns)
        assert can_i(cluster, user, "get", "secrets", identity.own_namespace)  # AnalysisProviders' tokens
        assert not can_i(cluster, user, "list", "secrets", identity.own_namespace)
        assert not can_i(cluster, user, "list", "namespaces", None)
    else:
        assert can_i(cluster, user, "get", "secrets", ns)
        assert can_i(cluster, user, "list", "namespaces", None)  # kopf's view of which served namespaces exist
        # and nothing outside the namespace it serves
        for verb, resource in [("get", "secrets"), ("patch", "deployments.apps"), ("list", "pods"),
                               ("watch", "modeldeployments.modeldeploy.dev")]:
            assert not can_i(cluster, user, verb, resource, "kube-system"), f"cannot {verb} {resource} elsewhere"
            assert not can_i(cluster, user, verb, resource, None), f"cannot {verb} {resource} cluster-wide"
    # AnalysisProviders: read and watched (into the operator's cache), never written
    for verb in ("get", "list", "watch"):
        assert can_i(cluster, user, verb, "analysisproviders.modeldeploy.dev", None), verb
    for verb in ("create", "patch", "delete"):
        assert not can_i(cluster, user, verb, "analysisproviders.modeldeploy.dev", None), verb


def test_the_operator_serves_and_rolls_out_with_only_its_own_permissions(cluster, identity, start_operator):
    ns = identity.namespace
    cluster.kubectl("create", "secret", "generic", "s3-creds", "-n", ns, "--from-literal=AWS_ACCESS_KEY_ID=x")

    def spec(version: str, **extra: Any) -> dict[str, Any]:
        body = manifest(ns, version=version, replicas=4, **extra)
        body["spec"]["model"]["credentialsSecret"] = "s3-creds"
        return body

    op = start_operator(tag=f"sa-{identity.variant}", kubeconfig=identity.kubeconfig)
    wait_serving(op, identity)
    try:
        # Serving: a new ModelDeployment becomes Healthy ...
        apply(cluster, spec("1"))
        wait_phase(cluster, ns, "Healthy", timeout=30, stableRevision=1)
        # ... and a new model version rolls out as revision 2
        apply(cluster, spec("2"))
        wait_phase(cluster, ns, "Healthy", timeout=30, stableRevision=2)
        assert deployments(cluster, ns)[f"{MD}-r2"]["status"]["readyReplicas"] == 4
        # Canary: 25% / pause 2s / 50%, then promoted
        apply(cluster, spec("3", rollout={"steps": CANARY_STEPS, "scaleDownDelaySeconds": 2}))
        seen: list[int] = []

        def observe() -> dict[str, Any]:
            st = status(cluster, ns)
            # (the steps' weights: the served share passes through others, 20% and 40%, as pods come and go)
            if st.get("stepWeight") is not None and (not seen or seen[-1] != st["stepWeight"]):
                seen.append(st["stepWeight"])
            return st

        st = wait_for(observe, timeout=60, interval=0.1, message="revision 3 promoted",
                      until=lambda s: s.get("stableRevision") == 3 and s.get("phase") == "Healthy")
        assert [w for w in seen if w in (25, 50)] == [25, 50], seen
        assert st.get("canaryRevision") is None
        wait_for(lambda: deployments(cluster, ns)[f"{MD}-r2"]["spec"]["replicas"], timeout=15,
                 until=lambda n: n == 0, message="revision 2 scaled down after the delay")
        events = get(cluster, ns, "events")["items"]
        assert any(e["reason"] == "Promoted" for e in events), [e["reason"] for e in events]
        if identity.variant == "namespaced":
            # Where it may read Secrets, a missing one is reported before any pod is made
            body = spec("4")
            body["spec"]["model"]["credentialsSecret"] = "missing-creds"
            apply(cluster, body)
            st = wait_phase(cluster, ns, "Failed", timeout=30)
            ready = next(c for c in st["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "CredentialsSecretNotFound"
    finally:
        op.stop()
    assert not denials(op.log_path, allowed_denials(identity)), op.log_path
    # It checked the credentials Secret: forbidden cluster-wide (and carried on), allowed where it serves.
    assert secret_reads(op.log_path) == ({"403"} if identity.variant == "cluster-wide" else {"200", "404"})


ROUTES = {
    "gatewayAPI": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "fraud-route"},
        "spec": {"parentRefs": [{"name": "public-gateway"}],
                 "rules": [{"backendRefs": [{"name": f"{MD}-stable", "port": 80}]}]},
    },
    "istio": {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "fraud-vs"},
        "spec": {"hosts": [MD], "http": [{"name": "primary",
                                           "route": [{"destination": {"host": f"{MD}-stable"}}]}]},
    },
}


def _canary_weight(route: dict[str, Any]) -> int:
    if route["kind"] == "HTTPRoute":
        refs = route["spec"]["rules"][0]["backendRefs"]
        return sum(r.get("weight", 1) for r in refs if r["name"] == f"{MD}-canary")
    dests = route["spec"]["http"][0]["route"]
    return sum(d.get("weight", 0) for d in dests if d["destination"]["host"] == f"{MD}-canary")


@pytest.mark.parametrize("router", ["gatewayAPI", "istio"])
@pytest.mark.parametrize("identity", ["cluster-wide"], indirect=True)
def test_the_traffic_routers_work_with_only_get_and_patch_on_routes(cluster, mesh_crds, identity, router,
                                                                   start_operator):
    ns = identity.namespace
    route = {**ROUTES[router], "metadata": {**ROUTES[router]["metadata"], "namespace": ns}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
    routing = ({"gatewayAPI": {"httpRoute": "fraud-route"}} if router == "gatewayAPI"
               else {"istio": {"virtualService": "fraud-vs", "routes": ["primary"]}})
    steps = [{"setWeight": 30}, {"pause": {"duration": "2s"}}]

    def spec(version: str) -> dict[str, Any]:
        return manifest(ns, version=version, replicas=2,
                        rollout={"steps": steps, "trafficRouting": routing, "scaleDownDelaySeconds": 2})

    op = start_operator(tag=f"sa-{router}", kubeconfig=identity.kubeconfig)
    wait_serving(op, identity)
    try:
        apply(cluster, spec("1"))
        wait_phase(cluster, ns, "Healthy", timeout=30, stableRevision=1)
        apply(cluster, spec("2"))
        kind = route["kind"].lower()
        seen = set()
        deadline = time.monotonic() + 60
        while status(cluster, ns).get("stableRevision") != 2 or status(cluster, ns).get("phase") != "Healthy":
            seen.add(_canary_weight(get(cluster, ns, kind, route["metadata"]["name"])))
            assert time.monotonic() < deadline, f"rollout did not finish: {status(cluster, ns)}"
            time.sleep(0.1)
        assert 30 in seen, f"the route carried the canary weight; saw {seen}"
        wait_for(lambda: _canary_weight(get(cluster, ns, kind, route["metadata"]["name"])), timeout=10,
                 until=lambda w: w == 0, message="all traffic back on the stable Service")
    finally:
        op.stop()
    assert not denials(op.log_path, allowed_denials(identity)), op.log_path


@pytest.mark.parametrize("identity", ["namespaced"], indirect=True)
def test_peering_works_with_only_its_own_permissions(cluster, peering_crds, identity, start_operator):
    """`run --peering` (the chart's replicas > 1): the operator makes its KopfPeering, kopf keeps its entry."""
    ns = identity.namespace
    op = start_operator("--peering", "modeldeploy", tag="sa-peering", kubeconfig=identity.kubeconfig)

    def entries() -> dict[str, Any]:
        return dict((get(cluster, ns, "kopfpeerings.kopf.dev", "modeldeploy") or {}).get("status") or {})

    wait_for(entries, timeout=20, until=lambda e: len(e) == 1, message="this replica's keep-alive")
    apply(cluster, manifest(ns, version="1", replicas=2))
    wait_phase(cluster, ns, "Healthy", timeout=30, stableRevision=1)
    op.stop()
    # A replica that exits cleanly removes its entry (a patch), so a standby takes over at once
    wait_for(entries, timeout=10, until=lambda e: not e, message="the entry is removed on exit")
    assert not denials(op.log_path, allowed_denials(identity)), op.log_path
