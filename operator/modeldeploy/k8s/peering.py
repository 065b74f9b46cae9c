"""kopf's peering objects (kopf.dev/v1 KopfPeering, ClusterKopfPeering): read them, create a missing one.

kopf itself writes every replica's keep-alive into their status; the operator only
makes sure its object exists and reads who else is alive.
"""

from __future__ import annotations

from typing import Any

import kubernetes.client
from kubernetes.client.rest import ApiException

from modeldeploy.k8s.client import Kube

JSON = dict[str, Any]
GROUP = "kopf.dev"
VERSION = "v1"
NAMESPACED = "kopfpeerings"  # kind KopfPeering: for operators of some namespaces
CLUSTER = "clusterkopfpeerings"  # kind ClusterKopfPeering: for operators of the whole cluster
CRD_FILE = "crds/kopf-peering.yaml"


class PeeringError(Exception):
    """The peering cannot work as asked; the message says what to install or grant."""


def _plural(namespace: str | None) -> str:
    return CLUSTER if namespace is None else NAMESPACED


def _where(name: str, namespace: str | None) -> str:
    return (f"ClusterKopfPeering {name!r}" if namespace is None
            else f"KopfPeering {name!r} in namespace {namespace!r}")


def served(kube: Kube) -> set[str]:
    """The plurals the API server serves under kopf.dev/v1 (empty when the CRDs are not installed)."""
    try:
        found = kubernetes.client.CustomObjectsApi(kube.api).get_api_resources(GROUP, VERSION)
    except ApiException as exc:
        if exc.status == 404:
            return set()
        raise
    return {r.name for r in (found.resources or [])}


def require_crd(kube: Kube, namespace: str | None) -> None:
    """Fail with a clear message when the peering CRD this operator needs is missing."""
    plural = _plural(namespace)
    if plural not in served(kube):
        raise PeeringError(f"--peering needs kopf's peering CRDs ({plural}.{GROUP}), which this cluster "
                           f"does not serve; install them: kubectl apply -f {CRD_FILE}")


def get(kube: Kube, name: str, namespace: str | None) -> JSON | None:
    """One peering object, or None when it does not exist."""
    api = kubernetes.client.CustomObjectsApi(kube.api)
    try:
        if namespace is None:
            obj: Any = api.get_cluster_custom_object(GROUP, VERSION, CLUSTER, name)
        else:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, NAMESPACED, name)
        return dict(obj)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise PeeringError(f"cannot read {_where(name, namespace)}: forbidden; grant the operator "
                               f"get, list, watch, patch on {_plural(namespace)}.{GROUP}") from exc
        raise


def ensure(kube: Kube, name: str, namespace: str | None) -> JSON:
    """The peering object, created (empty) when missing: kopf waits forever for a missing one."""
    found = get(kube, name, namespace)
    if found is not None:
        return found
    api = kubernetes.client.CustomObjectsApi(kube.api)
    body: JSON = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterKopfPeering" if namespace is None
                  else "KopfPeering", "metadata": {"name": name}}
    try:
        if namespace is None:
            created: Any = api.create_cluster_custom_object(GROUP, VERSION, CLUSTER, body)
        else:
            created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, NAMESPACED, body)
        return dict(created)
    except ApiException as exc:
        if exc.status == 409:  # another replica made it meanwhile
            return get(kube, name, namespace) or body
        if exc.status == 403:
            raise PeeringError(f"{_where(name, namespace)} does not exist and the operator may not create "
                               f"it; create it (apiVersion {GROUP}/{VERSION}, no spec) or grant create on "
                               f"{_plural(namespace)}.{GROUP}") from exc
        raise
