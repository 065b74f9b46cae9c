"""The local control plane's addresses, and the host changes that keep them on this machine.

Every pod and Service address lives in 198.18.0.0/15, a block reserved for
benchmarking that no real network uses. The block is routed into the cluster's
bridge, and an nftables rule drops anything for it that would leave by another
interface: with a real kube-proxy, a request to the ClusterIP of a KWOK-backed
Service is rewritten to a made-up pod IP, and without the route it would head
for the default gateway. (An `unreachable` route is not enough: the kernel
looks the route up before kube-proxy's DNAT, so it would also refuse the host's
own connections to ClusterIPs.)

`record()` keeps the host's state as it was before the cluster changed it;
`restore()` undoes the changes and `differences()` says what is still not as it
was. Standard library only, like localcluster.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

BLOCK = "198.18.0.0/15"
KWOK_PODS = "198.18.0.0/16"    # KWOK hands out pod IPs from here (pods that never run)
NODE_PODS = "198.19.0.0/24"    # the real node's pods (its podCIDR); .1 is the bridge
SERVICES = "198.19.128.0/17"   # ClusterIPs
BRIDGE = "mdbr0"
BRIDGE_ADDRESS = "198.19.0.1/24"
GUARD_TABLE = "modeldeploy_guard"

# What the kubelet, the bridge plugin and this module set; restored on teardown.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.conf.all.route_localnet",
)
# Folders the kubelet, containerd and the CNI plugins use whatever their configuration says.
HOST_DIRS = ("/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/var/log/pods",
             "/run/containerd", "/run/netns", "/etc/cni", "/opt/cni")


class HostError(RuntimeError):
    """The host could not be prepared; the message says what to do."""


def kubernetes_service_ip() -> str:
    """The `kubernetes` Service's ClusterIP: kube-apiserver gives it the Service range's first address."""
    return str(ipaddress.ip_network(SERVICES).network_address + 1)


def reverse_zones() -> list[str]:
    """The in-addr.arpa zones of the block (one per /16), for the cluster DNS's reverse lookups."""
    block = ipaddress.ip_network(BLOCK)
    return [".".join(str(n.network_address).split(".")[1::-1]) + ".in-addr.arpa" for n in block.subnets(new_prefix=16)]


def ranges_are_consistent() -> bool:
    """Every range sits inside the block, and the pod and Service ranges do not overlap."""
    block = ipaddress.ip_network(BLOCK)
    nets = [ipaddress.ip_network(r) for r in (KWOK_PODS, NODE_PODS, SERVICES)]
    inside = all(n.subnet_of(block) for n in nets)
    apart = not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    bridge = ipaddress.ip_interface(BRIDGE_ADDRESS)
    return inside and apart and bridge.network == ipaddress.ip_network(NODE_PODS)


def _run(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, input=input)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        path = _sysctl_path(name)
        if path.exists():
            out[name] = path.read_text().strip()
    return out


def write_sysctl(name: str, value: str) -> None:
    path = _sysctl_path(name)
    if path.exists() and path.read_text().strip() != value:
        path.write_text(value)


def snapshot() -> dict[str, object]:
    """What the cluster may change on the host, in a form two snapshots compare by."""
    links = json.loads(_run("ip", "-j", "link", "show").stdout or "[]")
    routes = json.loads(_run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    state: dict[str, object] = {
        "sysctls": read_sysctls(),
        "links": sorted(link["ifname"] for link in links),
        # (without a route's remaining lifetime, which counts down by itself)
        "routes": sorted(json.dumps({k: v for k, v in r.items() if k != "expires"}, sort_keys=True) for r in routes),
        "dirs": sorted(d for d in HOST_DIRS if os.path.lexists(d)),
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
    }
    if shutil.which("nft"):
        state["nftables"] = sorted(_run("nft", "list", "tables", check=False).stdout.splitlines())
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            lines = _run(tool, check=False).stdout.splitlines()
            # Counters and the dump's own comments change with time, not with the cluster.
            state[tool] = sorted(line for line in lines if line and not line.startswith(("#", ":")))
            state[tool + " chains"] = sorted(line.split()[0] for line in lines if line.startswith(":"))
    return state


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """Each way the host differs from `before`, one line each."""
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        if isinstance(b, dict) and isinstance(a, dict):
            for name in sorted(set(b) | set(a)):
                if b.get(name) != a.get(name):
                    out.append(f"{key}: {name} was {b.get(name)!r}, is {a.get(name)!r}")
        elif isinstance(b, list) and isinstance(a, list):
            out.extend(f"{key}: added {x}" for x in a if x not in b)
            out.extend(f"{key}: removed {x}" for x in b if x not in a)
        else:
            out.append(f"{key}: was {b!r}, is {a!r}")
    return out


def guard_rules() -> str:
    """The nftables table that keeps the block on this machine."""
    return f"""table inet {GUARD_TABLE} {{
  chain keep_local {{
    type filter hook postrouting priority 0; policy accept;
    ip daddr {BLOCK} oifname {{ "lo", "{BRIDGE}" }} accept
    ip daddr {BLOCK} oifname "veth*" accept
    ip daddr {BLOCK} counter drop comment "the cluster's addresses never leave this machine"
  }}
}}
"""


def control_plane_rules(apiserver: int, others: list[int]) -> str:
    """A chain of the guard that keeps the control plane's ports to this machine. kwokctl's components listen
    on every interface, etcd without any authentication; only loopback reaches them, and the real node's pods
    (through the bridge) reach kube-apiserver alone."""
    ports = ", ".join(str(p) for p in sorted({apiserver, *others}))
    return f"""table inet {GUARD_TABLE} {{
  chain control_plane {{
    type filter hook input priority 0; policy accept;
    iifname "lo" accept
    iifname "{BRIDGE}" tcp dport {apiserver} accept
    tcp dport {{ {ports} }} counter drop comment "the control plane answers on this machine only"
  }}
}}
"""


def guard_control_plane(apiserver: int, others: list[int]) -> None:
    _run("nft", "-f", "-", input=control_plane_rules(apiserver, others))


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HostError(f"{what} changes the host's network (a bridge, a route, an nftables table) "
                        "and needs root; run as root, or MODELDEPLOY_REAL_NODE=0 for the KWOK-only cluster")
    if not shutil.which("nft"):
        raise HostError("nft is needed to keep the cluster's addresses on this machine: "
                        "apt-get install nftables (make cluster installs it on Debian)")


def setup() -> None:
    """The bridge, the route of the whole block into it, and the guard; idempotent."""
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-j", "addr", "show", "dev", BRIDGE).stdout
    if BRIDGE_ADDRESS.split("/")[0] not in addrs:
        _run("ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    _run("ip", "route", "replace", BLOCK, "dev", BRIDGE)
    _run("nft", "delete", "table", "inet", GUARD_TABLE, check=False)
    _run("nft", "-f", "-", input=guard_rules())


def teardown() -> None:
    """Remove the guard, the route, the bridge and any pod links left on it; idempotent."""
    if shutil.which("nft"):
        _run("nft", "delete", "table", "inet", GUARD_TABLE, check=False)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        for port in Path(f"/sys/class/net/{BRIDGE}/brif").iterdir():
            _run("ip", "link", "delete", port.name, check=False)
        _run("ip", "link", "delete", BRIDGE, check=False)


def drop_new_tables(before: list[str]) -> None:
    """Delete nftables tables that appeared since `before` and hold no rules.

    iptables (the nft backend the kubelet calls) makes the filter, nat and mangle
    tables when it first adds a chain, and leaves them behind empty.
    """
    if not shutil.which("nft"):
        return
    for line in _run("nft", "list", "tables", check=False).stdout.splitlines():
        if line in before or not line.startswith("table "):
            continue
        family, name = line.split()[1:3]
        body = _run("nft", "list", "table", family, name, check=False).stdout.splitlines()
        rules = [x for x in body if x.strip() and not x.strip().startswith(("table ", "chain ", "type ", "}"))]
        if not rules:
            _run("nft", "delete", "table", family, name, check=False)


def route_of(address: str) -> dict[str, str]:
    """The kernel's route for `address`: its device and gateway, if any."""
    out = json.loads(_run("ip", "-j", "route", "get", address).stdout or "[{}]")
    return out[0] if out else {}
