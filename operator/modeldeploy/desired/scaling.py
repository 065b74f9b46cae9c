"""HorizontalPodAutoscaler and PodDisruptionBudget of the serving revision."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import names
from modeldeploy.api.spec import Autoscaling
from modeldeploy.desired.workload import Owner


def hpa(owner: Owner, autoscaling: Autoscaling) -> dict[str, Any]:
    """An autoscaling/v2 HPA on the ModelDeployment's own scale subresource: it sets spec.replicas, and the
    operator splits that one number between the revisions, so a canary never fights the autoscaler."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owner.metadata(owner.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": names.API_VERSION, "kind": names.KIND, "name": owner.name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization",
                "averageUtilization": autoscaling.target_cpu_utilization_percentage}}}],
        },
    }


def pdb(owner: Owner) -> dict[str, Any]:
    """Voluntary disruptions take at most one serving pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": owner.metadata(owner.name),
        "spec": {"maxUnavailable": 1,
                 "selector": {"matchLabels": {names.LABEL_MD: owner.name}}},
    }
