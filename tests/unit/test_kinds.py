"""REST paths of the kinds the operator reads and writes."""

from __future__ import annotations

import pytest

from modeldeploy.k8s.kinds import kind_of


@pytest.mark.parametrize(("api_version", "kind", "namespace", "name", "sub", "path"), [
    ("v1", "Service", "ml", "fraud", "", "/api/v1/namespaces/ml/services/fraud"),
    ("apps/v1", "Deployment", "ml", "fraud-r2", "", "/apis/apps/v1/namespaces/ml/deployments/fraud-r2"),
    ("modeldeploy.dev/v1alpha1", "ModelDeployment", "ml", "fraud", "status",
     "/apis/modeldeploy.dev/v1alpha1/namespaces/ml/modeldeployments/fraud/status"),
    ("kopf.dev/v1", "KopfPeering", "ml", "ha", "", "/apis/kopf.dev/v1/namespaces/ml/kopfpeerings/ha"),
    # Cluster-scoped: the namespace is not part of the path.
    ("kopf.dev/v1", "ClusterKopfPeering", "", "ha", "", "/apis/kopf.dev/v1/clusterkopfpeerings/ha"),
])
def test_path(api_version: str, kind: str, namespace: str, name: str, sub: str, path: str) -> None:
    assert kind_of(api_version, kind).path(namespace, name, sub) == path


def test_an_unmanaged_kind_fails_loudly() -> None:
    with pytest.raises(KeyError, match="modeldeploy does not manage ConfigMap"):
        kind_of("v1", "ConfigMap")
