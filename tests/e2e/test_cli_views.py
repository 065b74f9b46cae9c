"""End to end: `kubectl modeldeploy status --watch` on a terminal and `history --plot` read the real operator's work."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

from modeldeployments import MD, apply, cli, manifest, wait_phase


def watch_on_a_terminal(cluster: Any, namespace: str, seconds: float) -> str:
    """What `status --watch` draws on a pseudo-terminal in `seconds`, escape codes removed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "modeldeploy.cli.main", "--kubeconfig", str(cluster.kubeconfig),
                             "status", MD, "-n", namespace, "--watch"],
                            stdin=follower, stdout=follower, stderr=follower, env=dict(os.environ, COLUMNS="160"))
    os.close(follower)
    out, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    out += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        proc.kill()
        proc.wait(10)
        os.close(leader)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.decode(errors="replace"))


def test_the_live_view_and_the_picture_show_a_canary_held_at_a_pause_then_promoted(
        cluster, namespace, operator, tmp_path):
    body = manifest(namespace, version="1", replicas=2)
    body["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {}}], "scaleDownDelaySeconds": 1}
    apply(cluster, body)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    body["spec"]["model"] = {"uri": "s3://models/fraud/v2", "version": "2"}
    apply(cluster, body)
    wait_phase(cluster, namespace, "Paused", canaryRevision=2)
    # On a terminal the view is drawn in place: the step, the weight, each revision's Ready pods, the wait
    screen = watch_on_a_terminal(cluster, namespace, seconds=4)
    assert "50%" in screen, screen
    assert "pause until promoted" in screen, screen
    assert re.search(r"2/2 Ready|Ready.*2/2", screen) or "2/2" in screen, screen
    assert f"a manual promote (`kubectl modeldeploy promote {MD}`)" in " ".join(screen.split()), screen
    assert "-" * 60 not in screen  # no reprinted blocks: one view, redrawn
    # Promoted, the picture of the rollout marks it
    assert cli(cluster, "promote", MD, "-n", namespace, "--full").returncode == 0
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=60)
    svg = tmp_path / "rollout.svg"
    out = cli(cluster, "history", MD, "-n", namespace, "--plot", str(svg))
    assert out.returncode == 0, out.stderr
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    words = " ".join(t.strip() for t in root.itertext() if t.strip())
    assert "Promoted" in words, words[:2000]
    assert "Ready pods per revision" in words, words[:2000]
