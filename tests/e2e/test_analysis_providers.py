"""End to end: analysis endpoints belong to the platform. The operator runs as installed (no inline analysis
URLs); metrics name AnalysisProviders, and what a tenant writes cannot send the operator anywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from helpers import holds_for
from modeldeployments import MD, apply, deployments, manifest, status, wait_phase
from served import endpoints_now

STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}]


def body(namespace: str, version: str, metric: dict[str, Any] | None) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=4)
    b["spec"]["rollout"] = {"steps": STEPS, "scaleDownDelaySeconds": 2, **({"analysis": {
        "interval": "1s", "failureLimit": 0, "metrics": [{"name": "smoke", **metric}]}} if metric else {})}
    return b


@pytest.fixture
def providers(cluster: Any, crd: None, namespace: str) -> Iterator[Any]:
    """Create AnalysisProviders (cluster-scoped, named after this test's namespace); deleted afterwards."""
    made: list[str] = []

    def create(suffix: str, spec: dict[str, Any], check: bool = True) -> Any:
        name = f"{namespace}-{suffix}"[:253]
        obj = {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "AnalysisProvider", "metadata": {"name": name},
               "spec": spec}
        proc = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=check)
        if proc.returncode == 0:
            made.append(name)
        return name if check else proc

    yield create
    for name in made:
        cluster.kubectl("delete", "analysisprovider", name, "--wait=false", check=False)


@pytest.fixture
def installed(start_operator: Any, namespace: str) -> Any:
    """The operator as installed: inline analysis URLs off; its own namespace (where provider tokens live) is
    this test's."""
    return start_operator("--own-namespace", namespace)


def test_a_metric_naming_a_provider_is_measured_where_the_provider_says(cluster, namespace, installed, providers,
                                                                        webhooks):
    hook = webhooks(204)
    # Given a webhook provider with a base path, a tenant header and a token the platform keeps
    cluster.kubectl("create", "secret", "generic", "checks-token", "-n", namespace, "--from-literal=token=s3cret")
    name = providers("checks", {"webhook": {"baseURL": hook.url("/platform/checks"),
                                            "headers": {"X-Scope-OrgID": "$namespace"},
                                            "bearerTokenSecret": {"name": "checks-token", "key": "token"}}})
    metric = {"webhook": {"provider": name, "path": "/smoke"}}
    apply(cluster, body(namespace, "1", metric))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When revision 2 rolls out, judged by it
    apply(cluster, body(namespace, "2", metric))
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=60)
    # Then the provider's endpoint was asked, at its base path plus the metric's, with its header and token
    asked = hook.for_revision(2)
    assert asked, hook.requests
    assert {r.path for r in asked} == {"/platform/checks/smoke"}
    assert {r.headers.get("X-Scope-OrgID") for r in asked} == {namespace}
    assert {r.headers.get("Authorization") for r in asked} == {"Bearer s3cret"}
    analysis = status(cluster, namespace)["analysis"]
    assert analysis["passed"] >= 1 and "s3cret" not in str(analysis), analysis


def test_an_inline_url_is_refused_and_the_model_keeps_serving(cluster, namespace, installed, webhooks):
    hook = webhooks(200)
    apply(cluster, body(namespace, "1", None))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # When a tenant writes an analysis URL of its own, with the `?` that would swallow an appended path
    apply(cluster, body(namespace, "2", {"webhook": {"url": hook.url("/admin/reset?")}}))
    st = wait_phase(cluster, namespace, "Failed")
    # Then the spec is refused, saying where and what to do, and nothing was sent there
    assert "spec.rollout.analysis.metrics[0].webhook.url" in st["message"], st["message"]
    assert "AnalysisProvider" in st["message"] and "--allow-inline-analysis-urls" in st["message"]
    holds_for(lambda: endpoints_now(cluster, namespace, MD), duration=4, until=lambda n: n == 4,
              message="revision 1 keeps serving all its pods")
    assert hook.requests == []
    assert sorted(deployments(cluster, namespace)) == [f"{MD}-r1"]


def test_a_path_cannot_leave_the_providers_host_and_a_redirect_is_not_followed(cluster, namespace, installed,
                                                                                providers, webhooks):
    foreign = webhooks(200)
    port = foreign.base.rsplit(":", 1)[1]
    provider_side = webhooks(302, location=foreign.url("/stolen"))
    name = providers("checks", {"webhook": {"baseURL": provider_side.url("/base")}})
    # A path that tries to name another host: user info, a second authority, a dot-dot walk
    tricks = [f"/@127.0.0.1:{port}/stolen", f"//127.0.0.1:{port}/stolen", f"/../../127.0.0.1:{port}/stolen"]
    metrics = [{"name": f"trick-{i}", "webhook": {"provider": name, "path": p}} for i, p in enumerate(tricks)]
    b = body(namespace, "1", None)
    b["spec"]["rollout"]["analysis"] = {"interval": "1s", "inconclusiveLimit": 1, "metrics": metrics}
    apply(cluster, b)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    b2 = body(namespace, "2", None)
    b2["spec"]["rollout"]["analysis"] = b["spec"]["rollout"]["analysis"]
    apply(cluster, b2)
    st = wait_phase(cluster, namespace, "Paused", timeout=60)
    # Then every request went to the provider's own host (which answered with redirects), none elsewhere
    assert foreign.requests == [], [(r.method, r.path) for r in foreign.requests]
    assert {r.path.split("/stolen")[0] for r in provider_side.requests} <= {
        f"/base/@127.0.0.1:{port}", f"/base//127.0.0.1:{port}", f"/base/../../127.0.0.1:{port}", f"/127.0.0.1:{port}"}
    assert provider_side.requests, "the provider's endpoint was never asked"
    # ... and the runs were Inconclusive (a redirect is no verdict), so a person is asked, nothing failed
    assert st["conditions"][0]["reason"] == "AnalysisInconclusive" or any(
        c["reason"] == "AnalysisInconclusive" for c in st["conditions"]), st["conditions"]
    assert "redirects are not followed" in st["message"], st["message"]


@pytest.mark.parametrize(("spec", "says"), [
    ({"webhook": {"baseURL": "http://checks.platform/?"}}, "spec.webhook.baseURL"),
    ({"prometheus": {"address": "http://admin@prom:9090"}}, "spec.prometheus.address"),
    ({"prometheus": {"address": "http://prom:9090", "headers": {"Authorization": "Bearer x"}}},
     "credentials go in bearerTokenSecret"),
    ({"prometheus": {"address": "http://prom:9090"}, "webhook": {"baseURL": "http://c"}}, "exactly one of"),
], ids=["query-in-base", "user-info", "authorization-header", "both"])
def test_a_provider_that_could_be_bent_is_refused_at_admission(cluster, crd, providers, spec, says):
    proc = providers("bad", spec, check=False)
    assert proc.returncode != 0 and says in proc.stderr, proc.stderr


def test_a_token_is_read_only_from_the_operators_own_namespace(cluster, namespace, installed, providers, webhooks):
    hook = webhooks(204)
    # The Secret exists, but in another namespace than the operator's
    other = "x-" + namespace[-40:].strip("-")
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("create", "secret", "generic", "checks-token", "-n", other, "--from-literal=token=t")
        name = providers("checks", {"webhook": {"baseURL": hook.url("/c"),
                                                "bearerTokenSecret": {"name": "checks-token", "key": "token"}}})
        metric = {"webhook": {"provider": name}}
        apply(cluster, body(namespace, "1", metric))
        wait_phase(cluster, namespace, "Healthy", stableRevision=1)
        apply(cluster, body(namespace, "2", metric))
        st = wait_phase(cluster, namespace, "Paused", timeout=60)
        # Then nothing was sent without the token, and status says which Secret it could not read, and where
        assert hook.requests == []
        assert f"Secret 'checks-token' in the operator's namespace '{namespace}' cannot be read" in st["message"]
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
