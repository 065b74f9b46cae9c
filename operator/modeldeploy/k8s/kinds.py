"""REST paths of the kinds the operator reads and writes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str) -> str:
        """The collection path, e.g. /apis/apps/v1/namespaces/ns/deployments; a cluster-scoped kind ignores
        `namespace`."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}" if self.namespaced else f"{prefix}/{self.plural}"

    def everywhere(self) -> str:
        """The collection path across every namespace, e.g. /apis/apps/v1/deployments."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/{self.plural}"

    def path(self, namespace: str, name: str, sub: str = "") -> str:
        """The path of one object, or of one of its subresources."""
        return f"{self.collection(namespace)}/{name}" + (f"/{sub}" if sub else "")


_KINDS = [
    Kind("v1", "Service", "services"),
    Kind("v1", "Pod", "pods"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("v1", "Event", "events"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("apps/v1", "ControllerRevision", "controllerrevisions"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    Kind("modeldeploy.dev/v1alpha1", "ModelDeployment", "modeldeployments"),
    Kind("modeldeploy.dev/v1alpha1", "AnalysisProvider", "analysisproviders", namespaced=False),
    Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    Kind("networking.istio.io/v1", "VirtualService", "virtualservices"),
    Kind("kopf.dev/v1", "KopfPeering", "kopfpeerings"),
    Kind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False),
]
KINDS = {(k.api_version, k.kind): k for k in _KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    """The Kind for an apiVersion and kind; unknown ones fail loudly."""
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise KeyError(f"modeldeploy does not manage {kind} ({api_version})") from None
