"""What both demos share: where the local control plane is, and its kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / ".cluster"
KUBECONFIG = CLUSTER / "kubeconfig"
KUBECTL = str(CLUSTER / "bin" / "kubectl")
NAMESPACE = "modeldeploy-demo"
LOG = CLUSTER / "logs" / "operator-demo.log"


def say(text: str = "") -> None:
    print(text, flush=True)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([KUBECTL, f"--kubeconfig={KUBECONFIG}", *args], input=stdin, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"error: kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout
