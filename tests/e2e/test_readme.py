"""End to end: the README's commands work as written, in a shell that has only what the README says to do.

Every `sh` block of the README runs, in order, in one bash with `set -e` and a bare environment (no KUBECONFIG,
no project tools on PATH): `source .cluster/env` must be all a newcomer needs. The blocks of "Start here" are
the exception: they are `make demo` and `make test`, which CI itself runs.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NAMESPACE = "team-a"  # the README's own
OPERATOR_NAMESPACE = "modeldeploy-system"  # where the README installs the chart
REAL_NODE = os.environ.get("MODELDEPLOY_REAL_NODE", "1") != "0"


def shell_blocks() -> list[str]:
    """The README's `sh` blocks outside "Start here", in order (on the KWOK-only cluster, without the one that
    runs the operator's image on the real node)."""
    blocks = []
    for section in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        if section.startswith("Start here"):
            continue
        blocks += re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [b for b in blocks if REAL_NODE or "make image" not in b]


def gone(cluster: Any) -> bool:
    return cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0


@pytest.fixture
def team_a(cluster: Any, crd: None) -> Any:
    """The README's namespace, absent before the commands and removed after them."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    wait_for(lambda: gone(cluster), timeout=60, message=f"namespace {NAMESPACE} is gone", until=bool)
    yield
    # The chart's release too, should the commands have stopped before they uninstall it.
    subprocess.run([str(cluster.bin / "helm"), f"--kubeconfig={cluster.kubeconfig}", "uninstall", "modeldeploy",
                    "-n", OPERATOR_NAMESPACE, "--ignore-not-found"], capture_output=True, timeout=120)
    cluster.kubectl("delete", "namespace", NAMESPACE, OPERATOR_NAMESPACE, "--ignore-not-found", "--wait=false")


def test_the_readmes_commands_work_as_written(cluster, team_a):
    blocks = shell_blocks()
    assert len(blocks) >= 2 and "source .cluster/env" in blocks[0]
    # Stop a background operator however the script ends (the README's own `kill %1` does it on success).
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(blocks)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"the README's commands failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    # What the commands printed: the model served, the canary promoted, the history shows both revisions
    assert "condition met" in out.stdout
    # (the history table's header, not helm's "REVISION: 1")
    history = out.stdout[list(re.finditer(r"^\s*REVISION\s{2,}", out.stdout, flags=re.M))[-1].start():]
    assert re.search(r"^\s*1\s.*\b7\b", history, flags=re.M) and re.search(r"^\s*2\s.*\b8\b", history, flags=re.M), \
        history
    # The operator's pod ran on the real node and rolled out version 9 (revision 3) by itself
    on_node = r"^modeldeploy-\S+\s+1/1\s+Running\s.*\smodeldeploy-node\s"
    assert not REAL_NODE or re.search(on_node, out.stdout, flags=re.M), out.stdout
