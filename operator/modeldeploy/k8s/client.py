"""A small typed door to the API server: read, server-side apply, delete, status, events."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.rest import ApiException

from modeldeploy.api import names
from modeldeploy.k8s.cache import CHILD_KINDS, KINDS, Cache
from modeldeploy.k8s.kinds import kind_of
from modeldeploy.k8s.throttle import Throttle

JSON = dict[str, Any]
# (connect, read) seconds for every request: an API server that stops answering fails a reconcile, which is
# retried, instead of holding its thread forever. Reads of one object and writes are small; 30 s is generous.
TIMEOUT = (5.0, 30.0)


class Kube:
    """The operator's API client. It counts its requests: in total (for the operator's metrics) and per
    thread, so a reconcile, which runs in one thread while others run beside it, counts only its own.

    With a cache (the operator's; the CLI has none), reads of the kinds it keeps are answered from it
    whenever it knows, and every write's answer goes into it."""

    def __init__(self, api: kubernetes.client.ApiClient, cache: Cache | None = None,
                 throttle: Throttle | None = None) -> None:
        self.api = api
        self.cache = cache
        self.throttle = throttle  # the operator's --kube-qps/--kube-burst; the CLI sends too few to need one
        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()
        self._mine = threading.local()

    @property
    def writes_here(self) -> int:
        """Writes sent from the calling thread."""
        return int(getattr(self._mine, "writes", 0))

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Kube:
        """From a kubeconfig, or the in-cluster service account."""
        if kubeconfig:
            return cls(kubernetes.config.new_client_from_config(config_file=kubeconfig))
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    # -- transport ----------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
              content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if method == "GET":
            with self._lock:
                self.reads += 1
        else:
            with self._lock:
                self.writes += 1
            self._mine.writes = self.writes_here + 1
        if self.throttle is not None:
            self.throttle.wait()
        serialized = self.api.param_serialize(method, path, query_params=query or [], header_params=headers,
                                              body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(*serialized, _request_timeout=TIMEOUT)
        response.read()
        # Error bodies are decoded too, so ApiException carries the server's message.
        types = {"2XX": "object", "4XX": "object", "5XX": "object"}
        return self.api.response_deserialize(response, types).data

    # -- reads ----------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JSON | None:
        """One object, or None when it does not exist. From the cache when it knows (a copy of its own)."""
        if self.cache is not None and kind in KINDS:
            known, cached = self.cache.get(kind, namespace, name)
            if known:
                return cached
        try:
            obj: JSON = self._call("GET", kind_of(api_version, kind).path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        self._answered(obj)
        return obj

    def find(self, api_version: str, kind: str, namespace: str, selector: str) -> list[JSON]:
        """Objects of a kind in a namespace matching a label selector."""
        out = self._call("GET", kind_of(api_version, kind).collection(namespace),
                         query=[("labelSelector", selector)])
        items: list[JSON] = out.get("items", [])
        return items

    def owned(self, api_version: str, kind: str, namespace: str, md: str) -> list[JSON]:
        """The objects of a kind that the operator made for one ModelDeployment (copies, when cached).
        With a cache that does not know the kind in this namespace yet, one LIST of everything the operator
        made of that kind there teaches it, for this ModelDeployment and every other one in the namespace."""
        if self.cache is None or kind not in CHILD_KINDS:
            selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_MD}={md}"
            return self.find(api_version, kind, namespace, selector)
        found = self.cache.owned(kind, namespace, md)
        if found is None:
            out = self._call("GET", kind_of(api_version, kind).collection(namespace),
                             query=[("labelSelector", f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}")])
            self.cache.listed(kind, namespace, out.get("items") or [],
                              str((out.get("metadata") or {}).get("resourceVersion") or ""))
            found = self.cache.owned(kind, namespace, md) or []
        return found

    def relist(self, api_version: str, kind: str, namespace: str | None) -> set[tuple[str, str]]:
        """LIST a kind the cache keeps (what the operator made of it; every ModelDeployment) in one namespace, or
        in all (None), into the cache. Returns the ModelDeployments it told something no watch event had."""
        assert self.cache is not None
        found = kind_of(api_version, kind)
        query = [] if kind == names.KIND else [("labelSelector", f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}")]
        out = self._call("GET", found.collection(namespace) if namespace else found.everywhere(), query=query)
        at = str((out.get("metadata") or {}).get("resourceVersion") or "")
        items = out.get("items") or []
        by_namespace: dict[str, list[JSON]] = {ns: [] for ns in
                                               ([namespace] if namespace else self.cache.namespaces(kind))}
        for item in items:
            by_namespace.setdefault(str(item["metadata"].get("namespace") or ""), []).append(item)
        woken: set[tuple[str, str]] = set()
        for ns, listed in by_namespace.items():
            woken |= self.cache.listed(kind, ns, listed, at)
        return woken

    def served(self, api_version: str) -> set[str]:
        """The plurals the API server serves under a group version (empty when it serves none)."""
        try:
            found: JSON = self._call("GET", f"/apis/{api_version}")
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise
        return {r["name"] for r in found.get("resources", [])}

    # -- writes ------------------------------------------------------------------
    def create(self, manifest: JSON) -> JSON:
        """Create an object; a 409 (it exists) is the caller's to handle."""
        meta = manifest["metadata"]
        out: JSON = self._call("POST", kind_of(manifest["apiVersion"], manifest["kind"]).collection(
            meta.get("namespace", "")), body=manifest)
        self._answered(out)
        return out

    def apply(self, manifest: JSON) -> JSON:
        """Server-side apply under the operator's field manager; it takes back fields edited by hand."""
        meta = manifest["metadata"]
        path = kind_of(manifest["apiVersion"], manifest["kind"]).path(meta["namespace"], meta["name"])
        out: JSON = self._call("PATCH", path, body=manifest, content_type="application/apply-patch+yaml",
                               query=[("fieldManager", names.FIELD_MANAGER), ("force", "true")])
        self._answered(out)
        return out

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete in the background; a missing object is already deleted."""
        try:
            self._call("DELETE", kind_of(api_version, kind).path(namespace, name),
                       body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise
        if self.cache is not None:
            self.cache.deleted(kind, namespace, name)

    def patch_status(self, namespace: str, name: str, status: JSON) -> None:
        """Merge-patch the ModelDeployment's status subresource."""
        path = kind_of(names.API_VERSION, names.KIND).path(namespace, name, "status")
        try:
            self._answered(self._call("PATCH", path, body={"status": status},
                                      content_type="application/merge-patch+json"))
        except ApiException as exc:
            if exc.status == 404 and self.cache is not None:
                self.cache.deleted(names.KIND, namespace, name)  # the next reconcile finds it gone
            raise

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: JSON) -> JSON:
        """A JSON merge patch (for the annotations the CLI writes)."""
        out: JSON = self._call("PATCH", kind_of(api_version, kind).path(namespace, name), body=body,
                               content_type="application/merge-patch+json")
        self._answered(out)
        return out

    def json_patch(self, api_version: str, kind: str, namespace: str, name: str, ops: list[JSON]) -> JSON:
        """A JSON Patch; lead with a resourceVersion test to change only what was read."""
        out: JSON = self._call("PATCH", kind_of(api_version, kind).path(namespace, name), body=ops,
                               content_type="application/json-patch+json")
        self._answered(out)
        return out

    def _answered(self, obj: Any) -> None:
        if self.cache is not None and isinstance(obj, dict):
            self.cache.answered(obj)

    def event(self, md: JSON, type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on the ModelDeployment."""
        meta = md["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": names.API_VERSION, "kind": names.KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "modeldeploy"},
            "reportingComponent": "modeldeploy.dev/operator",
            "reportingInstance": "modeldeploy",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call("POST", kind_of("v1", "Event").collection(meta["namespace"]), body=body)
