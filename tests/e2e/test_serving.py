"""End to end: what a team does with a ModelDeployment, against the real API server and the real operator."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import yaml

from helpers import holds_for, wait_for
from modeldeployments import MD, apply, cli, deployments, events, get, manifest, status, wait_phase


def test_apply_serves_the_model(cluster, namespace, operator):
    # Given a ModelDeployment with 3 replicas
    started = time.monotonic()
    apply(cluster, manifest(namespace))
    # Then it is Healthy within 30 s, with everything it owns in place
    st = wait_phase(cluster, namespace, "Healthy", timeout=30)
    print(f"Healthy after {time.monotonic() - started:.1f} s")
    md = get(cluster, namespace, "modeldeployment", MD)
    dep = get(cluster, namespace, "deployment", f"{MD}-r1")
    assert dep["status"]["readyReplicas"] == 3
    assert dep["spec"]["template"]["metadata"]["labels"]["modeldeploy.dev/revision"] == "1"
    for svc in (MD, f"{MD}-stable"):
        assert get(cluster, namespace, "service", svc) is not None, f"Service {svc} exists"
    assert st["url"] == f"http://{MD}.{namespace}.svc.cluster.local"
    assert st["stableRevision"] == 1
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == md["metadata"]["generation"] == st["observedGeneration"]
    # kopf keeps its state in status, not in annotations
    assert not any(k.startswith("kopf.zalando.org") for k in (md["metadata"].get("annotations") or {}))
    # and the CLI shows it
    out = cli(cluster, "status", MD, "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert "Healthy" in out.stdout and "revision 1 (model 1)" in out.stdout and "3/3 ready" in out.stdout
    # and a name that does not exist gets a clear error
    missing = cli(cluster, "history", "no-such-model", "-n", namespace)
    assert missing.returncode == 1
    assert f"ModelDeployment 'no-such-model' not found in namespace '{namespace}'" in missing.stderr


def test_new_model_version_rolls_out_as_revision_2(cluster, namespace, operator):
    apply(cluster, manifest(namespace, version="1"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When the model version and uri change
    apply(cluster, manifest(namespace, version="2"))
    # Then revision 2 rolls out and becomes stable, and history shows both
    wait_phase(cluster, namespace, "Healthy", stableRevision=2)
    deps = deployments(cluster, namespace)
    assert deps[f"{MD}-r2"]["status"]["readyReplicas"] == 3
    out = cli(cluster, "history", MD, "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["revision"], r["model"], r["outcome"]) for r in rows] == [(1, "1", "Superseded"), (2, "2", "Stable")]
    table = cli(cluster, "history", MD, "-n", namespace).stdout
    assert "REVISION" in table and "Superseded" in table


def test_replicas_change_makes_no_revision_and_restarts_no_pod(cluster, namespace, operator):
    apply(cluster, manifest(namespace, replicas=3))
    wait_phase(cluster, namespace, "Healthy")
    before = {p["metadata"]["uid"] for p in get(cluster, namespace, "pods")["items"]}
    # When only replicas changes
    apply(cluster, manifest(namespace, replicas=5))
    wait_phase(cluster, namespace, "Healthy", readyReplicas=5)
    # Then there is still one revision, and every old pod still runs
    assert status(cluster, namespace)["stableRevision"] == 1
    assert len(get(cluster, namespace, "controllerrevisions")["items"]) == 1
    after = {p["metadata"]["uid"] for p in get(cluster, namespace, "pods")["items"]}
    assert before <= after and len(after) == 5


def test_children_edited_by_hand_are_put_back(cluster, namespace, operator):
    apply(cluster, manifest(namespace, replicas=2))
    wait_phase(cluster, namespace, "Healthy")
    # When someone deletes the stable Service, it comes back
    cluster.kubectl("delete", "service", f"{MD}-stable", "-n", namespace)
    wait_for(lambda: get(cluster, namespace, "service", f"{MD}-stable"), timeout=15,
             message="Service put back")
    # When someone scales the serving Deployment by hand, it goes back to spec
    cluster.kubectl("scale", "deployment", f"{MD}-r1", "--replicas=4", "-n", namespace)
    wait_for(lambda: get(cluster, namespace, "deployment", f"{MD}-r1")["spec"]["replicas"] == 2, timeout=15,
             message="replicas put back to 2")


def test_an_autoscaler_owns_replicas(cluster, namespace, operator):
    apply(cluster, manifest(namespace, replicas=None,
                            autoscaling={"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}))
    wait_phase(cluster, namespace, "Healthy")
    hpa = get(cluster, namespace, "hpa", MD)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
                                             "name": MD}
    # When the autoscaler's path, the scale subresource, sets 4, the serving Deployment follows
    cluster.kubectl("scale", "modeldeployment", MD, "--replicas=4", "-n", namespace)
    wait_for(lambda: get(cluster, namespace, "deployment", f"{MD}-r1")["spec"]["replicas"], timeout=15,
             until=lambda n: n == 4, message="the Deployment follows spec.replicas")
    # And a change made to the Deployment behind the operator's back is drift, put back
    cluster.kubectl("scale", "deployment", f"{MD}-r1", "--replicas=1", "-n", namespace)
    wait_for(lambda: get(cluster, namespace, "deployment", f"{MD}-r1")["spec"]["replicas"], timeout=15,
             until=lambda n: n == 4, message="drift on the Deployment's replicas is corrected")


def test_deleting_the_modeldeployment_removes_every_child(cluster, namespace, operator):
    apply(cluster, manifest(namespace))
    wait_phase(cluster, namespace, "Healthy")
    # (set once the reconcile that wrote the status has returned: a moment after the status shows)
    wait_for(lambda: operator.metric("modeldeploy_phase", namespace=namespace, name=MD, phase="Healthy"), timeout=5,
             until=lambda n: n == 1, message="the phase metric says Healthy")
    cluster.kubectl("delete", "modeldeployment", MD, "-n", namespace)

    def leftovers() -> list[str]:
        out = cluster.kubectl("get", "deployments,replicasets,pods,services,pdb,controllerrevisions",
                              "-n", namespace, "-l", "app.kubernetes.io/managed-by=modeldeploy", "-o", "name")
        rs = cluster.kubectl("get", "replicasets,pods", "-n", namespace, "-o", "name")
        return [n for n in (out.stdout + rs.stdout).split() if n]

    wait_for(leftovers, timeout=30, message="every child is garbage-collected", until=lambda left: not left)
    # And its metric series go too: no dashboard shows a deleted model as Healthy
    mine = f'name="{MD}"'

    def its_series() -> list[str]:
        return [labels for metric in ("modeldeploy_phase", "modeldeploy_canary_weight")
                for labels in operator.series(metric) if mine in labels]

    wait_for(its_series, timeout=10, message="its metric series are dropped", until=lambda left: not left)


def test_schema_errors_are_rejected_by_the_api_server(cluster, namespace, crd):
    bad = manifest(namespace)
    bad["spec"]["model"]["uri"] = "ftp://models/fraud"
    bad["spec"]["runtime"]["preset"] = "mlserver"  # and an image: two runtimes
    out = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0
    assert "spec.model.uri" in out.stderr
    assert "set exactly one of runtime.image or runtime.preset" in out.stderr


def test_kubectl_explain_says_what_a_field_is_for(cluster, crd):
    # The API server publishes a new schema to OpenAPI a moment after the CRD is Established.
    out = wait_for(lambda: cluster.kubectl("explain", "modeldeployments.spec.rollout.steps.pause",
                                           check=False),
                   timeout=30, message="kubectl explain finds the field", until=lambda p: p.returncode == 0)
    assert "Wait: for `duration`, or without one until `kubectl modeldeploy promote`" in " ".join(out.stdout.split())


@pytest.mark.parametrize(("change", "reason", "says"), [
    ({"runtime": {"preset": "no-such-server"}}, "UnknownRuntimePreset", "spec.runtime.preset"),
    ({"model": {"uri": "s3://models/fraud/v2", "version": "2", "credentialsSecret": "missing-creds"}},
     "CredentialsSecretNotFound", "spec.model.credentialsSecret"),
], ids=["unknown-preset", "missing-credentials-secret"])
def test_an_unhonourable_spec_fails_while_the_old_revision_serves(cluster, namespace, operator, change, reason, says):
    apply(cluster, manifest(namespace))
    wait_phase(cluster, namespace, "Healthy")
    before = deployments(cluster, namespace)
    # When the spec passes the schema but cannot be served
    body = manifest(namespace)
    body["spec"].update(change)
    apply(cluster, body)
    # Then it is Failed, says what to fix, and an Event says so too
    st = wait_phase(cluster, namespace, "Failed")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason and says in ready["message"]
    assert "Revision 1 (model 1) keeps serving" in st["message"] and "keeps serving" in st["message"]
    events = get(cluster, namespace, "events")["items"]
    assert any(e["reason"] == reason and says in e["message"] for e in events)
    # And revision 1 keeps serving, untouched
    after = deployments(cluster, namespace)
    assert list(after) == [f"{MD}-r1"]
    assert after[f"{MD}-r1"]["metadata"]["resourceVersion"] == before[f"{MD}-r1"]["metadata"]["resourceVersion"]
    assert after[f"{MD}-r1"]["status"]["readyReplicas"] == 3
    # When the spec is fixed, it recovers
    apply(cluster, manifest(namespace))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)


def _resource_versions(cluster: Any, namespace: str) -> dict[str, str]:
    out = cluster.kubectl("get", "modeldeployments,deployments,services,pdb,controllerrevisions,replicasets,pods",
                          "-n", namespace, "-o", "json")
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in json.loads(out.stdout)["items"]}


def test_a_write_the_api_server_refuses_is_reported_and_retried(cluster, namespace, operator):
    # Given a namespace whose quota allows one Service (the operator makes two)
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "services", "namespace": namespace},
             "spec": {"hard": {"services": "1"}}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(quota))
    apply(cluster, manifest(namespace))
    # Then status says which object the API server refused and why, and that the operator retries
    st = wait_for(lambda: status(cluster, namespace), timeout=30, message="status reports the refused write",
                  until=lambda s: "exceeded quota" in (s.get("message") or ""))
    assert st["phase"] == "Pending" and st["message"].endswith("; retrying")
    assert "the API server did not take Service" in st["message"]
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Reconciling"]["status"] == "True" and conditions["Ready"]["reason"] == "ApplyFailed"
    # ... with one Warning Event, however many retries
    retries = operator.metric("modeldeploy_reconciles_total", result="error")
    wait_for(lambda: operator.metric("modeldeploy_reconciles_total", result="error"), timeout=20,
             until=lambda n: n >= retries + 2, message="two more retries")
    events = [e for e in get(cluster, namespace, "events")["items"] if e["reason"] == "ApplyFailed"]
    assert len(events) == 1 and events[0]["type"] == "Warning", events
    # When the quota is raised, a retry goes through
    cluster.kubectl("patch", "resourcequota", "services", "-n", namespace, "--type=merge",
                    "-p", '{"spec": {"hard": {"services": "5"}}}')
    st = wait_phase(cluster, namespace, "Healthy", timeout=60)
    assert "retrying" not in st["message"]


def test_a_reconcile_with_nothing_to_change_writes_nothing(cluster, namespace, operator):
    apply(cluster, manifest(namespace))
    wait_phase(cluster, namespace, "Healthy")
    holds_for(lambda: status(cluster, namespace).get("phase") == "Healthy", duration=2, message="settled")
    before = _resource_versions(cluster, namespace)
    writes = operator.metric("modeldeploy_api_writes_total")
    reads = operator.metric("modeldeploy_api_reads_total")
    unchanged = operator.metric("modeldeploy_reconciles_total", result="unchanged")
    # When a child changes in a way that needs nothing (a label someone adds)
    cluster.kubectl("label", "service", MD, "team=risk", "-n", namespace)
    # Then the operator reconciles ...
    wait_for(lambda: operator.metric("modeldeploy_reconciles_total", result="unchanged") > unchanged, timeout=15,
             message="a reconcile ran")
    # ... and sends no write: no object but the labelled Service changed
    after = _resource_versions(cluster, namespace)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {f"Service/{MD}"}
    assert operator.metric("modeldeploy_api_writes_total") == writes
    # ... and no read: the watches already told it everything (k8s/cache.py)
    assert operator.metric("modeldeploy_api_reads_total") == reads


@pytest.mark.parametrize("kill_after", [0.0, 0.15, 0.4], ids=["at-once", "150ms", "400ms"])
def test_killed_mid_reconcile_the_operator_resumes_without_duplicates(cluster, namespace, operator, kill_after):
    apply(cluster, manifest(namespace, version="1"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When a new version is applied and the operator is killed while it works
    apply(cluster, manifest(namespace, version="2"))
    time.sleep(kill_after)
    operator.kill()
    operator.start()
    # Then the rollout finishes, with no duplicate child and no lost revision
    wait_phase(cluster, namespace, "Healthy", stableRevision=2)
    assert sorted(deployments(cluster, namespace)) == [f"{MD}-r1", f"{MD}-r2"]
    revisions = get(cluster, namespace, "controllerrevisions")["items"]
    assert sorted(int(r["revision"]) for r in revisions) == [1, 2]
    assert len({s["metadata"]["name"] for s in get(cluster, namespace, "services")["items"]}) == 2


def test_a_quota_that_refuses_pods_is_told_in_status_and_an_event(cluster, namespace, operator):
    # Given a namespace whose quota allows 1 pod
    cluster.kubectl("create", "quota", "pods", "--hard=pods=1", "-n", namespace)
    # When a ModelDeployment asks for 3
    apply(cluster, manifest(namespace, replicas=3))
    # Then status says the ReplicaSet's refusal in its own words, not "1/3 pods ready" until the deadline
    st = wait_for(lambda: status(cluster, namespace), timeout=30, message="status names the quota",
                  until=lambda s: "exceeded quota" in (s.get("message") or ""))
    assert re.search(r"[01]/3 pods ready; pods cannot be created \(FailedCreate\): pods \"fraud-r1-", st["message"]), \
        st["message"]
    # And a Warning Event says it once
    said = wait_for(lambda: events(cluster, namespace, "PodsCannotStart"), timeout=10, message="an Event")
    assert len(said) == 1 and "exceeded quota" in said[0]
