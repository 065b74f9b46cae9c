"""kopf's peering objects (kopf.dev/v1 KopfPeering, ClusterKopfPeering): read them, create a missing one.

kopf itself writes every replica's keep-alive into their status; the operator only
makes sure its object exists and reads who else is alive.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.rest import ApiException

from modeldeploy.k8s.client import Kube
from modeldeploy.k8s.kinds import kind_of

JSON = dict[str, Any]
GROUP = "kopf.dev"
API_VERSION = f"{GROUP}/v1"
CRD_FILE = "crds/kopf-peering.yaml"


class PeeringError(Exception):
    """The peering cannot work as asked; the message says what to install or grant."""


def _kind(namespace: str | None) -> str:
    # KopfPeering serves operators of some namespaces, ClusterKopfPeering operators of the whole cluster.
    return "ClusterKopfPeering" if namespace is None else "KopfPeering"


def _plural(namespace: str | None) -> str:
    return kind_of(API_VERSION, _kind(namespace)).plural


def _where(name: str, namespace: str | None) -> str:
    return f"{_kind(namespace)} {name!r}" + ("" if namespace is None else f" in namespace {namespace!r}")


def served(kube: Kube) -> set[str]:
    """The plurals the API server serves under kopf.dev/v1 (empty when the CRDs are not installed)."""
    return kube.served(API_VERSION)


def require_crd(kube: Kube, namespace: str | None) -> None:
    """Fail with a clear message when the peering CRD this operator needs is missing."""
    plural = _plural(namespace)
    if plural not in served(kube):
        raise PeeringError(f"--peering needs kopf's peering CRDs ({plural}.{GROUP}), which this cluster "
                           f"does not serve; install them: kubectl apply -f {CRD_FILE}")


def get(kube: Kube, name: str, namespace: str | None) -> JSON | None:
    """One peering object, or None when it does not exist."""
    try:
        return kube.get(API_VERSION, _kind(namespace), namespace or "", name)
    except ApiException as exc:
        if exc.status == 403:
            raise PeeringError(f"cannot read {_where(name, namespace)}: forbidden; grant the operator "
                               f"get, list, watch, patch on {_plural(namespace)}.{GROUP}") from exc
        raise


def ensure(kube: Kube, name: str, namespace: str | None) -> JSON:
    """The peering object, created (empty) when missing: kopf waits forever for a missing one."""
    found = get(kube, name, namespace)
    if found is not None:
        return found
    body: JSON = {"apiVersion": API_VERSION, "kind": _kind(namespace),
                  "metadata": {"name": name, **({} if namespace is None else {"namespace": namespace})}}
    try:
        return kube.create(body)
    except ApiException as exc:
        if exc.status == 409:  # another replica made it meanwhile
            return get(kube, name, namespace) or body
        if exc.status == 403:
            raise PeeringError(f"{_where(name, namespace)} does not exist and the operator may not create "
                               f"it; create it (apiVersion {API_VERSION}, no spec) or grant create on "
                               f"{_plural(namespace)}.{GROUP}") from exc
        raise
