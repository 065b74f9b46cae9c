"""The comparator a compare metric asks for: the Deployment and Service `<md>-mirror`.

It lives while a canary runs, beside it (where the spec's pod template places the model's pods), and starts anew
for each canary revision, so its counts are that revision's alone. Its pods carry no `<md>` label: no Service of
the model selects them, so it never answers a client. It runs the operator's image, holds no API credentials and
reaches only the two Services it is given.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api import names
from modeldeploy.api.spec import CompareMetric, ModelDeploymentSpec
from modeldeploy.comparator import STATS_PORT, TRAFFIC_PORT
from modeldeploy.desired.service import SERVICE_PORT
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.workload import Owner

CONTAINER = "comparator"
ANN_CANARY_REVISION = f"{names.GROUP}/canary-revision"
# Small: it holds two answers per request in flight and a few counters.
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def objects(owner: Owner, spec: ModelDeploymentSpec, compare: CompareMetric, stable: int, canary: int,
            settings: Settings) -> list[dict[str, Any]]:
    """The comparator's Deployment and Service for this canary."""
    return [deployment(owner, spec, compare, stable, canary, settings), service(owner)]


def _pod_labels(owner: Owner) -> dict[str, str]:
    # Neither LABEL_MD nor managed-by: the operator's pod watch (managed-by) follows model servers only.
    return {names.LABEL_NAME: owner.name, names.LABEL_MIRROR_OF: owner.name}


def deployment(owner: Owner, spec: ModelDeploymentSpec, compare: CompareMetric, stable: int, canary: int,
               settings: Settings) -> dict[str, Any]:
    name, ns = names.mirror_name(owner.name), owner.namespace
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.comparator_image,
        "args": ["compare", "--stable", f"http://{owner.name}-stable.{ns}.svc:{SERVICE_PORT}",
                 "--canary", f"http://{owner.name}-canary.{ns}.svc:{SERVICE_PORT}",
                 "--stable-revision", str(stable), "--canary-revision", str(canary),
                 "--tolerance", repr(compare.tolerance)],
        "ports": [{"name": "http", "containerPort": TRAFFIC_PORT, "protocol": "TCP"},
                  {"name": "stats", "containerPort": STATS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "stats"}, "periodSeconds": 2},
        "resources": RESOURCES,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    template = spec.template
    if template and template.node_selector:
        pod_spec["nodeSelector"] = dict(template.node_selector)
    if template and template.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True, mode="json")
                                   for t in template.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(name, {names.LABEL_MIRROR_OF: owner.name}),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {names.LABEL_MIRROR_OF: owner.name}},
            "revisionHistoryLimit": 1,
            # A new canary's comparator replaces the last one's: counts never mix two revisions.
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": _pod_labels(owner),
                                      "annotations": {ANN_CANARY_REVISION: str(canary)}},
                         "spec": pod_spec},
        },
    }


def service(owner: Owner) -> dict[str, Any]:
    """What the mirror copies requests to (port 80, as the model's Services), and the counts' port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(names.mirror_name(owner.name), {names.LABEL_MIRROR_OF: owner.name}),
        "spec": {
            "type": "ClusterIP",
            "selector": {names.LABEL_MIRROR_OF: owner.name},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
                      {"name": "stats", "port": STATS_PORT, "targetPort": "stats", "protocol": "TCP"}],
        },
    }
