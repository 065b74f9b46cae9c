"""End to end: invalid specs, generated (tests/badspecs.py) and by hand, against a model that serves.

Each generated spec has one defect and replaces the serving model's spec on the real API server, with
strict field validation as `kubectl apply` uses. It must be refused with the defect's path in the
message, or be accepted and reported by the operator (phase Failed, a reason, a Warning Event) while
revision 1 keeps serving; a spec taken silently fails the test. The counts are printed.
"""

from __future__ import annotations

import collections
import json
import secrets
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kubernetes.client import ApiException, CustomObjectsApi

import badspecs
from helpers import wait_for
from modeldeployments import MD, apply, deployments, events, get, manifest, status, wait_phase

GROUP, VERSION, PLURAL = "modeldeploy.dev", "v1alpha1", "modeldeployments"
EXAMPLES = 500


def base_spec(provider: str) -> dict[str, Any]:
    """A valid spec that sets most fields, so most fields get their defects."""
    return manifest("unused", version="1", replicas=2,
                    runtime={"image": "registry.example/sklearn-server:1.4", "port": 8080, "readinessPath": "/ready",
                             "args": ["--workers", "2"], "env": [{"name": "LOG_LEVEL", "value": "info"}],
                             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                           "limits": {"cpu": 1, "memory": "128Mi"}}},
                    template={"metadata": {"labels": {"team": "a"}, "annotations": {"example.com/note": "x"}},
                              "nodeSelector": {"kubernetes.io/os": "linux"},
                              "tolerations": [{"key": "example.com/gpu", "operator": "Equal", "value": "yes",
                                               "effect": "NoSchedule"}]},
                    rollout={"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}],
                             "progressDeadlineSeconds": 600, "scaleDownDelaySeconds": 30,
                             "analysis": {"interval": "30s", "failureLimit": 1, "metrics": [
                                 {"name": "errors", "webhook": {"provider": provider, "path": "/check"}}]}},
                    revisionHistoryLimit=5)["spec"]


@pytest.fixture
def provider(cluster):
    name = f"bad-specs-{secrets.token_hex(3)}"
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AnalysisProvider", "metadata": {"name": name},
        "spec": {"webhook": {"baseURL": "http://127.0.0.1:9"}}}))
    yield name
    cluster.kubectl("delete", "analysisprovider", name, "--ignore-not-found", "--wait=false")


class Serving:
    """The serving model the defects are applied to, and what became of each."""

    def __init__(self, cluster: Any, namespace: str, spec: dict[str, Any]) -> None:
        self.cluster, self.namespace, self.spec = cluster, namespace, spec
        self.api = CustomObjectsApi(cluster.api_client())
        self.counts: collections.Counter[str] = collections.Counter()
        self.refused_by_kind: collections.Counter[str] = collections.Counter()
        self.reported: list[str] = []

    def put(self, spec: dict[str, Any]) -> None:
        live = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, MD)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "spec": spec,
                "metadata": {"name": MD, "namespace": self.namespace,
                             "resourceVersion": live["metadata"]["resourceVersion"]}}
        self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, MD, body,
                                                  field_validation="Strict")

    def serving(self) -> bool:
        st = status(self.cluster, self.namespace)
        md = get(self.cluster, self.namespace, "modeldeployment", MD)
        return (st.get("phase") == "Healthy" and st.get("observedGeneration") == md["metadata"]["generation"]
                and st.get("stableRevision") == 1)

    def restore(self) -> None:
        self.put(self.spec)
        wait_for(self.serving, timeout=30, message="the good spec serves again")

    def check_untouched(self, defect: badspecs.Defect) -> None:
        names = sorted(deployments(self.cluster, self.namespace))
        assert names == [f"{MD}-r1"], f"{defect}: the bad spec made {names}"
        ready = deployments(self.cluster, self.namespace)[f"{MD}-r1"]["status"].get("readyReplicas")
        assert ready == 2, f"{defect}: revision 1 has {ready} ready pods"

    def apply(self, defect: badspecs.Defect) -> None:
        try:
            self.put(defect.spec)
        except ApiException as exc:
            # 422 for a value the schema refuses, 400 for a field it does not have (strict decoding)
            assert exc.status in (400, 422), f"{defect}: {exc.status} {exc.body}"
            message = json.loads(exc.body)["message"]
            assert defect.path in message or f".{defect.path}" in message, f"{defect}: {message}"
            self.counts["refused"] += 1
            self.refused_by_kind[defect.kind] += 1
            return
        # Accepted: the operator must say the spec cannot be carried out, and keep revision 1 serving.
        md = get(self.cluster, self.namespace, "modeldeployment", MD)
        generation = md["metadata"]["generation"]
        st = wait_for(lambda: status(self.cluster, self.namespace), timeout=15,
                      message=f"the operator looks at {defect}",
                      until=lambda s: s.get("observedGeneration") == generation)
        if st.get("phase") == "Failed":
            self.counts["reported"] += 1
            self.reported.append(f"{defect}: {st.get('message')}")
        else:
            self.counts["silent"] += 1
            self.reported.append(f"SILENT {defect}: phase {st.get('phase')}")
        self.check_untouched(defect)
        self.restore()


def test_generated_bad_specs_are_refused_or_reported_and_revision_1_keeps_serving(
        cluster, namespace, operator, provider, capsys):
    spec = base_spec(provider)
    model = Serving(cluster, namespace, spec)
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
        "metadata": {"name": MD, "namespace": namespace}, "spec": spec}))
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=1, readyReplicas=2)
    began = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(badspecs.defects(spec))
    def each(defect: badspecs.Defect) -> None:
        model.apply(defect)

    each()
    model.check_untouched(badspecs.Defect("none", "", spec))
    with capsys.disabled():
        print(f"\nbad specs: {sum(model.counts.values())} applied in {time.monotonic() - began:.0f} s: "
              f"{model.counts['refused']} refused, {model.counts['reported']} reported, "
              f"{model.counts['silent']} silently taken")
        print("  refused by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(model.refused_by_kind.items())))
        for line in model.reported:
            print(f"  {line[:300]}")
    assert sum(model.counts.values()) >= EXAMPLES
    assert model.counts["silent"] == 0, [r for r in model.reported if r.startswith("SILENT")]


# -- by hand: mistakes users really make -----------------------------------------------------------------------
def _serving(cluster, namespace: str) -> None:
    apply(cluster, manifest(namespace, version="1", replicas=2))
    wait_phase(cluster, namespace, "Healthy", timeout=60, stableRevision=1, readyReplicas=2)


def _revision_1_alone_serves(cluster, namespace: str) -> None:
    live = deployments(cluster, namespace)
    assert sorted(live) == [f"{MD}-r1"], sorted(live)
    assert live[f"{MD}-r1"]["status"].get("readyReplicas") == 2, live[f"{MD}-r1"]["status"]


def test_requests_above_limits_pass_the_schema_and_are_reported_in_the_api_servers_words(
        cluster, namespace, operator):
    _serving(cluster, namespace)
    apply(cluster, manifest(namespace, version="2", replicas=2, runtime={
        "image": "registry.example/sklearn-server:1.4",
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))
    st = wait_phase(cluster, namespace, "Failed", timeout=30)
    assert "must be less than or equal to cpu limit" in st["message"], st["message"]
    assert "Revision 1 (model 1) keeps serving" in st["message"]
    assert any("cpu limit" in m for m in events(cluster, namespace, "ApplyRejected"))
    _revision_1_alone_serves(cluster, namespace)


def test_a_status_edited_by_hand_moves_nothing_that_serves(cluster, namespace, operator):
    _serving(cluster, namespace)
    cluster.kubectl("patch", "md", MD, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"stableRevision": 5, "canaryRevision": 6, "canaryWeight": 50, "phase": "Progressing"}}))
    cluster.kubectl("annotate", "md", MD, "-n", namespace, "example.com/poke=1")  # an event, so it reconciles
    time.sleep(5)
    _revision_1_alone_serves(cluster, namespace)
    # A scale makes the operator act on its (edited) bookkeeping: still revision 1, now 3 pods.
    cluster.kubectl("patch", "md", MD, "-n", namespace, "--type=merge", "-p", '{"spec": {"replicas": 3}}')
    wait_for(lambda: deployments(cluster, namespace), timeout=30, message="revision 1 scaled to 3",
             until=lambda live: sorted(live) == [f"{MD}-r1"] and live[f"{MD}-r1"]["status"].get("readyReplicas") == 3)


def test_a_mebibyte_annotation_is_refused_with_its_path(cluster, namespace, operator):
    _serving(cluster, namespace)
    big = manifest(namespace, version="1", replicas=2)
    big["metadata"]["annotations"] = {"example.com/blob": "x" * (1 << 20)}
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(big), check=False)
    assert out.returncode != 0
    assert "metadata.annotations: Too long" in out.stderr, out.stderr[:500]
    _revision_1_alone_serves(cluster, namespace)


def test_a_model_in_a_namespace_being_deleted_lets_the_namespace_go(cluster, namespace, operator):
    _serving(cluster, namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0, timeout=90,
             message=f"namespace {namespace} is gone", until=bool)
    assert operator.proc is not None and operator.proc.poll() is None, "the operator exited"
    log = operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:4000]


def test_a_misspelt_request_annotation_is_reported_once_and_changes_nothing(cluster, namespace, operator):
    _serving(cluster, namespace)
    cluster.kubectl("annotate", "md", MD, "-n", namespace, "modeldeploy.dev/promtoe=t1")
    said = wait_for(lambda: events(cluster, namespace, "UnknownRequest"), timeout=15,
                    message="an UnknownRequest Event", until=bool)
    assert "modeldeploy.dev/promtoe asks for nothing the operator knows" in said[0], said
    cluster.kubectl("annotate", "md", MD, "-n", namespace, "example.com/poke=1")  # another reconcile
    time.sleep(3)
    again = get(cluster, namespace, "events")["items"]
    assert sum(e.get("count", 1) for e in again if e.get("reason") == "UnknownRequest") == 1
    _revision_1_alone_serves(cluster, namespace)
    assert status(cluster, namespace)["phase"] == "Healthy"
