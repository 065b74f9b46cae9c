"""The local control plane: real upstream Kubernetes components, KWOK nodes and a real node.

`python3 tests/cluster/localcluster.py up|down|status` starts, stops or
reports one cluster for this checkout. It builds the binaries from the pinned
Go modules beside this file (cached under ~/.cache/modeldeploy), then lets
kwokctl's binary runtime run them: it already knows the flags and the
certificates, and it picks free ports, so a taken port never clashes.
Beside the KWOK nodes it starts a real node (realnode.py: containerd, kubelet,
kube-proxy); MODELDEPLOY_REAL_NODE=0 gives the KWOK-only cluster. The host
changes it makes (hostnet.py) are recorded first and undone by `down`.

Standard library only: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostnet
import images
import operator_image
import realnode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STATE = ROOT / ".cluster"
KUBECONFIG = STATE / "kubeconfig"
BIN = STATE / "bin"
LOGS = STATE / "logs"
WORKDIR = STATE / "kwok"
NAME = "modeldeploy"
TOOLS = ("kubectl", "helm", "kwokctl", "kwok", "etcd", "kube-apiserver",
         "kube-controller-manager", "kube-scheduler")
READY_TIMEOUT = 120
HOST_BEFORE = STATE / "host-before.json"
ENV = STATE / "env"
# Image archives are kept beside the binaries, so `make clean` (which removes .cluster) does not rebuild them.
IMAGES = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy")) / "images"
# What the real node needs from the distribution: command -> Debian package.
NODE_PACKAGES = {"runc": "runc", "nft": "nftables", "umoci": "umoci", "iptables": "iptables",
                 "mmdebstrap": "mmdebstrap"}


def real_node() -> bool:
    return os.environ.get("MODELDEPLOY_REAL_NODE", "1") != "0"


class ClusterError(RuntimeError):
    """A step of bringing the cluster up failed; the message says which and where to look."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # kwokctl keeps its clusters, logs and caches here instead of ~/.kwok.
    env["KWOK_WORKDIR"] = str(WORKDIR)
    env["KWOK_KUBECTL_BINARY"] = str(BIN / "kubectl")
    env["KUBECONFIG"] = str(KUBECONFIG)
    return env


def _build(what: str) -> Path:
    proc = subprocess.run(["bash", str(HERE / "build.sh"), what], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"building the {what.replace('-', ' ')} failed (see the messages above)")
    return Path(proc.stdout.strip().splitlines()[-1])


def _install_packages() -> None:
    """The real node's distribution packages, installed with apt-get when missing (as make test does)."""
    missing = [pkg for cmd, pkg in NODE_PACKAGES.items() if not shutil.which(cmd)]
    if missing:
        _install(missing, "for the real node")


def _install(missing: list[str], why: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterError(f"{', '.join(missing)} must be installed {why} (Debian: apt-get install "
                           f"{' '.join(missing)}), or MODELDEPLOY_REAL_NODE=0 for the KWOK-only cluster")
    _say(f"installing Debian's {' '.join(missing)} ({why})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"apt-get could not install {' '.join(missing)}:\n{proc.stderr.strip()}")


def build() -> Path:
    """Build (or find cached) binaries and link them into .cluster/bin: the control plane's, the
    Prometheus server the analysis tests and the demo judge rollouts with, and the checkers the tests
    run (kstatus and Flux's CEL health checks, Grafana's dashboard schema, from their own libraries)."""
    cache = _build("control-plane")
    prometheus = _build("prometheus")
    checks = _build("checks")
    for tool in TOOLS:
        _link(tool, cache / tool)
    _link("prometheus", prometheus / "prometheus")
    _link("statuscheck", checks / "statuscheck")
    _link("dashboardcheck", checks / "dashboardcheck")
    _write_env()
    return cache


def _write_env() -> None:
    """.cluster/env: `source .cluster/env` gives a shell this cluster's kubectl and helm, the checkout's
    `modeldeploy` and `kubectl modeldeploy` (the project's virtualenv), and KUBECONFIG, as make has them."""
    venv_bin = ROOT / ".venv" / "bin"
    ENV.write_text(
        "# The local control plane's tools and kubeconfig (tests/cluster/localcluster.py writes this file).\n"
        f'export KUBECONFIG="{KUBECONFIG}"\n'
        f'case ":$PATH:" in *":{BIN}:"*) ;; *) export PATH="{BIN}:{venv_bin}:$PATH" ;; esac\n')


def _link(tool: str, target: Path) -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    link = BIN / tool
    if link.is_symlink() and link.readlink() == target:
        return  # relinking would pull the tool from under a running kubectl
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _config_digest(node_binaries: list[Path]) -> str:
    """A running cluster made from other stage or node files, or other node binaries, is made anew."""
    import hashlib

    files = ("kwok.yaml", "nodes.yaml", "localcluster.py", "hostnet.py", "realnode.py", "images.py")
    data = b"".join((HERE / f).read_bytes() for f in files) + str(node_binaries).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _pki() -> Path:
    return WORKDIR / "clusters" / NAME / "pki"


def _kwok_config() -> Path:
    """kwok.yaml with the cluster's address ranges and certificate paths filled in."""
    text = (HERE / "kwok.yaml").read_text()
    for token, value in {"@@services@@": hostnet.SERVICES, "@@kwok-pods@@": hostnet.KWOK_PODS,
                         "@@kubernetes-service@@": hostnet.kubernetes_service_ip(),
                         "@@bridge@@": hostnet.BRIDGE_ADDRESS.split("/")[0], "@@pki@@": str(_pki())}.items():
        text = text.replace(token, value)
    out = STATE / "kwok-config.yaml"
    out.write_text(text)
    return out


def _node() -> realnode.Node:
    return realnode.Node(STATE, STATE / "node-bin", _pki(), KUBECONFIG, BIN / "coredns")


def kubectl(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the cluster's kubectl against its kubeconfig."""
    return subprocess.run([str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args],
                          capture_output=True, text=True, check=check, timeout=timeout)


def is_ready() -> bool:
    """True when the API server answers /readyz with our kubeconfig."""
    if not KUBECONFIG.exists() or not (BIN / "kubectl").exists():
        return False
    try:
        return kubectl("get", "--raw=/readyz", check=False, timeout=5).stdout.strip() == "ok"
    except subprocess.TimeoutExpired:
        return False


def _cluster_logs() -> Path:
    return WORKDIR / "clusters" / NAME / "logs"


def _diagnose() -> str:
    """Name the component that is not running, and where its log is."""
    lines = []
    pids = WORKDIR / "clusters" / NAME / "pids"
    for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"):
        pidfile = pids / f"{comp}.pid"
        alive = False
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 0)
                alive = True
            except (ValueError, ProcessLookupError, PermissionError):
                alive = False
        if not alive:
            lines.append(f"  {comp} is not running; its log: {LOGS / (comp + '.log')}")
    return "\n".join(lines) or f"  every component is running; logs are in {LOGS}"


def _link_logs() -> None:
    if LOGS.is_symlink() or LOGS.exists():
        if LOGS.is_symlink():
            LOGS.unlink()
        else:
            shutil.rmtree(LOGS)
    LOGS.symlink_to(_cluster_logs())


def up() -> Path:
    """Start the cluster if it is not running; return the kubeconfig path."""
    start = time.monotonic()
    cache = build()
    node_binaries: list[Path] = []
    archives: list[Path] = []
    if real_node():
        _install_packages()
        node_cache = _build("node")
        _link_node_bin(node_cache)
        _link("versitygw", _build("s3") / "versitygw")  # the tests' S3 server, for models on the real node
        dns = _build("dns")  # the pods' DNS server
        _link("coredns", dns / "coredns")
        node_binaries = [node_cache, dns]  # either one rebuilt: the node is made anew
        try:
            archives = _node().build_images(IMAGES, _say)
        except images.ImageError as exc:
            raise ClusterError(f"the real node's images could not be built: {exc}") from exc
    # The readiness deadlines count from here: a first build takes many minutes and must not use them up.
    built = time.monotonic()
    digest_file = STATE / "config-digest"
    current = digest_file.read_text() if digest_file.exists() else ""
    if is_ready() and current == _config_digest(node_binaries) and (not real_node() or _node().running()):
        _say(f"cluster already running ({time.monotonic() - start:.1f} s)")
        return KUBECONFIG
    # A stopped or half-made cluster: remove it and make a new one.
    _teardown()
    STATE.mkdir(exist_ok=True)
    if not HOST_BEFORE.exists():
        if real_node():
            # An earlier cluster of any checkout that ended without `down` is not part of the host as it was.
            _node().clear_orphans()
            hostnet.teardown()
        HOST_BEFORE.write_text(json.dumps(hostnet.snapshot(), indent=1))
    if real_node():
        hostnet.require_root("the real node")
        hostnet.setup()
    _say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager, "
         "kube-scheduler, kwok)")
    cmd = [
        str(BIN / "kwokctl"), "create", "cluster", f"--name={NAME}", "--runtime=binary",
        f"--kubeconfig={KUBECONFIG}", f"--config={_kwok_config()}",
        "--kube-authorization=true", "--kube-admission=true",
        f"--kube-apiserver-binary={cache / 'kube-apiserver'}",
        f"--kube-controller-manager-binary={cache / 'kube-controller-manager'}",
        f"--kube-scheduler-binary={cache / 'kube-scheduler'}",
        f"--kwok-controller-binary={cache / 'kwok'}",
        f"--etcd-binary={cache / 'etcd'}",
        f"--timeout={READY_TIMEOUT}s", f"--wait={READY_TIMEOUT}s",
    ]
    KUBECONFIG.unlink(missing_ok=True)
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if _cluster_logs().exists():
        _link_logs()
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ClusterError(f"kwokctl could not start the cluster:\n{tail}\n{_diagnose()}")
    _wait_ready(built)
    if real_node():
        hostnet.guard_control_plane(*_control_plane_ports())
    kubectl("apply", "-f", str(HERE / "nodes.yaml"))
    _wait_nodes(built)
    if real_node():
        _say(f"starting the real node {realnode.NAME} (containerd, kubelet, kube-proxy)")
        try:
            _node().start(archives, kubectl, timeout=READY_TIMEOUT)
        except (realnode.NodeError, OSError) as exc:
            raise ClusterError(f"the real node did not start: {exc}") from exc
    digest_file.write_text(_config_digest(node_binaries))
    _say(f"cluster ready in {time.monotonic() - start:.1f} s; logs in {LOGS}")
    return KUBECONFIG


def _control_plane_ports() -> tuple[int, list[int]]:
    """kube-apiserver's port and the other components' (etcd's, the controllers', kwok's), as kwokctl chose them
    and wrote them in the cluster's kwok.yaml."""
    text = (WORKDIR / "clusters" / NAME / "kwok.yaml").read_text()
    ports = {name: int(port) for name, port in re.findall(r"^\s+([a-zA-Z]+Port): (\d+)\s*$", text, flags=re.M)}
    if "kubeApiserverPort" not in ports or "etcdPort" not in ports:
        raise ClusterError(f"kwokctl's {WORKDIR / 'clusters' / NAME / 'kwok.yaml'} names no kube-apiserver or etcd "
                           "port")
    return ports.pop("kubeApiserverPort"), [p for p in ports.values() if p]


def _wait_ready(start: float) -> None:
    deadline = start + READY_TIMEOUT
    while time.monotonic() < deadline:
        if is_ready():
            return
        time.sleep(0.5)
    raise ClusterError(f"kube-apiserver did not answer /readyz within {READY_TIMEOUT} s\n{_diagnose()}")


def _wait_nodes(start: float) -> None:
    deadline = start + READY_TIMEOUT
    while time.monotonic() < deadline:
        out = kubectl("get", "nodes", "-o", "json", check=False).stdout
        try:
            nodes = json.loads(out)["items"]
        except (ValueError, KeyError):
            nodes = []
        ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in n.get("status", {}).get("conditions", []))]
        if nodes and len(ready) == len(nodes):
            return
        time.sleep(0.5)
    raise ClusterError(f"the KWOK nodes did not become Ready within {READY_TIMEOUT} s; "
                       f"kwok-controller's log: {LOGS / 'kwok-controller.log'}")


def _kwokctl_delete() -> None:
    kwokctl = BIN / "kwokctl"
    if kwokctl.exists() and (WORKDIR / "clusters" / NAME).exists():
        subprocess.run([str(kwokctl), "delete", "cluster", f"--name={NAME}", f"--kubeconfig={KUBECONFIG}"],
                       env=_env(), capture_output=True, text=True)
    # Whatever kwokctl could not stop (a crashed delete, a lost pid file).
    _kill_leftovers()
    if (WORKDIR / "clusters" / NAME).exists():
        shutil.rmtree(WORKDIR / "clusters" / NAME, ignore_errors=True)


def _kill_leftovers() -> None:
    realnode.kill_matching(str(WORKDIR / "clusters" / NAME))


def _link_node_bin(cache: Path) -> None:
    link = STATE / "node-bin"
    if link.is_symlink() and link.readlink() == cache:
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(cache)


def _teardown() -> None:
    """Stop the real node and the control plane, and undo the host changes."""
    node = _node()
    if node.dir.exists():
        node.stop(kubectl if is_ready() else None)
    _kwokctl_delete()
    hostnet.teardown()
    if HOST_BEFORE.exists():
        before = json.loads(HOST_BEFORE.read_text())
        hostnet.drop_new_tables(before.get("nftables", []))
        for name, value in before.get("sysctls", {}).items():
            hostnet.write_sysctl(name, value)
        for path in hostnet.HOST_DIRS:
            if path not in before.get("dirs", []) and os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
    if node.dir.exists():
        shutil.rmtree(node.dir, ignore_errors=True)


def host_differences() -> list[str]:
    """How the host differs from before the cluster first started (empty once it is restored)."""
    if not HOST_BEFORE.exists():
        return []
    return hostnet.differences(json.loads(HOST_BEFORE.read_text()), hostnet.snapshot())


def down() -> None:
    """Stop every process of the cluster, free its ports, and put the host back as it was; idempotent."""
    _teardown()
    KUBECONFIG.unlink(missing_ok=True)
    if LOGS.is_symlink():
        LOGS.unlink()
    left = host_differences()
    if left:
        raise ClusterError("the cluster stopped, but the host is not as it was before it started:\n  "
                           + "\n  ".join(left) + f"\n(the state before is kept in {HOST_BEFORE})")
    HOST_BEFORE.unlink(missing_ok=True)
    _say("cluster stopped")


def image() -> str:
    """Build the operator's image from the Dockerfile (once per content) and import it into the running real
    node, under the name and tag the Helm chart uses by default; return that name."""
    if not real_node():
        raise ClusterError("the operator image runs on the real node, and MODELDEPLOY_REAL_NODE=0 has none")
    node = _node()
    if not (is_ready() and node.running()):
        raise ClusterError("the cluster and its real node are not running: make cluster")
    if not shutil.which("buildah"):
        _install(["buildah"], "for the operator image")
    try:
        archive = operator_image.build(IMAGES, _say)
        images.load(archive, node.bin / "ctr", str(node.socket))
    except images.ImageError as exc:
        raise ClusterError(f"the operator image could not be built: {exc}") from exc
    return operator_image.reference()


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "up"
    try:
        if cmd == "up":
            print(up())
        elif cmd == "down":
            down()
        elif cmd == "build":
            print(build())
        elif cmd == "image":
            print(image())
        elif cmd == "status":
            print("running" if is_ready() else "stopped")
            return 0 if is_ready() else 1
        else:
            _say(f"usage: {argv[0]} up|down|status|build|image")
            return 2
    except ClusterError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
