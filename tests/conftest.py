"""Shared fixtures: the local control plane and a fresh namespace per test.

Fixtures are lazy: only tests that ask for `cluster` or `namespace` start (or
reuse) the local control plane; unit tests never touch it. A test run never
stops the cluster: `make cluster-down` does, and CI calls it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import servers  # tests/cluster (on pytest's pythonpath): servers shared with `make demo`

from helpers import wait_for
from webhooks import webhooks  # noqa: F401  (a fixture: an HTTP endpoint on loopback that tests answer from)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from kubernetes.client import ApiClient

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
E2E = TESTS / "e2e"
TEST_NAMESPACE_LABEL = "modeldeploy.dev/test"


# The property tests draw 200 histories each. In CI they draw the same ones every run, so whether a change
# lands never depends on the draw; locally each run explores new ones. Under `make mutation` every mutant
# runs them: fewer, fixed draws, so a mutant's fate is repeatable and a run takes minutes, not hours.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("dev", max_examples=200)
_hypothesis_settings.register_profile("ci", max_examples=200, derandomize=True)
_hypothesis_settings.register_profile("mutation", max_examples=25, derandomize=True, database=None)
_hypothesis_settings.load_profile("mutation" if os.environ.get("MUTATION") else "ci" if os.environ.get("CI")
                                  else "dev")


def _localcluster() -> ModuleType:
    """Import tests/cluster/localcluster.py (standard library only) by path."""
    name = "modeldeploy_localcluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / "cluster" / "localcluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message includes what kubectl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the cluster's kubectl against its kubeconfig (never the user's)."""
        cmd = [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def api_client(self) -> ApiClient:
        """A new admin `kubernetes.client.ApiClient` for this cluster."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The local control plane, started if it is not running; left running afterwards."""
    lc = _localcluster()
    # up() is idempotent, but it relinks .cluster/bin every call; skip it when the
    # cluster already answers, so parallel users of those links are not disturbed.
    if not lc.is_ready():
        try:
            lc.up()
        except lc.ClusterError as exc:
            pytest.fail(f"the local control plane did not start: {exc}", pytrace=False)
    return Cluster(kubeconfig=lc.KUBECONFIG, bin=lc.BIN)


def _namespace_name(test_name: str) -> str:
    """`t-<test-name-slug>-<random>`: unique, DNS-1123 label, at most 63 characters."""
    suffix = secrets.token_hex(3)
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    slug = slug.removeprefix("test-")
    slug = slug[: 63 - len("t--") - len(suffix)].strip("-") or "x"
    return f"t-{slug}-{suffix}"


def _create_namespace(cluster: Cluster, name: str) -> str:
    from kubernetes import client

    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}}})
        # The ServiceAccount admission plugin rejects pods until the controller
        # manager has made the namespace's "default" ServiceAccount.
        wait_for(lambda: core.list_namespaced_service_account(
                     name, field_selector="metadata.name=default").items,
                 timeout=30, message=f"ServiceAccount {name}/default exists")
    return name


def _delete_namespace(cluster: Cluster, name: str) -> None:
    from kubernetes import client

    with cluster.api_client() as api:
        try:
            client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = _create_namespace(cluster, _namespace_name(request.node.name))
    try:
        yield name
    finally:
        _delete_namespace(cluster, name)


@pytest.fixture(scope="module")
def namespaces(cluster: Cluster) -> Iterator[Callable[[str], str]]:
    """More fresh namespaces, for a module whose tests run one scenario many times: `namespaces("crash-7")`
    makes one named from that word; each is deleted (without waiting) after the module's last test."""
    made: list[str] = []

    def make(word: str) -> str:
        made.append(_create_namespace(cluster, _namespace_name(word)))
        return made[-1]

    try:
        yield make
    finally:
        for name in made:
            _delete_namespace(cluster, name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an end-to-end test: mark it `e2e`."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)


CRD_FILE = ROOT / "crds" / "modeldeploy.dev_modeldeployments.yaml"
PROVIDER_CRD_FILE = ROOT / "crds" / "modeldeploy.dev_analysisproviders.yaml"


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    """The ModelDeployment and AnalysisProvider CRDs, installed and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE), "-f", str(PROVIDER_CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/modeldeployments.modeldeploy.dev", "crd/analysisproviders.modeldeploy.dev")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """`modeldeploy run` as a real process watching one namespace."""

    def __init__(self, cluster: Cluster, namespace: str, extra_args: Sequence[str] = (), tag: str = "",
                 kubeconfig: Path | None = None, cluster_wide: bool = False) -> None:
        """`extra_args` go after `run ...` (e.g. --peering); `tag` tells several operators' logs apart;
        `kubeconfig` runs it with other credentials than the cluster admin's (e.g. a ServiceAccount's);
        `cluster_wide` watches every namespace (as the default install does) instead of `namespace` alone."""
        self.cluster = cluster
        self.namespace = namespace
        self.cluster_wide = cluster_wide
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.extra_args = list(extra_args)
        self.log_path = ROOT / ".cluster" / "logs" / f"operator-{namespace}{'-' + tag if tag else ''}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0

    def start(self) -> None:
        """Start and wait until its liveness endpoint answers (kopf is watching)."""
        import urllib.request

        self.metrics_port, self.health_port = _free_port(), _free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy.cli.main", "--kubeconfig", str(self.kubeconfig),
             "run", *(["--all-namespaces"] if self.cluster_wide else ["--namespace", self.namespace]),
             "--metrics-port", str(self.metrics_port),
             "--health-port", str(self.health_port), "--verbose", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"operator exited; see {self.log_path}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(healthy, timeout=30, message=f"operator is live (log: {self.log_path})")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or an OOM kill would do."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def scrape(self) -> dict[str, dict[str, float]]:
        """All its Prometheus series at one moment: metric -> sorted `k="v"` labels -> value."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, dict[str, float]] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            out.setdefault(metric, {})[",".join(sorted(rest.rstrip("}").split(","))) if rest else ""] = float(value)
        return out

    def series(self, metric_name: str) -> dict[str, float]:
        """Every exported series of one of its Prometheus metrics: sorted `k="v"` labels -> value."""
        return self.scrape().get(metric_name, {})

    def metric(self, metric_name: str, /, **labels: str) -> float:
        """The current value of one of its Prometheus metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return self.series(metric_name).get(want, 0.0)


@pytest.fixture
def operator(cluster: Cluster, crd: None, namespace: str) -> Iterator[OperatorProcess]:
    """The real operator, running for this test's namespace.

    It reaches analysis URLs written in ModelDeployments: the rollout tests point analysis at their own
    Prometheus and loopback endpoints that way. As installed it does not (tests/e2e/test_analysis_providers.py
    runs it so, and tests/e2e/test_install.py checks the chart and manifests leave the flag off)."""
    op = OperatorProcess(cluster, namespace, ["--allow-inline-analysis-urls"])
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def operator_image(cluster: Cluster) -> str:
    """The Dockerfile's image, built (once per content) and imported into the real node; its name."""
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "cluster" / "localcluster.py"), "image"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"the operator image was not built:\n{out.stderr[-3000:]}"
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def mesh_crds(cluster: Cluster) -> None:
    """The Gateway API HTTPRoute and Istio CRDs, from their Go modules pinned in tests/cluster/crds."""
    import json as _json

    here = TESTS / "cluster" / "crds"
    out = subprocess.run(["go", "mod", "download", "-json", "sigs.k8s.io/gateway-api", "istio.io/api"], cwd=here,
                         capture_output=True, text=True, check=True)
    dirs = {m["Path"]: Path(m["Dir"]) for m in _json.loads("[" + out.stdout.replace("}\n{", "},{") + "]")}
    httproutes = "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
    cluster.kubectl("apply", "--server-side", "-f", str(dirs["sigs.k8s.io/gateway-api"] / httproutes))
    cluster.kubectl("apply", "--server-side", "-f",
                    str(dirs["istio.io/api"] / "kubernetes/customresourcedefinitions.gen.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/httproutes.gateway.networking.k8s.io", "crd/virtualservices.networking.istio.io")


class MetricSource:
    """A /metrics endpoint whose values the tests set: `model_error_ratio{namespace=...}`."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.values: dict[str, float] = {}
        source = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = "# TYPE model_error_ratio gauge\n" + "".join(
                    f'model_error_ratio{{namespace="{ns}"}} {v}\n' for ns, v in sorted(source.values.items()))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Prometheus(servers.Prometheus):
    """Prometheus (tests/cluster/servers.py) that can scrape a MetricSource whose values the tests set."""

    def __init__(self, workdir: Path, scrape_configs: str, source: MetricSource | None = None) -> None:
        try:
            super().__init__(workdir, scrape_configs)
        except FileNotFoundError as exc:
            pytest.fail(str(exc), pytrace=False)
        self.source = source

    def set_error_ratio(self, namespace: str, value: float) -> None:
        """Set the value and wait until Prometheus has scraped it."""
        assert self.source is not None, "this Prometheus scrapes no MetricSource"
        self.source.values[namespace] = value
        wait_for(lambda: self.query(f'model_error_ratio{{namespace="{namespace}"}}'), timeout=20,
                 until=lambda r: bool(r) and float(r[0]["value"][1]) == value,
                 message=f"prometheus sees error ratio {value}", ignore=(OSError,))


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus, started by the tests, scraping a metric the tests control."""
    source = MetricSource()
    static = f"  - job_name: models\n    static_configs: [{{targets: ['127.0.0.1:{source.port}']}}]\n"
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), static, source)
    try:
        yield prom
    finally:
        prom.stop()


PEERING_CRD_FILE = ROOT / "crds" / "kopf-peering.yaml"


@pytest.fixture(scope="session")
def pod_prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping the real node's model servers, found through Kubernetes service discovery."""
    import realnode

    prom = Prometheus(tmp_path_factory.mktemp("pod-prometheus"),
                      servers.SCRAPE_MODEL_SERVERS.format(kubeconfig=cluster.kubeconfig, node=realnode.NAME))
    try:
        yield prom
    finally:
        prom.stop()


@pytest.fixture(scope="session")
def peering_crds(cluster: Cluster) -> None:
    """kopf's peering CRDs (KopfPeering, ClusterKopfPeering), for operators run with --peering."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev")


@pytest.fixture(scope="module")
def operator_process(cluster: Cluster, crd: None) -> Callable[..., OperatorProcess]:
    """`OperatorProcess` for a namespace of the caller's choice (not started): for tests that start and kill
    operators of their own, such as the crash-point harness."""
    return lambda namespace, *extra_args, **kwargs: OperatorProcess(cluster, namespace, extra_args, **kwargs)


@pytest.fixture
def start_operator(cluster: Cluster, crd: None, namespace: str) -> Iterator[Callable[..., OperatorProcess]]:
    """Start any number of operators for this test's namespace: `start_operator("--peering", "ha", tag="a")`;
    `kubeconfig=` runs one with other credentials than the admin's (e.g. a ServiceAccount's token).

    Each one is started (live) before it is returned, and stopped after the test.
    """
    started: list[OperatorProcess] = []

    def start(*extra_args: str, tag: str = "", kubeconfig: Path | None = None) -> OperatorProcess:
        op = OperatorProcess(cluster, namespace, extra_args, tag=tag or str(len(started)), kubeconfig=kubeconfig)
        started.append(op)
        op.start()
        return op

    try:
        yield start
    finally:
        for op in started:
            op.stop()
