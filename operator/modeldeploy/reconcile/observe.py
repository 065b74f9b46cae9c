"""Read the world one ModelDeployment cares about into plain facts."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.rest import ApiException

from modeldeploy.api import names
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.rollout import parse_timestamp
from modeldeploy.desired.workload import SERVER_CONTAINER, split_pvc_uri
from modeldeploy.k8s.client import JSON, Kube


def _revision_of(obj: JSON) -> int | None:
    try:
        return int(obj["metadata"]["labels"][names.LABEL_REVISION])
    except (KeyError, ValueError, TypeError):
        return None


def _containers(pod: JSON) -> list[JSON]:
    st = pod.get("status") or {}
    return (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])


def pod_restarts(pod: JSON) -> int:
    """The highest restart count among a pod's containers, init containers included. Pods matter to the
    reconcile for this alone: how many are Ready, their Deployment's status says."""
    return max((int(cs.get("restartCount", 0)) for cs in _containers(pod)), default=0)


def last_exit(container: JSON) -> str:
    """How a container last ended, for people: its name, exit code, reason and termination message. The
    container tells a model download that fails (the storage initializer) from a server that crashes."""
    ended = (container.get("lastState") or {}).get("terminated") or {}
    text = f"container {container.get('name', '?')}"
    if "exitCode" in ended:
        text += f" last exited {ended['exitCode']}"
        if ended.get("reason"):
            text += f" ({ended['reason']})"
    return text + _message(ended)


def _message(terminated: JSON) -> str:
    # A termination message is often a log's last lines: what went wrong is at its end.
    message = " ".join(str(terminated.get("message") or "").split())
    return f": {message if len(message) <= 300 else '...' + message[-300:]}" if message else ""


# Waiting reasons of a container that will not start without a change (to the spec, an image, a Secret): the
# kubelet retries them, but a person must act. (CrashLoopBackOff is told by the restart count instead.)
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                           "CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


def stuck(dep: JSON, pods: list[JSON]) -> str:
    """Why a revision's pods cannot start, for people: a container's waiting reason and the kubelet's message,
    or the ReplicaSet's refusal to create pods (a quota, an admission webhook) that the Deployment reports."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
            # An init container that failed (a model that cannot be downloaded) holds the pod back from its
            # first failure on: the kubelet retries it, but it rarely heals without a change.
            if not container.get("ready") and (ended := _failed(container)):
                return (f"pod {pod['metadata']['name']}: init container {container.get('name', '?')} failed "
                        f"(exit {ended.get('exitCode')})" + _message(ended))
        for container in _containers(pod):
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                message = " ".join(str(waiting.get("message") or "").split())[:300]
                return (f"pod {pod['metadata']['name']}: container {container.get('name', '?')} "
                        f"{waiting['reason']}" + (f": {message}" if message else ""))
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for cond in (pod.get("status") or {}).get("conditions") or []:
            # Pending for lack of room on every node (GPUs most often): the scheduler's own words.
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                message = " ".join(str(cond.get("message") or "").split())[:300]
                return f"pod {pod['metadata']['name']} cannot be scheduled" + (f": {message}" if message else "")
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            message = " ".join(str(cond.get("message") or "").split())[:300]
            return f"pods cannot be created ({cond.get('reason', 'FailedCreate')}): {message}"
    return ""


def _failed(container: JSON) -> JSON:
    """How a container ended with an error, now or before its current retry; {} when it has not."""
    for state in (container.get("state") or {}, container.get("lastState") or {}):
        ended = state.get("terminated") or {}
        if ended.get("exitCode", 0) != 0:
            return dict(ended)
    return {}


# Restarts count toward a crash loop only while recent: a pod that restarted a few times over weeks is not one.
CRASH_WINDOW = timedelta(minutes=10)


def _recent(container: JSON, now: datetime | None) -> bool:
    """Did the container last end within CRASH_WINDOW (or can it not tell)?"""
    ended = parse_timestamp(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
    return now is None or ended is None or now - ended <= CRASH_WINDOW


def _restarts(pods: list[JSON], now: datetime | None = None) -> tuple[int, str, str]:
    """The highest recent container restart count among pods, that pod's name, and how that container last
    ended."""
    best, who, how = 0, "", ""
    for pod in pods:
        for container in _containers(pod):
            if (count := int(container.get("restartCount", 0))) > best and _recent(container, now):
                best, who, how = count, pod["metadata"]["name"], last_exit(container)
    return best, who, how


def _live(pods: list[JSON]) -> list[JSON]:
    """Pods that still run or may (terminating ones too); not those that ended for good, such as evicted ones."""
    return [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def loading_since(pods: list[JSON]) -> datetime | None:
    """When the longest-loading pod started on its node, of the pods whose server is not yet Ready: fetching
    and loading the model take from then (a container restart does not start the clock again; the time spent
    waiting for a node does not count)."""
    starts = []
    for pod in pods:
        st = pod.get("status") or {}
        started = parse_timestamp(st.get("startTime"))
        if (pod.get("metadata") or {}).get("deletionTimestamp") or started is None:
            continue
        server = next((c for c in _containers(pod) if c.get("name") == SERVER_CONTAINER), {})
        if not server.get("ready"):
            starts.append(started)
    return min(starts) if starts else None


def last_ready_at(pods: list[JSON]) -> datetime | None:
    """When the last of the Ready pods became Ready (their Ready condition's transition)."""
    times = [parse_timestamp(c.get("lastTransitionTime")) for pod in pods
             for c in (pod.get("status") or {}).get("conditions") or []
             if c.get("type") == "Ready" and c.get("status") == "True"]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def carried(dep: JSON, revision: int) -> RevisionRecord | None:
    """The revision a Deployment says it runs, from its own labels and annotations."""
    meta = dep["metadata"]
    ann = meta.get("annotations") or {}
    digest = (meta.get("labels") or {}).get(names.LABEL_REVISION_HASH)
    try:
        template = json.loads(ann.get(names.ANN_SERVING_TEMPLATE) or "")
    except ValueError:
        return None
    if not digest or not isinstance(template, dict):
        return None
    return RevisionRecord(number=revision, hash=digest, model_version=ann.get(names.ANN_MODEL_VERSION, ""),
                          outcome="", template=template)


def deployments(deps: list[JSON], pods: list[JSON], now: datetime | None = None) -> dict[int, DeploymentFacts]:
    """The revision Deployments, with readiness and crash counts (restarts within CRASH_WINDOW of `now`)."""
    out: dict[int, DeploymentFacts] = {}
    pods_by_rev: dict[int, list[JSON]] = {}
    for pod in pods:
        rev = _revision_of(pod)
        if rev is not None:
            pods_by_rev.setdefault(rev, []).append(pod)
    for dep in deps:
        rev = _revision_of(dep)
        if rev is None or dep["metadata"].get("deletionTimestamp"):
            continue
        live = _live(pods_by_rev.get(rev, []))
        st = dep.get("status", {})
        restarts, crashing, exit_text = _restarts(pods_by_rev.get(rev, []), now)
        ann = dep["metadata"].get("annotations") or {}
        # Readiness counts only once the Deployment controller has seen its spec.
        fresh = st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        out[rev] = DeploymentFacts(
            revision=rev,
            replicas=dep["spec"].get("replicas", 1),
            ready_replicas=min(st.get("readyReplicas", 0), st.get("updatedReplicas", 0)) if fresh else 0,
            available_replicas=st.get("availableReplicas", 0),
            settled=(fresh and st.get("replicas", 0) == dep["spec"].get("replicas", 1)
                     and len(live) <= dep["spec"].get("replicas", 1)),
            live_pods=len(live),
            loading_since=loading_since(live),
            last_ready_at=last_ready_at(live),
            scale_down_at=parse_timestamp(ann.get(names.ANN_SCALE_DOWN_AT)),
            superseded_at=parse_timestamp(ann.get(names.ANN_SUPERSEDED_AT)),
            max_restarts=restarts,
            crashing_pod=crashing,
            crash_exit=exit_text,
            stuck=stuck(dep, live),
            carried=carried(dep, rev),
        )
    return out


def client_selects(md: str, services: list[JSON]) -> int | None:
    """The revision the client Service `<md>` selects alone; None when it selects every one (or is missing)."""
    for svc in services:
        if svc["metadata"]["name"] == md:
            selected = str(((svc.get("spec") or {}).get("selector") or {}).get(names.LABEL_REVISION) or "")
            return int(selected) if selected.isdigit() else None
    return None


def ready_endpoints(md: str, slices: list[JSON]) -> dict[str, dict[int, int]]:
    """Ready endpoints by the Service their EndpointSlices serve, and by the revision of the pod behind each:
    what a Service really routes to, which trails the Deployments' readyReplicas and a selector change by a
    moment (another controller writes it). A pod's revision is in its name, `<md>-r<N>-...`."""
    pod_name = re.compile(rf"^{re.escape(md)}-r(\d+)-")
    out: dict[str, dict[int, int]] = {}
    for item in slices:
        service = ((item.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if not service:
            continue
        counts = out.setdefault(service, {})
        for endpoint in item.get("endpoints") or []:
            found = pod_name.match(str((endpoint.get("targetRef") or {}).get("name") or ""))
            if found and (endpoint.get("conditions") or {}).get("ready"):
                counts[int(found[1])] = counts.get(int(found[1]), 0) + 1
    return out


def revisions(items: list[JSON]) -> tuple[RevisionRecord, ...]:
    """The ControllerRevision history, oldest first."""
    out = []
    for cr in items:
        meta = cr["metadata"]
        ann = meta.get("annotations") or {}
        out.append(RevisionRecord(
            number=int(cr.get("revision", 0)),
            hash=(meta.get("labels") or {}).get(names.LABEL_REVISION_HASH, ""),
            model_version=ann.get(names.ANN_MODEL_VERSION, ""),
            outcome=ann.get(names.ANN_OUTCOME, ""),
            reason=ann.get(names.ANN_OUTCOME_REASON, ""),
            released=ann.get(names.ANN_RELEASED) == "true",
            created=meta.get("creationTimestamp", ""),
            template=cr.get("data") or {},
        ))
    return tuple(sorted(out, key=lambda r: r.number))


# (kind, namespace) -> when a read was refused; asked again after FORBIDDEN_TTL.
_forbidden: dict[tuple[str, str], float] = {}
FORBIDDEN_TTL = 600.0
# (kind, namespace, name) -> when it was last seen to exist. Secrets and claims are not watched (the operator
# may not list Secrets), so what exists is believed for FOUND_TTL; what is missing is asked for every time.
_found: dict[tuple[str, str, str], float] = {}
FOUND_TTL = 300.0


def _exists(kube: Kube, kind: str, namespace: str, name: str) -> bool:
    """Does it exist? When the operator may not read that kind here (least-privilege RBAC
    without Secrets), it cannot tell, and assumes yes: the pods will say otherwise.
    A refusal is remembered for a while, so audit logs do not fill with them."""
    now = time.monotonic()
    refused = _forbidden.get((kind, namespace))
    if refused is not None and now - refused < FORBIDDEN_TTL:
        return True
    seen = _found.get((kind, namespace, name))
    if seen is not None and now - seen < FOUND_TTL:
        return True
    try:
        found = kube.get("v1", kind, namespace, name) is not None
    except ApiException as exc:
        if exc.status == 403:
            _forbidden[(kind, namespace)] = now
            return True
        raise
    if found:
        _found[(kind, namespace, name)] = now
    else:
        _found.pop((kind, namespace, name), None)
    return found


def named_providers(spec: JSON) -> set[str]:
    """The AnalysisProviders a raw spec's metrics name."""
    analysis = (spec.get("rollout") or {}).get("analysis") or {}
    blocks = [block for m in analysis.get("metrics") or [] for block in (m.get("prometheus"), m.get("webhook"))]
    blocks.append((analysis.get("warmup") or {}).get("requestCount"))
    return {block["provider"] for block in blocks if isinstance(block, dict) and isinstance(block.get("provider"), str)}


def analysis_providers(kube: Kube, spec: JSON) -> dict[str, str]:
    """The named AnalysisProviders that exist, with their kind (prometheus or webhook)."""
    found: dict[str, str] = {}
    for name in sorted(named_providers(spec)):
        obj = kube.get(names.API_VERSION, names.PROVIDER_KIND, "", name)
        if obj is not None:
            found[name] = "prometheus" if (obj.get("spec") or {}).get("prometheus") else "webhook"
    return found


# The kinds a ModelDeployment owns, read once per reconcile (from the operator's cache, see k8s/cache.py).
OWNED = (("apps/v1", "Deployment"), ("apps/v1", "ControllerRevision"), ("v1", "Service"),
         ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"))
Live = dict[tuple[str, str], JSON]


def observe(kube: Kube, md: JSON, now: datetime) -> tuple[Observed, Live]:
    """Every fact the planner needs about one ModelDeployment, and the live children by (kind, name)."""
    meta = md["metadata"]
    ns, name = meta["namespace"], meta["name"]
    owned = {kind: kube.owned(api_version, kind, ns, name) for api_version, kind in OWNED}
    live: Live = {(kind, o["metadata"]["name"]): o for kind, items in owned.items() for o in items}
    spec: dict[str, Any] = md.get("spec") or {}
    model = spec.get("model") or {}
    missing_secrets: tuple[str, ...] = ()
    secret = model.get("credentialsSecret")
    if secret and not _exists(kube, "Secret", ns, secret):
        missing_secrets = (secret,)
    missing_claims: tuple[str, ...] = ()
    uri = model.get("uri") or ""
    if uri.startswith("pvc://"):
        claim, _ = split_pvc_uri(uri)
        if not _exists(kube, "PersistentVolumeClaim", ns, claim):
            missing_claims = (claim,)
    observed = Observed(
        analysis_providers=analysis_providers(kube, spec),
        name=name,
        namespace=ns,
        uid=meta["uid"],
        generation=meta.get("generation", 0),
        now=now,
        deployments=deployments(owned["Deployment"], kube.owned("v1", "Pod", ns, name), now),
        revisions=revisions(owned["ControllerRevision"]),
        services=frozenset(s["metadata"]["name"] for s in owned["Service"]),
        client_selects=client_selects(name, owned["Service"]),
        has_hpa=bool(owned["HorizontalPodAutoscaler"]),
        has_pdb=bool(owned["PodDisruptionBudget"]),
        ready_endpoints=ready_endpoints(name, kube.owned("discovery.k8s.io/v1", "EndpointSlice", ns, name)),
        missing_secrets=missing_secrets,
        missing_claims=missing_claims,
        annotations=dict(meta.get("annotations") or {}),
    )
    return observed, live
