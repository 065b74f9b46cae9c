"""The local control plane's pure parts: its addresses and record of the host (tests/cluster/hostnet.py), and
what the real node's images promise (tests/cluster/realnode.py)."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import hostnet
import operator_image
import realnode

BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544: no real network uses it


def test_every_cluster_range_is_inside_the_benchmarking_block_and_they_do_not_overlap():
    assert ipaddress.ip_network(hostnet.BLOCK) == BENCHMARKING
    assert hostnet.ranges_are_consistent()


def test_the_kwok_config_names_no_range_of_its_own():
    # kwok.yaml takes its ranges from hostnet.py (filled in by localcluster.py), never a literal 10.x.
    text = (Path(hostnet.__file__).parent / "kwok.yaml").read_text()
    assert "@@services@@" in text and "@@kwok-pods@@" in text
    assert "10.96." not in text and "10.0.0." not in text


def test_the_guard_drops_the_whole_block_except_into_the_bridge():
    rules = hostnet.guard_rules()
    assert f'ip daddr {hostnet.BLOCK} oifname {{ "lo", "{hostnet.BRIDGE}" }} accept' in rules
    assert rules.index("accept") < rules.index("drop")
    assert f"ip daddr {hostnet.BLOCK} counter drop" in rules
    assert "hook postrouting" in rules  # after kube-proxy's DNAT has chosen the real destination


@pytest.mark.parametrize(("before", "after", "expected"), [
    pytest.param({"sysctls": {"net.ipv4.ip_forward": "0"}}, {"sysctls": {"net.ipv4.ip_forward": "1"}},
                 ["sysctls: net.ipv4.ip_forward was '0', is '1'"], id="a-sysctl-left-changed"),
    pytest.param({"links": ["eth0", "lo"]}, {"links": ["eth0", "lo", "mdbr0"]},
                 ["links: added mdbr0"], id="a-link-left-behind"),
    pytest.param({"dirs": ["/etc/cni"]}, {"dirs": []}, ["dirs: removed /etc/cni"], id="a-folder-removed"),
    pytest.param({"nftables": ["table inet x"]}, {}, ["nftables: was ['table inet x'], is None"],
                 id="a-tool-gone"),
    pytest.param({"links": ["lo"], "sysctls": {"a": "1"}}, {"links": ["lo"], "sysctls": {"a": "1"}}, [],
                 id="restored"),
])
def test_differences_name_each_way_the_host_is_not_as_before(before, after, expected):
    assert hostnet.differences(before, after) == expected


def test_the_real_nodes_mlserver_image_is_the_one_the_preset_names():
    from modeldeploy.desired.runtime import PRESETS

    assert PRESETS["mlserver"].image == realnode.MLSERVER


def test_the_real_nodes_storage_initializer_is_the_operators_default():
    from modeldeploy.desired.settings import Settings

    assert Settings().storage_initializer_image == realnode.STORAGE_INITIALIZER


def test_the_tests_train_with_the_scikit_learn_the_mlserver_image_loads():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'"{realnode.SKLEARN}"' in pyproject
    mlserver = next(r for r in realnode.Node(Path("/x"), Path("/x"), Path("/x"), Path("/x"), Path("/x")).recipes()
                    if r.name == "mlserver")
    assert realnode.SKLEARN in mlserver.pip


NODE = realnode.Node(Path("/state"), Path("/bin"), Path("/pki"), Path("/kubeconfig"), Path("/coredns"))


def test_pods_ask_the_cluster_dns_which_answers_for_the_cluster_only():
    corefile, kubelet = NODE.corefile(), json.loads(NODE.kubelet_config())
    bridge = hostnet.BRIDGE_ADDRESS.split("/")[0]
    assert kubelet["clusterDNS"] == [bridge] and f"bind {bridge}\n" in corefile
    assert kubelet["resolvConf"] == ""  # no copy of the host's resolver, whose server is off the block
    # No forwarder and no catch-all zone: nothing is resolved by asking outside this machine.
    assert "forward" not in corefile and ".:53" not in corefile
    assert corefile.startswith("cluster.local:53 in-addr.arpa:53 {")
    assert "kubernetes cluster.local 18.198.in-addr.arpa 19.198.in-addr.arpa {" in corefile


def test_kube_apiserver_is_advertised_and_certified_where_pods_reach_it():
    text = (Path(hostnet.__file__).parent / "kwok.yaml").read_text()
    assert '{key: advertise-address, value: "@@bridge@@"}' in text
    assert 'kubeApiserverCertSANs: ["@@kubernetes-service@@", "@@bridge@@"]' in text
    assert ipaddress.ip_address(hostnet.kubernetes_service_ip()) in ipaddress.ip_network(hostnet.SERVICES)
    assert hostnet.kubernetes_service_ip() == "198.19.128.1"


def test_the_operator_image_is_built_under_the_charts_default_name_for_the_real_node():
    root = Path(__file__).resolve().parents[2]
    values = yaml.safe_load((root / "helm" / "modeldeploy" / "values.yaml").read_text())
    chart = yaml.safe_load((root / "helm" / "modeldeploy" / "Chart.yaml").read_text())
    assert operator_image.reference() == f"{values['image']['repository']}:{chart['appVersion']}"
    assert values["image"]["pullPolicy"] == "IfNotPresent"  # the node has it; it never pulls
    local = yaml.safe_load((root / "examples" / "local-cluster-values.yaml").read_text())
    assert local["nodeSelector"] == {realnode.LABEL: "true"}
    assert local["tolerations"] == [{"key": realnode.LABEL, "operator": "Exists", "effect": "NoSchedule"}]


def test_the_operator_image_key_follows_what_the_dockerfile_copies():
    files = {str(p.relative_to(operator_image.ROOT)) for p in operator_image._context_files()}
    assert {"pyproject.toml", "README.md", "operator/modeldeploy/__init__.py"} <= files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_only_loopback_reaches_the_control_plane_and_pods_reach_kube_apiserver_alone():
    rules = hostnet.control_plane_rules(6443, [2379, 2380, 10257])
    assert "hook input" in rules and 'iifname "lo" accept' in rules
    assert f'iifname "{hostnet.BRIDGE}" tcp dport 6443 accept' in rules
    assert "tcp dport { 2379, 2380, 6443, 10257 } counter drop" in rules
    assert rules.index("accept") < rules.index("drop")
