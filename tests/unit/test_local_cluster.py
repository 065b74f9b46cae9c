"""The local control plane's pure parts: its addresses and record of the host (tests/cluster/hostnet.py), and
what the real node's images promise (tests/cluster/realnode.py)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import hostnet
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
    mlserver = next(r for r in realnode.Node(Path("/x"), Path("/x"), Path("/x"), Path("/x")).recipes()
                    if r.name == "mlserver")
    assert realnode.SKLEARN in mlserver.pip
