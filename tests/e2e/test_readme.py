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


def shell_blocks() -> list[str]:
    """The README's `sh` blocks outside "Start here", in order."""
    blocks = []
    for section in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        if section.startswith("Start here"):
            continue
        blocks += re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return blocks


def gone(cluster: Any) -> bool:
    return cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0


@pytest.fixture
def team_a(cluster: Any, crd: None) -> Any:
    """The README's namespace, absent before the commands and removed after them."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    wait_for(lambda: gone(cluster), timeout=60, message=f"namespace {NAMESPACE} is gone", until=bool)
    yield
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")


def test_the_readmes_commands_work_as_written(cluster, team_a):
    blocks = shell_blocks()
    assert len(blocks) >= 2 and "source .cluster/env" in blocks[0]
    # Stop a background operator however the script ends (the README's own `kill %1` does it on success).
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(blocks)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, f"the README's commands failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    # What the commands printed: the model served, the canary promoted, the history shows both revisions
    assert "condition met" in out.stdout
    history = out.stdout[out.stdout.rindex("REVISION"):]
    assert re.search(r"^\s*1\s.*\b7\b", history, flags=re.M) and re.search(r"^\s*2\s.*\b8\b", history, flags=re.M), \
        history
