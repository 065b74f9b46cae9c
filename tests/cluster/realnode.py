"""The local control plane's real node: containerd, kubelet and kube-proxy on this machine.

KWOK nodes stay for scale and failure simulation; this node runs real
containers, so probes, images, the storage initializer and the traffic split
clients see are tested with real parts. It carries the label and the taint
below, which real-pod tests select and tolerate, so KWOK-based tests never land
on it.

Everything it writes lives under .cluster/node, except what the kubelet and
containerd put in fixed places (hostnet.HOST_DIRS); `stop()` removes it all.
Standard library only, like localcluster.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import hostnet
import images

HERE = Path(__file__).resolve().parent
NAME = "modeldeploy-node"
LABEL = "modeldeploy.dev/real-node"
TAINT = f"{LABEL}=true:NoSchedule"
KUBELET_PORT = 10250
RUNC = "/usr/sbin/runc"
PAUSE = f"{images.REGISTRY}/pause:{images.TAG}"
ECHO_SERVER = f"{images.REGISTRY}/echo-server:{images.TAG}"
# The mlserver runtime preset's image, built here under the preset's name (operator/modeldeploy/desired/
# runtime.py; a unit test holds the two equal), so the preset is tested as a platform team runs it.
MLSERVER = "docker.io/seldonio/mlserver:1.6.1"
# The storage initializer, likewise under the operator's default --storage-initializer-image (a unit test holds
# them equal), running this kserve-storage: the storage code of KServe's image of the same version.
KSERVE_STORAGE = "0.21.0"
STORAGE_INITIALIZER = f"docker.io/kserve/storage-initializer:v{KSERVE_STORAGE}"
# The scikit-learn the tests train with (pyproject.toml's dev extra): a pickled model loads only in the same one.
SKLEARN = "scikit-learn==1.9.1"
# Started in this order, stopped in the reverse one.
PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")
# The cluster's DNS server listens on the bridge's address, where every pod's resolv.conf points.
DNS_READY_PORT = 10262
# kubelet's iptables chains (kube-proxy's nftables tables go with `kube-proxy --cleanup`).
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
CGROUP_ROOT = "modeldeploy"
NO_REGISTRY = "http://127.0.0.1:9"


class NodeError(RuntimeError):
    """The real node could not start; the message says which part and where its log is."""


class Node:
    """Paths and processes of the real node of one checkout's cluster."""

    def __init__(self, state: Path, bin_dir: Path, pki: Path, kubeconfig: Path, coredns: Path) -> None:
        self.dir = state / "node"
        self.bin = bin_dir
        self.coredns = coredns
        self.pki = pki
        self.kubeconfig = kubeconfig
        self.logs = self.dir / "logs"
        self.pids = self.dir / "pids"
        self.socket = self.dir / "containerd.sock"

    # -- configuration -------------------------------------------------------------------

    def containerd_config(self) -> str:
        d = self.dir / "containerd"
        return f"""version = 3
root = "{d / 'root'}"
state = "{d / 'state'}"

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{self.dir / 'registries'}"

[plugins."io.containerd.cri.v1.runtime"]
  # root here may not lower oom_score_adj (no CAP_SYS_RESOURCE): without this every
  # sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{self.bin}"]
    conf_dir = "{self.dir / 'cni' / 'net.d'}"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{d / 'runc'}"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
"""

    def cni_config(self) -> str:
        return json.dumps({
            "cniVersion": "1.0.0",
            "name": "modeldeploy",
            "plugins": [
                {"type": "bridge", "bridge": hostnet.BRIDGE, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.dir / "cni" / "ipam"),
                          "ranges": [[{"subnet": hostnet.NODE_PODS,
                                       "gateway": hostnet.BRIDGE_ADDRESS.split("/")[0]}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }, indent=2)

    def kubelet_config(self) -> str:
        node_ip = hostnet.BRIDGE_ADDRESS.split("/")[0]
        return json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host has cgroup v1 hierarchies; kubelet refuses them unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            # The node's pods live in their own cgroup subtree, removed on teardown.
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # Only on the bridge's address: the kubelet port is not open on the host's network.
            "address": node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.pki / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "podCIDR": hostnet.NODE_PODS,
            "podLogsDir": str(self.dir / "pod-logs"),
            # Pods get no copy of the host's resolver (its server is outside the cluster's block), only CoreDNS.
            "resolvConf": "",
            "clusterDNS": [node_ip],
            "clusterDomain": "cluster.local",
            "failSwapOn": False,
            "maxPods": 40,
            "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
            # Local images are never pulled again, so they must never be collected.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "logging": {"verbosity": 1},
        }, indent=2)

    def kube_proxy_config(self) -> str:
        return json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "hostnameOverride": NAME,
            "clusterCIDR": hostnet.BLOCK,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # NodePorts open on the bridge only, never on the host's own network.
            "nodePortAddresses": [hostnet.NODE_PODS],
            # Zero: kube-proxy leaves the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }, indent=2)

    def corefile(self) -> str:
        """Service and pod names of cluster.local and their reverse zones, and nothing else: with no zone for
        other names and no forward plugin, CoreDNS refuses them, so no query leaves this machine."""
        node_ip = hostnet.BRIDGE_ADDRESS.split("/")[0]
        return f"""cluster.local:53 in-addr.arpa:53 {{
    bind {node_ip}
    errors
    ready 127.0.0.1:{DNS_READY_PORT}
    kubernetes cluster.local {' '.join(hostnet.reverse_zones())} {{
        kubeconfig {self.kubeconfig}
        ttl 5
    }}
    cache 5
}}
"""

    def write_configs(self) -> None:
        for sub in ("logs", "pids", "cni/net.d", "cni/ipam", "pod-logs", "kubelet", "containerd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "containerd.toml").write_text(self.containerd_config())
        # Nothing is pulled: every registry is a closed port on loopback, so a pod naming an image the node lacks
        # fails at once (ErrImagePull, then ImagePullBackOff) and no request, not even a name lookup, leaves.
        (self.dir / "registries" / "_default").mkdir(parents=True, exist_ok=True)
        (self.dir / "registries" / "_default" / "hosts.toml").write_text(f'server = "{NO_REGISTRY}"\n')
        (self.dir / "cni" / "net.d" / "10-modeldeploy.conflist").write_text(self.cni_config())
        (self.dir / "kubelet.json").write_text(self.kubelet_config())
        (self.dir / "kube-proxy.json").write_text(self.kube_proxy_config())
        (self.dir / "Corefile").write_text(self.corefile())

    def commands(self) -> dict[str, list[str]]:
        node_ip = hostnet.BRIDGE_ADDRESS.split("/")[0]
        return {
            "containerd": [str(self.bin / "containerd"), f"--config={self.dir / 'containerd.toml'}"],
            "kubelet": [str(self.bin / "kubelet"), f"--config={self.dir / 'kubelet.json'}",
                        f"--kubeconfig={self.kubeconfig}", f"--root-dir={self.dir / 'kubelet'}",
                        f"--cert-dir={self.dir / 'kubelet' / 'pki'}", f"--hostname-override={NAME}",
                        f"--node-ip={node_ip}", f"--node-labels={LABEL}=true"],
            "kube-proxy": [str(self.bin / "kube-proxy"), f"--config={self.dir / 'kube-proxy.json'}"],
            "coredns": [str(self.coredns), "-conf", str(self.dir / "Corefile")],
        }

    # -- images --------------------------------------------------------------------------

    def recipes(self) -> list[images.Recipe]:
        return [
            images.Recipe("pause", {"/pause": self.bin / "pause"}, ("/pause",)),
            images.Recipe("echo-server", {"/echo-server": self.bin / "echo-server"}, ("/echo-server",)),
            # As upstream's image: `mlserver start` on the models folder, as user 1000, in a folder of that
            # user's (MLServer writes its metrics' files under the working directory).
            images.Recipe("mlserver", {}, ("/opt/venv/bin/mlserver", "start", "/mnt/models"), user="1000:1000",
                          env=("PATH=/opt/venv/bin:/usr/bin:/bin", "HOME=/tmp"),
                          debian=("python3", "python3-venv", "ca-certificates"),
                          # uvloop 0.22 broke MLServer 1.6.1's inference workers ("no current event loop");
                          # upstream's image locks an older one.
                          pip=("mlserver==1.6.1", "mlserver-sklearn==1.6.1", "uvloop==0.21.0", SKLEARN),
                          name_as=MLSERVER,
                          workdir="/opt/mlserver"),
            # KServe's storage code, under the name and tag the operator's --storage-initializer-image
            # defaults to; as a non-root user, as the operator's init containers run. On Debian trixie: it
            # unpacks archives with tarfile's filter, which needs Python 3.11.4 or later (bookworm has 3.11.2).
            images.Recipe("storage-initializer", {"/opt/storage-initializer.py": HERE / "storage_initializer.py"},
                          ("/opt/venv/bin/python", "/opt/storage-initializer.py"), user="1000:1000",
                          env=("PATH=/opt/venv/bin:/usr/bin:/bin", "HOME=/tmp"),
                          debian=("python3", "python3-venv", "ca-certificates"), suite="trixie",
                          pip=(f"kserve-storage=={KSERVE_STORAGE}",), name_as=STORAGE_INITIALIZER),
        ]

    def build_images(self, cache: Path, say) -> list[Path]:
        """Every image's archive, built the first time (minutes for the Debian-based ones), cached after."""
        out, recipes = [], self.recipes()
        for i, recipe in enumerate(recipes, 1):
            if images.built(recipe, cache):
                out.append(images.build(recipe, cache))
                continue
            began = time.monotonic()
            say(f"  building image {i} of {len(recipes)}, {recipe.reference} (the first time only)")
            out.append(images.build(recipe, cache))
            say(f"  built {recipe.reference} in {time.monotonic() - began:.0f} s")
        return out

    # -- processes -----------------------------------------------------------------------

    def _pid(self, name: str) -> int | None:
        try:
            pid = int((self.pids / f"{name}.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return all(self._pid(name) for name in PROCESSES)

    def _start(self, name: str) -> None:
        env = dict(os.environ)
        # containerd finds its shim on PATH; the CNI plugins find iptables and nft there too.
        env["PATH"] = f"{self.bin}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(self.commands()[name], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        (self.pids / f"{name}.pid").write_text(str(proc.pid))

    def _wait(self, what: str, ready, deadline: float, log: str) -> None:
        while time.monotonic() < deadline:
            if ready():
                return
            if self._pid(log) is None:
                break
            time.sleep(0.2)
        tail = "\n".join((self.logs / f"{log}.log").read_text(errors="replace").splitlines()[-15:])
        raise NodeError(f"{what}; {log}'s log: {self.logs / (log + '.log')}\n{tail}")

    def start(self, archives: list[Path], kubectl, timeout: float = 120) -> None:
        """Start containerd, load the images, start kubelet and kube-proxy; wait for the node."""
        if _port_taken(KUBELET_PORT):
            raise NodeError(f"port {KUBELET_PORT} (the kubelet's) is taken by another program; "
                            "stop it, or MODELDEPLOY_REAL_NODE=0 for the KWOK-only cluster")
        self.write_configs()
        deadline = time.monotonic() + timeout
        self._start("containerd")
        self._wait("containerd did not open its socket", self.socket.exists, deadline, "containerd")
        for archive in archives:
            images.load(archive, self.bin / "ctr", str(self.socket))
        _make_cgroups(CGROUP_ROOT)
        self._start("kubelet")
        self._wait(f"the kubelet did not register a Ready node {NAME}",
                   lambda: _node_ready(kubectl), deadline, "kubelet")
        self._start("kube-proxy")
        self._wait("kube-proxy did not become healthy", _proxy_healthy, deadline, "kube-proxy")
        self._start("coredns")
        self._wait("CoreDNS did not become ready", lambda: _answers_ok(f"http://127.0.0.1:{DNS_READY_PORT}/ready"),
                   deadline, "coredns")

    def stop(self, kubectl) -> None:
        """Stop the node and remove what it made on the host; idempotent, and safe after a crash."""
        for name in ("coredns", "kube-proxy", "kubelet"):
            self._kill(name)
        kill_pods(self.dir)
        self._kill("containerd")
        kill_matching(str(self.socket))  # shims outlive containerd
        if (self.bin / "kube-proxy").exists():
            subprocess.run([str(self.bin / "kube-proxy"), "--cleanup"], capture_output=True)
        _remove_kubelet_chains()
        _unmount_under(self.dir)
        _unmount_netns()
        _remove_cgroups(CGROUP_ROOT)
        if kubectl is not None:
            kubectl("delete", "node", NAME, "--ignore-not-found", "--wait=false", check=False)

    def clear_orphans(self) -> None:
        """Remove the host changes of a node that ended without `stop` (its processes killed with the machine's
        others): kube-proxy's tables, the kubelet's chains and the pods' network namespaces. Only while no node
        program runs here, so they belong to no running node. Without this the host is recorded with them in it,
        and `down`, which removes them, finds the host changed."""
        if any(_running(name) for name in ("kubelet", "kube-proxy", "containerd")):
            return
        if (self.bin / "kube-proxy").exists():
            subprocess.run([str(self.bin / "kube-proxy"), "--cleanup"], capture_output=True)
        _remove_kubelet_chains()
        _unmount_netns()

    def _kill(self, name: str) -> None:
        pid = self._pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if self._pid(name) is None:
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((hostnet.BRIDGE_ADDRESS.split("/")[0], port))
        except OSError:
            return True
    return False


def _node_ready(kubectl) -> bool:
    out = kubectl("get", "node", NAME, "-o", "json", check=False).stdout
    try:
        conditions = json.loads(out)["status"]["conditions"]
    except (ValueError, KeyError):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _proxy_healthy() -> bool:
    return _answers_ok("http://127.0.0.1:10256/healthz")


def _answers_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _pids_matching(marker: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            out.append(int(proc.name))
    return out


def _running(program: str) -> bool:
    """Whether a process of that name runs on this machine (any checkout's, or not ours at all)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == program:
                return True
        except OSError:
            continue
    return False


def kill_matching(marker: str) -> None:
    """SIGKILL every process whose command line names `marker` (a folder of this cluster's)."""
    for pid in _pids_matching(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy's mount point (v1 ones, and the v2 one if mounted)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] in ("cgroup", "cgroup2"):
            out.append(Path(fields[4]))
    return out


def _cgroup_dirs(root: str) -> list[Path]:
    return [m / root for m in _cgroup_mounts() if (m / root).is_dir()]


def _make_cgroups(root: str) -> None:
    """The kubelet's cgroupRoot must exist in every hierarchy before it starts."""
    for mount in _cgroup_mounts():
        path = mount / root
        path.mkdir(exist_ok=True)
        # A new v1 cpuset has no CPUs or memory nodes until given its parent's.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (mount / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((mount / name).read_text())


def kill_pods(node_dir: Path) -> None:
    """SIGKILL every process in the node's pod cgroups: containers outlive their shims."""
    for _ in range(3):
        pids = set()
        for base in _cgroup_dirs(CGROUP_ROOT):
            for tasks in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in tasks.read_text().split())
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)


def _remove_cgroups(root: str) -> None:
    for base in _cgroup_dirs(root):
        for path in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def _unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below `path`, deepest first (the kubelet bind-mounts its root)."""
    prefix = str(path)
    for _ in range(5):
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        ours = sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True)
        if not ours:
            return
        for point in ours:
            subprocess.run(["umount", "-l", point], capture_output=True)


def _unmount_netns() -> None:
    """The pod network namespaces containerd pinned under /run/netns (cni-*)."""
    netns = Path("/run/netns")
    if not netns.is_dir():
        return
    for ns in netns.glob("cni-*"):
        subprocess.run(["umount", "-l", str(ns)], capture_output=True)
        with contextlib.suppress(OSError):
            ns.unlink()


def _remove_kubelet_chains() -> None:
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle"):
            rules = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True).stdout
            for line in rules.splitlines():
                # Jumps into the kubelet's chains from the built-in ones go first.
                if line.startswith("-A ") and any(f"-j {c}" in line for c in KUBELET_CHAINS):
                    subprocess.run([tool, "-t", table, *shlex.split(line.replace("-A ", "-D ", 1))],
                                   capture_output=True)
            for chain in KUBELET_CHAINS:
                subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
                subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)
