"""Services: `<md>` (what clients call), `<md>-stable` and `<md>-canary`."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import names
from modeldeploy.desired.workload import Owner

SERVICE_PORT = 80


def service(owner: Owner, name: str, revision: int | None) -> dict[str, Any]:
    """A ClusterIP Service on the model servers' http port.

    With no revision it selects every serving pod of the ModelDeployment; the
    replicas router realises weights as the share of ready pods behind it.
    """
    selector = {names.LABEL_MD: owner.name}
    if revision is not None:
        selector[names.LABEL_REVISION] = str(revision)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def url(owner: Owner) -> str:
    """The in-cluster address clients use."""
    return f"http://{owner.name}.{owner.namespace}.svc.cluster.local"


def selector(owner: Owner) -> str:
    """Every serving pod of the ModelDeployment, as a label selector string (the scale subresource's, which an
    autoscaler reads to find the pods it measures)."""
    return f"{names.LABEL_MD}={owner.name}"
