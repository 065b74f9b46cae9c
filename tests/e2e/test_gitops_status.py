"""End to end: what GitOps tools make of the statuses the real operator writes, judged by their own libraries.

A recorder keeps every version of the ModelDeployment the API server holds while it goes through the phases a
GitOps user meets (first deploy, a canary held at an open pause, promotion, a rollback on analysis, a spec that
cannot be served, a first revision that never starts). `statuscheck` (tests/cluster/checks, built by
`make cluster`) then judges each version with sigs.k8s.io/cli-utils' kstatus, with Flux's fork of it, and with
Flux's CEL health-check evaluator running the expressions docs/gitops.md gives.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kstatus import kstatus
from modeldeployments import MD, apply, cli, manifest, wait_phase

ROOT = Path(__file__).resolve().parents[2]
GITOPS_DOC = ROOT / "docs" / "gitops.md"


def documented_exprs() -> dict[str, str]:
    """The healthCheckExprs entry for ModelDeployment, read from the YAML block docs/gitops.md shows."""
    for block in re.findall(r"```yaml\n(.*?)```", GITOPS_DOC.read_text(), flags=re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "healthCheckExprs" in doc:
            (entry,) = [e for e in doc["healthCheckExprs"] if e["kind"] == "ModelDeployment"]
            return {k: entry[k] for k in ("current", "failed", "inProgress") if k in entry}
    raise AssertionError(f"{GITOPS_DOC} shows no healthCheckExprs block for ModelDeployment")


def statuscheck(cluster: Any, objects: list[dict[str, Any]], exprs: dict[str, str]) -> list[dict[str, Any]]:
    checker = cluster.bin / "statuscheck"
    if not checker.exists():
        pytest.fail(f"{checker} is missing: `make cluster` builds it", pytrace=False)
    flags = {"current": "-current", "failed": "-failed", "inProgress": "-in-progress"}
    args = [a for key, expr in exprs.items() for a in (flags[key], expr)]
    out = subprocess.run([str(checker), *args], input=json.dumps(objects), capture_output=True, text=True,
                         timeout=60, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


class Recorder:
    """Every version of the namespace's ModelDeployments, from a watch (so no write is missed between polls)."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.objects: list[dict[str, Any]] = []
        self._proc = subprocess.Popen(
            [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "get", "modeldeployments",
             "-n", namespace, "--watch", "-o", "json"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # `kubectl get --watch -o json` prints one pretty-printed object after another.
        decoder, buf = json.JSONDecoder(), ""
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            buf += line
            try:
                obj, end = decoder.raw_decode(buf.strip())
            except ValueError:
                continue
            self.objects.append(obj)
            buf = buf.strip()[end:]

    def stop(self) -> list[dict[str, Any]]:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._thread.join(timeout=10)
        return self.objects


@pytest.fixture
def recorder(cluster: Any, namespace: str) -> Iterator[Recorder]:
    rec = Recorder(cluster, namespace)
    yield rec
    rec.stop()


def state(obj: dict[str, Any]) -> tuple[str, str]:
    """(phase, reason) of one version of a ModelDeployment, or not yet observed when its status is behind."""
    st = obj.get("status") or {}
    if st.get("observedGeneration") not in (None, obj["metadata"].get("generation")):
        return "(not yet observed)", ""
    return st.get("phase", ""), next((c["reason"] for c in st.get("conditions", []) if c["type"] == "Ready"), "")


def test_kstatus_and_fluxs_cel_checks_read_every_status_the_operator_writes(
        cluster, namespace, operator, prometheus, recorder):
    prometheus.set_error_ratio(namespace, 0.0)
    analysis = {"interval": "1s", "failureLimit": 0, "metrics": [{
        "name": "error-rate",
        "prometheus": {"address": prometheus.address, "query": f'model_error_ratio{{namespace="{namespace}"}}'},
        "thresholdRange": {"max": 0.05}}]}

    def md(version: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        body = manifest(namespace, version=version, replicas=2, **spec)
        body["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 1, "analysis": analysis}
        return body

    # A first deploy; a canary held at an open pause; promotion
    apply(cluster, md("1", [{"setWeight": 50}, {"pause": {}}]))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, md("2", [{"setWeight": 50}, {"pause": {}}]))
    wait_phase(cluster, namespace, "Paused", canaryRevision=2)
    assert cli(cluster, "promote", MD, "-n", namespace, "--full").returncode == 0
    wait_phase(cluster, namespace, "Healthy", stableRevision=2)
    # A canary rolled back on its analysis
    prometheus.set_error_ratio(namespace, 0.5)
    apply(cluster, md("3", [{"setWeight": 50}, {"analysis": {}}]))
    wait_phase(cluster, namespace, "Degraded", stableRevision=2, timeout=60)
    # A spec the operator cannot serve
    apply(cluster, md("4", [{"setWeight": 50}], runtime={"preset": "no-such-server"}))
    wait_phase(cluster, namespace, "Failed")
    # A first revision that never starts, under another name
    stuck = manifest(namespace, version="1", replicas=1)
    stuck["metadata"]["name"] = "stuck"
    stuck["spec"]["rollout"] = {"progressDeadlineSeconds": 3}
    stuck["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "never-ready"}}}
    apply(cluster, stuck)
    wait_phase(cluster, namespace, "Degraded", name="stuck")

    objects = recorder.stop()
    exprs = documented_exprs()
    verdicts = statuscheck(cluster, objects, exprs)
    seen: dict[tuple[str, str], set[tuple[str, str | None]]] = {}
    for obj, v in zip(objects, verdicts, strict=True):
        where = f"{obj['metadata']['name']} rv {obj['metadata']['resourceVersion']} {state(obj)}"
        # The three kstatus readings agree: the library, Flux's fork, the unit tests' re-implementation.
        assert v["kstatus"] == v["flux"] == kstatus(obj)[0], f"{where}: {v}"
        if obj.get("status"):
            # Every status the operator writes evaluates: no expression names a field that is missing.
            assert not v.get("celError"), f"{where}: {v['celError']}"
        seen.setdefault(state(obj), set()).add((v["kstatus"], v.get("cel")))

    # What docs/gitops.md's tables say, for each phase and reason the operator went through
    expected = {
        ("(not yet observed)", ""): {("InProgress", "InProgress")},
        ("Pending", "Deploying"): {("InProgress", "InProgress")},
        ("Progressing", "Canary"): {("InProgress", "InProgress")},
        ("Paused", "Paused"): {("InProgress", "Current")},
        ("Healthy", "Healthy"): {("Current", "Current")},
        ("Degraded", "RolledBack"): {("Failed", "Failed")},
        ("Failed", "UnknownRuntimePreset"): {("Failed", "Failed")},
        ("Degraded", "RolloutStuck"): {("Failed", "Failed")},
    }
    for phase_reason, readings in expected.items():
        assert seen.get(phase_reason) == readings, \
            f"{phase_reason}: read as {seen.get(phase_reason)}; every state seen: {seen}"
    # Any other state the operator passed through (Scaling, Canary, ...) is in progress for both
    for phase_reason, readings in seen.items():
        if phase_reason not in expected and phase_reason[0] in ("Pending", "Progressing"):
            assert readings == {("InProgress", "InProgress")}, f"{phase_reason}: {readings}"

