"""Servers beside the local control plane that the real node's tests and `make demo` run: Prometheus, an S3
server, an HTTPS file server behind a private CA, and a load generator. Each is a real program (built by
`make cluster`, linked into .cluster/bin, or Python's own HTTP server) or real traffic; each listens on
loopback or the bridge's address and stops with its owner.
Standard library only, like localcluster.py; boto3 (a dev dependency) is imported when used.
"""

from __future__ import annotations

import functools
import http.server
import io
import itertools
import json
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hostnet

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cluster" / "bin"
LOGS = ROOT / ".cluster" / "logs"
BRIDGE_HOST = hostnet.BRIDGE_ADDRESS.split("/")[0]

# How a platform's Prometheus finds model servers: the operator's pods (they carry modeldeploy.dev/revision)
# at the container port a preset names `metrics`, labelled with namespace, pod and revision for queries.
# docs/rollouts.md shows the same job.
SCRAPE_MODEL_SERVERS = """\
  - job_name: model-servers
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: {kubeconfig}
        selectors: [{{role: pod, field: spec.nodeName={node}}}]
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_container_port_name], regex: metrics, action: keep}}
      - {{source_labels: [__meta_kubernetes_pod_label_modeldeploy_dev_revision], regex: .+, action: keep}}
      - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
      - {{source_labels: [__meta_kubernetes_pod_label_modeldeploy_dev_name], target_label: modeldeployment}}
      - {{source_labels: [__meta_kubernetes_pod_label_modeldeploy_dev_revision], target_label: revision}}
"""

# MLServer's error rate for one revision: failed / all inference requests it counted. A revision that has
# failed nothing has no failure series yet, hence `or vector(0)`; one that served nothing gives NaN.
MLSERVER_ERROR_RATE = (
    "(sum(rate(model_infer_request_failure_total{{namespace=\"$namespace\", revision=\"$revision\"}}[{w}]))"
    " or vector(0)) / (sum(rate(model_infer_request_success_total{{namespace=\"$namespace\","
    " revision=\"$revision\"}}[{w}])) + (sum(rate(model_infer_request_failure_total{{namespace="
    "\"$namespace\", revision=\"$revision\"}}[{w}])) or vector(0)))")


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """`check()` until it returns something truthy (exceptions count as not yet); raise TimeoutError naming
    `what` and the last exception otherwise."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except Exception as exc:  # a server that is starting answers with errors
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:g} s" + (f" (last: {last})" if last else ""))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A real Prometheus server (`make cluster` builds it, tests/cluster/prometheus) on loopback, scraping every
    second what `scrape_configs` (YAML) say, and evaluating every second the alerting rules in `rule_files`."""

    def __init__(self, workdir: Path, scrape_configs: str, rule_files: Sequence[Path] = ()) -> None:
        binary = BIN / "prometheus"
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing; `make cluster` builds it")
        self.port = free_port()
        config = workdir / "prometheus.yml"
        rules = f"rule_files: {json.dumps([str(f) for f in rule_files])}\n" if rule_files else ""
        config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                          f"{rules}scrape_configs:\n{scrape_configs}")
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = (LOGS / f"prometheus-{workdir.name}.log").open("wb")
        self.proc = subprocess.Popen([str(binary), f"--config.file={config}",
                                      f"--storage.tsdb.path={workdir / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.address = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(self.ready, 30, "prometheus is ready")
        except BaseException:
            self.stop()
            raise

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.address}/-/ready", timeout=5) as r:
            return bool(r.status == 200)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.address}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as r:
            result: list[dict[str, Any]] = json.loads(r.read())["data"]["result"]
            return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts its rules raise now, pending or firing."""
        with urllib.request.urlopen(f"{self.address}/api/v1/alerts", timeout=5) as r:
            result: list[dict[str, Any]] = json.loads(r.read())["data"]["alerts"]
            return result

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class S3:
    """A real S3 server (versitygw on its posix backend, built by `make cluster`) on the bridge's address, where
    the real node's pods reach it; it checks every request's signature against its one key pair."""

    def __init__(self, folder: Path) -> None:
        self.access_key, self.secret_key = "modeldeploy", secrets.token_hex(16)
        port = free_port(BRIDGE_HOST)
        self.endpoint = f"http://{BRIDGE_HOST}:{port}"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = (LOGS / "s3.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "versitygw"), "--port", f"{BRIDGE_HOST}:{port}", "--quiet",
             "--access", self.access_key, "--secret", self.secret_key, "posix", str(folder / "data")],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.client().list_buckets(), 20, "the S3 server answers")
        except BaseException:
            self.stop()
            raise

    def client(self, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=secret_key or self.secret_key)

    def credentials(self, secret_key: str | None = None) -> dict[str, str]:
        """A credentialsSecret's data, as KServe's storage code reads it."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def put_mlserver_model(self, bucket: str, prefix: str, model: Any, name: str, version: str) -> None:
        """A scikit-learn model as MLServer loads it (mlserver_files), under `prefix`."""
        client = self.client()
        for key, body in mlserver_files(model, name, version).items():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def mlserver_files(model: Any, name: str, version: str) -> dict[str, bytes]:
    """A scikit-learn model as MLServer loads it: the pickle and its model-settings.json."""
    import joblib

    packed = io.BytesIO()
    joblib.dump(model, packed)
    return {"model.joblib": packed.getvalue(), "model-settings.json": json.dumps({
        "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": version}}).encode()}


class HTTPSFiles:
    """Files served over HTTPS on the bridge's address, with a certificate from a CA made here (openssl) that
    nothing else trusts: a model store behind a private CA. Pods reach it; nothing off this machine does."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "files"
        self.root.mkdir(parents=True)
        self.ca = workdir / "ca.crt"
        key, cert, ext = workdir / "server.key", workdir / "server.crt", workdir / "san.cnf"
        # The extensions a strict verifier (Python 3.13's default) asks of a CA and of a server's certificate.
        ext.write_text(f"subjectAltName=IP:{BRIDGE_HOST}\nbasicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        for cmd in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=modeldeploy test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(workdir / "ca.key"), "-out", str(self.ca)],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={BRIDGE_HOST}", "-keyout", str(key),
             "-out", str(workdir / "server.csr")],
            ["x509", "-req", "-days", "1", "-in", str(workdir / "server.csr"), "-CA", str(self.ca), "-CAkey",
             str(workdir / "ca.key"), "-CAcreateserial", "-extfile", str(ext), "-out", str(cert)],
        ):
            subprocess.run(["openssl", *cmd], check=True, capture_output=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((BRIDGE_HOST, 0),
                                                      functools.partial(Quiet, directory=str(self.root)))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://{BRIDGE_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put_tarball(self, name: str, files: dict[str, bytes]) -> str:
        """A .tar.gz of `files` (served as application/gzip, which KServe's storage code unpacks); its URL."""
        with tarfile.open(self.root / name, "w:gz") as tar:
            for member, data in files.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return f"{self.url}/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def infer(ip: str, model: str, rows: list[list[float]], timeout: float = 10) -> dict[str, Any]:
    """An Open Inference Protocol (V2) request to a ClusterIP: the answer (outputs, model_version)."""
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                                   "data": [x for row in rows for x in row]}]}).encode()
    request = urllib.request.Request(f"http://{ip}/v2/models/{model}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


class Load:
    """A load generator: V2 requests to a ClusterIP, one row each on a new connection (so kube-proxy picks an
    endpoint for each), from a thread, until stopped or for at most 10 minutes. It keeps what each request
    got: the model version that answered, or `error <status>`."""

    def __init__(self, ip: str, model: str, rows: list[list[float]]) -> None:
        self.ip, self.model = ip, model
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._rows = itertools.cycle(rows)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _one(self, row: list[float]) -> str:
        try:
            return str(infer(self.ip, self.model, [row])["model_version"])
        except urllib.error.HTTPError as exc:
            return f"error {exc.code}"
        except OSError as exc:
            return f"error {exc}"

    def _run(self) -> None:
        ends = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < ends:
            self.answers.append(self._one(next(self._rows)))
            self._stop.wait(0.02)

    def mark(self) -> int:
        return len(self.answers)

    def since(self, mark: int) -> list[str]:
        return self.answers[mark:]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
