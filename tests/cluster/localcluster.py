"""The local control plane: real upstream Kubernetes components, KWOK nodes.

`python3 tests/cluster/localcluster.py up|down|status` starts, stops or
reports one cluster for this checkout. It builds the binaries from the pinned
Go modules beside this file (cached under ~/.cache/modeldeploy), then lets
kwokctl's binary runtime run them: it already knows the flags and the
certificates, and it picks free ports, so a taken port never clashes.

Standard library only: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def build() -> Path:
    """Build (or find cached) binaries and link them into .cluster/bin."""
    proc = subprocess.run(["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ClusterError("building the local control plane failed (see the messages above)")
    cache = Path(proc.stdout.strip().splitlines()[-1])
    BIN.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        link = BIN / tool
        if link.is_symlink() and link.readlink() == cache / tool:
            continue  # relinking would pull the tool from under a running kubectl
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(cache / tool)
    return cache


def _config_digest() -> str:
    """A running cluster made from other stage or node files is made anew."""
    import hashlib

    data = b"".join((HERE / f).read_bytes() for f in ("kwok.yaml", "nodes.yaml", "localcluster.py"))
    return hashlib.sha256(data).hexdigest()[:16]


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
    # The readiness deadlines count from here: a first build takes many minutes and must not use them up.
    built = time.monotonic()
    digest_file = STATE / "config-digest"
    current = digest_file.read_text() if digest_file.exists() else ""
    if is_ready() and current == _config_digest():
        _say(f"cluster already running ({time.monotonic() - start:.1f} s)")
        return KUBECONFIG
    # A stopped or half-made cluster: remove it and make a new one.
    _kwokctl_delete()
    STATE.mkdir(exist_ok=True)
    _say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager, "
         "kube-scheduler, kwok)")
    cmd = [
        str(BIN / "kwokctl"), "create", "cluster", f"--name={NAME}", "--runtime=binary",
        f"--kubeconfig={KUBECONFIG}", f"--config={HERE / 'kwok.yaml'}",
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
    kubectl("apply", "-f", str(HERE / "nodes.yaml"))
    _wait_nodes(built)
    digest_file.write_text(_config_digest())
    _say(f"cluster ready in {time.monotonic() - start:.1f} s; logs in {LOGS}")
    return KUBECONFIG


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
    marker = str(WORKDIR / "clusters" / NAME)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), 9)


def down() -> None:
    """Stop every process of the cluster and free its ports; idempotent."""
    _kwokctl_delete()
    KUBECONFIG.unlink(missing_ok=True)
    if LOGS.is_symlink():
        LOGS.unlink()
    _say("cluster stopped")


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "up"
    try:
        if cmd == "up":
            print(up())
        elif cmd == "down":
            down()
        elif cmd == "build":
            print(build())
        elif cmd == "status":
            print("running" if is_ready() else "stopped")
            return 0 if is_ready() else 1
        else:
            _say(f"usage: {argv[0]} up|down|status|build")
            return 2
    except ClusterError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
