"""What the watches told the operator: its ModelDeployments, their children and the AnalysisProviders, in memory.

A reconcile reads from here instead of the API server, so a reconcile of a known object sends no GET or LIST.
Three sources feed it: watch events (kopf's streams, see handlers/operator.py), the answers to the
operator's own writes (so a reconcile never plans on an older view than the one it wrote), and a LIST of
one kind in one namespace when that kind is not yet known there.

Objects are kept as compact JSON, not as Python dicts: a Deployment of 3.7 KiB of JSON takes about 18 KiB
as nested dicts, and a fleet of a thousand models keeps about ten objects each. Each read decodes its own
copy, so a caller can never change what the cache holds.

Views only move forward: an object is replaced only by one with a newer resourceVersion, and a deleted
object leaves a tombstone, so a late watch event or a write's answer cannot bring it back.

A watch stream that breaks and starts again (410 Gone, a lost connection, a standby replica taking over)
lists its kind anew, and deletions in the gap never arrive as events. The cache notices a new listing
(initial-list events after a quiet spell) and marks the kind unknown in every namespace: the next reconcile
there lists it from the API server once, which drops what was deleted in the gap. Every kind is also listed
again after RESYNC_SECONDS, which bounds how long any missed deletion can live.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from modeldeploy.api import names

JSON = dict[str, Any]
Ref = tuple[str, str]  # (namespace, name); "" for cluster-scoped objects

# Kinds kept here. Children are found by their ModelDeployment's label; the others by name.
# EndpointSlices are kube-controller-manager's, but carry the labels of the Service they serve.
CHILD_KINDS = frozenset({"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                         "ControllerRevision", "Pod", "EndpointSlice"})
KINDS = CHILD_KINDS | {names.KIND, names.PROVIDER_KIND}
# Initial-list events this long after the kind's previous one mean its watch listed it anew.
LISTING_GAP_SECONDS = 30.0
RESYNC_SECONDS = 1800.0
# How often the operator lists everything it watches anyway, to catch a change whose watch event was lost
# (handlers/resync.py; `run --resync-seconds`).
RELIST_SECONDS = 300.0
# A tombstone outlives any event or write answer that could still be in flight for its object.
TOMBSTONE_SECONDS = 300.0


def resource_version(obj: JSON) -> int:
    """The object's resourceVersion as a number (etcd's revision, which Kubernetes lets clients compare);
    -1 when it has none or it is not a number, so anything with one is newer."""
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else -1


def slim(kind: str, obj: JSON) -> JSON:
    """What the reconcile needs of an object: never managedFields (often half its size); of a Pod only its
    metadata and status, since it is read for its restart counts and phase; of an EndpointSlice its endpoints'
    conditions, since it is read for how many are Ready."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    if kind == "Pod":
        return {"metadata": meta, "status": obj.get("status") or {}}
    if kind == "EndpointSlice":
        return {"metadata": meta, "endpoints": [{"conditions": e.get("conditions") or {},
                                                 "targetRef": e.get("targetRef")} for e in obj.get("endpoints") or []]}
    return {**obj, "metadata": meta}


def _owner(obj: JSON) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(names.LABEL_MD) or "")


def essence(kind: str, obj: JSON) -> str:
    """What of a ModelDeployment a reconcile acts on and only people change: its spec (by its generation), labels,
    annotations (the `kubectl modeldeploy` requests), finalizers and deletion. Its status is left out: the
    operator writes it, and a status edited by hand is never acted on. Empty for other kinds."""
    if kind != names.KIND:
        return ""
    meta = obj.get("metadata") or {}
    return json.dumps([meta.get("generation"), meta.get("labels"), meta.get("annotations"), meta.get("finalizers"),
                       meta.get("deletionTimestamp")], sort_keys=True, separators=(",", ":"))


def _changed_unseen(kind: str, old: _Entry, new: _Entry) -> bool:
    """Does a write's answer show more than the operator's own change? Of a ModelDeployment the operator writes
    its status, which is not in the essence, and its route finalizer, which is: a new essence is someone else's
    change, or that finalizer (then one reconcile more than needed, which finds nothing to do). Of a child it
    never writes the status, so a new status is its controller's."""
    if kind == names.KIND:
        return old.essence != new.essence
    return bool(old.object().get("status") != new.object().get("status"))


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    owner: str
    blob: bytes  # the slimmed object, as JSON
    essence: str  # see essence()

    def object(self) -> JSON:
        obj: JSON = json.loads(self.blob)
        return obj


def _ref(obj: JSON) -> Ref:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Cache:
    """Thread-safe: watch events arrive on the event loop, reconciles and their writes run in threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Ref, _Entry]] = {kind: {} for kind in KINDS}
        self._by_owner: dict[str, dict[Ref, set[str]]] = {kind: {} for kind in CHILD_KINDS}
        self._tombstones: dict[str, dict[Ref, tuple[int, float]]] = {kind: {} for kind in KINDS}
        self._listed: dict[tuple[str, str], float] = {}  # (kind, namespace) -> when it was last listed
        self._last_initial: dict[str, float] = {}
        self._woken: set[Ref] = set()  # ModelDeployments an answer showed a change of (see answered)
        self.relists = 0  # watch listings noticed after the first one of each kind
        self.events: Counter[str] = Counter()  # watch events received, by kind

    # -- what arrives --------------------------------------------------------------------------------------
    def seen(self, kind: str, event_type: str | None, obj: JSON) -> bool:
        """A watch event: kopf's type None for an object of a (re)listing, ADDED, MODIFIED or DELETED. Is it news?

        A deletion is, unless it is of an earlier object of the same name. Otherwise only a view newer than the
        one held: the echo of the operator's own write, whose answer is held already, is not, so no write wakes
        a reconcile of its own (what the write changed, the reconcile that sent it has planned for; what the
        cluster does next, such as a Deployment's pods becoming Ready, comes as a newer view). A ModelDeployment
        is news when first seen (at start, every one is reconciled once) or when its essence changed, not when
        only its status did. A child first learnt of in a listing (at start) is not: its ModelDeployment's own
        first reconcile reads it."""
        if kind not in KINDS:
            return False
        with self._lock:
            self.events[kind] += 1
            if event_type == "DELETED":
                ref, version = _ref(obj), resource_version(obj)
                held = self._objects[kind].get(ref)
                if held is not None and 0 <= version < held.version:
                    # A late deletion of an earlier object of that name: the one held was made after it (the
                    # operator deletes a canary Service at promotion and makes it again for the next canary).
                    # Found by the fault harness, with watch events 2 s late.
                    return False
                self._remove(kind, ref, version)
                return True
            if event_type is None:
                self._listing(kind)
            ref = _ref(obj)
            old = self._objects[kind].get(ref)
            self._put(kind, obj)
            new = self._objects[kind].get(ref)
            if new is old or new is None:
                return False  # older than, or as old as, the view held
            if kind == names.KIND:
                return old is None or old.essence != new.essence
            return old is not None or event_type is not None

    def answered(self, obj: JSON | None) -> None:
        """The API server's answer to a write or a GET: the object as it now is.

        An answer can carry what someone else changed after the reconcile that wrote had read its view: a spec
        applied meanwhile (a status write answers with the whole ModelDeployment), a Deployment's status that
        its controller updated. The watch events of those changes then arrive older than the view held, so
        they are not news, and nothing else may come to wake the ModelDeployment: it is marked for another
        reconcile instead (see take_woken). (Found in CI: a spec applied during a status write sat unobserved.)"""
        kind = (obj or {}).get("kind")
        if obj and kind in KINDS:
            with self._lock:
                ref = _ref(obj)
                old = self._objects[str(kind)].get(ref)
                self._put(str(kind), obj)
                new = self._objects[str(kind)].get(ref)
                if old is not None and new is not None and new is not old and _changed_unseen(str(kind), old, new):
                    self._woken.add((ref[0], ref[1] if kind == names.KIND else new.owner))

    def take_woken(self, namespace: str, name: str) -> bool:
        """Did an answer show a change of this ModelDeployment's (or a child's) that no watch event will report?
        Clears the mark."""
        with self._lock:
            if (namespace, name) in self._woken:
                self._woken.discard((namespace, name))
                return True
            return False

    def deleted(self, kind: str, namespace: str, name: str) -> None:
        """The operator deleted it (in the background: it is gone at once, only its dependents linger)."""
        if kind in KINDS:
            with self._lock:
                ref = (namespace, name)
                held = self._objects[kind].get(ref)
                self._remove(kind, ref, held.version if held is not None else -1)

    def listed(self, kind: str, namespace: str, items: Iterable[JSON], list_version: str) -> set[Ref]:
        """A LIST of every object of a kind the operator made in a namespace, at the list's resourceVersion.
        What the cache holds beyond it is dropped, unless a newer event brought it after the list was cut.

        Returns the ModelDeployments the list told something new, as a watch event would have: those whose
        child of this kind it showed newer or gone, or, for ModelDeployments themselves, whose essence changed,
        which appeared, or which are gone. (A periodic resync wakes those: see handlers/resync.py.)"""
        at = int(list_version) if str(list_version).isdigit() else -1
        woken: set[Ref] = set()
        with self._lock:
            objects = self._objects[kind]

            def touched(ref: Ref, old: _Entry | None, new: _Entry | None) -> None:
                if new is old:
                    return
                if kind == names.KIND:
                    if old is None or new is None or old.essence != new.essence:
                        woken.add(ref)
                    return
                for entry in (old, new):
                    if entry is not None and entry.owner:
                        woken.add((ref[0], entry.owner))

            fresh = {(namespace, str(item["metadata"]["name"])) for item in items}
            for item in items:
                ref = (namespace, str(item["metadata"]["name"]))
                old = objects.get(ref)
                self._put(kind, {**item, "metadata": {**item["metadata"], "namespace": namespace}})
                touched(ref, old, objects.get(ref))
            for ref, entry in list(objects.items()):
                if ref[0] == namespace and ref not in fresh and entry.version <= at:
                    self._remove(kind, ref, entry.version)
                    touched(ref, entry, None)
            self._listed[kind, namespace] = self._clock()
        return woken

    def namespaces(self, kind: str) -> set[str]:
        """The namespaces the cache holds objects of this kind in."""
        with self._lock:
            return {ref[0] for ref in self._objects[kind]}

    # -- what a reconcile reads ------------------------------------------------------------------------------
    def known(self, kind: str, namespace: str) -> bool:
        """Does the cache hold every object of this kind the operator made in this namespace?"""
        with self._lock:
            at = self._listed.get((kind, namespace))
            return at is not None and self._clock() - at < RESYNC_SECONDS

    def owned(self, kind: str, namespace: str, md: str) -> list[JSON] | None:
        """The objects of a kind one ModelDeployment owns; None when the cache cannot tell (not listed yet)."""
        if not self.known(kind, namespace):
            return None
        with self._lock:
            objects = self._objects[kind]
            entries = [objects[(namespace, n)] for n in sorted(self._by_owner[kind].get((namespace, md), ()))]
        return [entry.object() for entry in entries]

    def get(self, kind: str, namespace: str, name: str) -> tuple[bool, JSON | None]:
        """(True, the object) or (True, None) when the cache knows, (False, None) when it must be asked for.
        It knows an object it holds and one it saw deleted; of anything else it cannot say it does not exist."""
        with self._lock:
            entry = self._objects.get(kind, {}).get((namespace, name))
            if entry is None:
                return (namespace, name) in self._tombstones.get(kind, {}), None
        return True, entry.object()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(objects) for objects in self._objects.values())

    # -- under the lock ----------------------------------------------------------------------------------------
    def _listing(self, kind: str) -> None:
        now = self._clock()
        last = self._last_initial.get(kind)
        if last is None or now - last > LISTING_GAP_SECONDS:
            # A new listing: deletions in a gap before it never arrive, so the kind is listed again on demand.
            if last is not None:
                self.relists += 1
            for key in [k for k in self._listed if k[0] == kind]:
                del self._listed[key]
        self._last_initial[kind] = now

    def _put(self, kind: str, obj: JSON) -> None:
        ref, version = _ref(obj), resource_version(obj)
        tomb = self._tombstones[kind].get(ref)
        if tomb is not None:
            if version <= tomb[0]:
                return  # an older view of an object already deleted
            del self._tombstones[kind][ref]  # created again under the same name
        old = self._objects[kind].get(ref)
        if old is not None and (old.version > version or old.version == version >= 0):
            return  # a late event or answer, or an echo: the cache already holds this view or a newer one
        owner = _owner(obj)
        self._objects[kind][ref] = _Entry(version, owner, json.dumps(slim(kind, obj), separators=(",", ":")).encode(),
                                          essence(kind, obj))
        if kind in CHILD_KINDS:
            if old is not None and old.owner != owner:
                self._unindex(kind, ref, old.owner)
            self._by_owner[kind].setdefault((ref[0], owner), set()).add(ref[1])

    def _remove(self, kind: str, ref: Ref, version: int) -> None:
        old = self._objects[kind].pop(ref, None)
        if old is not None and kind in CHILD_KINDS:
            self._unindex(kind, ref, old.owner)
        now = self._clock()
        self._tombstones[kind][ref] = (max(version, old.version if old is not None else -1), now)
        for other, (_, when) in list(self._tombstones[kind].items()):
            if now - when > TOMBSTONE_SECONDS:
                del self._tombstones[kind][other]

    def _unindex(self, kind: str, ref: Ref, owner: str) -> None:
        members = self._by_owner[kind].get((ref[0], owner))
        if members is not None:
            members.discard(ref[1])
            if not members:
                del self._by_owner[kind][(ref[0], owner)]
