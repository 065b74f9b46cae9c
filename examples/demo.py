"""`make demo`: the operator on the local control plane, start to finish.

With the real node (the default) it runs examples/real_node_demo.py. On the KWOK-only cluster
(MODELDEPLOY_REAL_NODE=0) it runs the story below, on simulated pods:

Installs the CRD, runs the operator, applies the ModelDeployments in
examples/, shows them become Healthy, rolls a new model version through, and
stops by itself. The cluster stays up for a look around afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import yaml
from democluster import KUBECONFIG, LOG, NAMESPACE, ROOT, kubectl, say

EXAMPLES = [ROOT / "examples" / "fraud.yaml", ROOT / "examples" / "sentiment.yaml"]


def statuses() -> dict[str, dict[str, Any]]:
    out = json.loads(kubectl("get", "modeldeployments", "-n", NAMESPACE, "-o", "json"))
    return {md["metadata"]["name"]: md.get("status") or {} for md in out["items"]}


def line(name: str, st: dict[str, Any]) -> str:
    canary = f", canary r{st['canaryRevision']}" if st.get("canaryRevision") else ""
    return (f"  {name:<10} {st.get('phase', '-'):<12} stable r{st.get('stableRevision', '-')}{canary}, "
            f"{st.get('readyReplicas', 0)}/{st.get('replicas', 0)} pods ready  {st.get('message', '')}")


def watch(until: Any, timeout: float) -> dict[str, dict[str, Any]]:
    """Print each change of any ModelDeployment's status until `until(statuses)` holds."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        current = statuses()
        for name, st in sorted(current.items()):
            text = line(name, st)
            if seen.get(name) != text:
                say(text)
                seen[name] = text
        if until(current):
            return current
        if time.monotonic() > deadline:
            raise SystemExit(f"error: the demo did not converge within {timeout:.0f} s; operator log: {LOG}")
        time.sleep(0.3)


def main() -> int:
    if not KUBECONFIG.exists():
        raise SystemExit("error: no local control plane; run `make cluster` (or `make demo`, which starts it)")
    if os.environ.get("MODELDEPLOY_REAL_NODE", "1") != "0":
        # The story with real pods, requests and metrics (examples/real_node_demo.py)
        import real_node_demo

        return real_node_demo.main()
    say("== modeldeploy demo on the local control plane")
    say("-- installing the ModelDeployment CRD")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/modeldeployments.modeldeploy.dev")
    # A fresh namespace each run, so the demo tells the same story every time.
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s")
    kubectl("create", "namespace", NAMESPACE)

    say(f"-- starting the operator for namespace {NAMESPACE} (log: {LOG.relative_to(ROOT)})")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KUBECONFIG=str(KUBECONFIG))
    with LOG.open("w") as log:
        op = subprocess.Popen([sys.executable, "-m", "modeldeploy.cli.main", "run", "--namespace", NAMESPACE,
                               "--metrics-port", "0", "--health-port", "0"], stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    try:
        say("-- applying " + ", ".join(str(p.relative_to(ROOT)) for p in EXAMPLES))
        for path in EXAMPLES:
            kubectl("apply", "-n", NAMESPACE, "-f", str(path))
        started = time.monotonic()
        watch(lambda s: len(s) == 2 and all(v.get("phase") == "Healthy" for v in s.values()), 60)
        say(f"-- both are Healthy after {time.monotonic() - started:.1f} s")
        say()

        say("-- fraud: a new model version (v8), as a commit to the GitOps repo would bring it")
        body = yaml.safe_load((ROOT / "examples" / "fraud.yaml").read_text())
        body["spec"]["model"].update(uri="s3://models/fraud/v8", version="8")
        kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(body))
        started = time.monotonic()
        watch(lambda s: s["fraud"].get("stableRevision") == 2 and s["fraud"].get("phase") == "Healthy", 60)
        say(f"-- revision 2 (model 8) serves after {time.monotonic() - started:.1f} s; revision 1 keeps its pods "
            f"for scaleDownDelaySeconds (10 s), then scales to zero and is kept for a fast rollback")
        watch(lambda s: s["fraud"].get("replicas") == 3, 60)
        say(f"-- revision 1 scaled down {time.monotonic() - started:.1f} s after the update")
        say()
        say("-- kubectl modeldeploy history fraud")
        say(subprocess.run([sys.executable, "-m", "modeldeploy.cli.main", "history", "fraud", "-n", NAMESPACE],
                           capture_output=True, text=True, env=env).stdout.rstrip())
        say()
        say("-- kubectl modeldeploy status fraud")
        say(subprocess.run([sys.executable, "-m", "modeldeploy.cli.main", "status", "fraud", "-n", NAMESPACE],
                           capture_output=True, text=True, env=env).stdout.rstrip())
        say()
        say("-- what the operator made")
        say(kubectl("get", "deployments,services,hpa,pdb,controllerrevisions", "-n", NAMESPACE).rstrip())
    finally:
        op.terminate()
        op.wait(15)
    say()
    say("== done: two models served, one upgraded with no loss of capacity.")
    say(f"   look around: source .cluster/env; kubectl get md -n {NAMESPACE}; "
        f"kubectl modeldeploy history fraud -n {NAMESPACE} --plot rollout.svg")
    say(f"   clean up:    .cluster/bin/kubectl delete namespace {NAMESPACE}   (or `make cluster-down` to stop it all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
