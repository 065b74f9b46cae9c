"""A rollout's timeline, from the ModelDeployment's Events and its status (pure: objects in, values out).

The operator records an Event when a rollout changes phase or reason (a canary starts, pauses, is promoted,
rolled back, aborted or superseded), not at every step, so the Events give the weight, the Ready pods and the
failing analysis values at those moments only. The status adds what holds now: the weight served, the latest
analysis run, and (from the revision Deployments) the Ready pods of each revision. `kubectl modeldeploy
history NAME --plot` draws the result (cli/plot.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy.api import names
from modeldeploy.cli import render

# Event reasons that end or redirect a rollout: each is a mark on the picture.
MARKS = ("Promoted", "RolledBack", "Aborted", "Superseded", "RollbackRequested")

# The operator's Event messages start with the revision they are about (desired/canary.py, endings.py,
# transition.py): `revision 4 (model 8) at 10%: ...`, `revision 4 (model 8): 2/4 pods ready`.
_REVISION = re.compile(r"^revision (\d+) \(model ([^)]*)\)")
_WEIGHT = re.compile(r"^revision \d+ \(model [^)]*\) at (\d+)%")
_PODS = re.compile(r"(\d+)/(\d+) pods ready")
_CANARY_PODS = re.compile(r"(\d+) canary pods ready")
_HELD_PODS = re.compile(r"held at (\d+) ready pods")
# A step waiting for the weight it asked for: a setWeight step's pods or route, or the last step's promotion.
_NOT_YET = ("canary pods and the traffic split", "promoting: ")
# A failed run's measurements, as a rollback quotes them: `error-rate=0.09 (0.09 is above the maximum 0.05)`.
_MEASURED = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(-?[0-9][0-9.e+-]*|inf|nan) \(")


@dataclass(frozen=True)
class WeightPoint:
    at: datetime
    # The revision's share of requests while it is not the stable one: what its step asked for at an Event
    # (the share served follows once its pods are Ready), what it serves in the status now.
    weight: int
    # False while the step still waits for the canary's pods (or the route) to carry that weight.
    reached: bool = True


@dataclass(frozen=True)
class PodsPoint:
    at: datetime
    ready: int
    desired: int | None  # None where only the Ready count was said


@dataclass(frozen=True)
class MetricPoint:
    at: datetime
    value: float
    revision: int | None
    verdict: str  # Pass | Fail | Inconclusive, or "" where the source did not say


@dataclass(frozen=True)
class MetricSeries:
    name: str
    minimum: float | None  # the thresholdRange the spec gives it
    maximum: float | None
    points: tuple[MetricPoint, ...]


@dataclass(frozen=True)
class Mark:
    at: datetime
    reason: str  # one of MARKS
    revision: int | None
    message: str


@dataclass(frozen=True)
class Timeline:
    """Everything the picture shows, in time order per series."""

    name: str
    namespace: str
    start: datetime
    end: datetime
    models: dict[int, str]
    outcomes: dict[int, str]
    weights: dict[int, tuple[WeightPoint, ...]]
    pods: dict[int, tuple[PodsPoint, ...]]
    metrics: tuple[MetricSeries, ...]
    marks: tuple[Mark, ...]
    events: int = 0


@dataclass
class _Builder:
    weights: dict[int, list[WeightPoint]] = field(default_factory=dict)
    pods: dict[int, list[PodsPoint]] = field(default_factory=dict)
    values: dict[str, list[MetricPoint]] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)
    models: dict[int, str] = field(default_factory=dict)

    def weight(self, revision: int, at: datetime, weight: int, reached: bool = True) -> None:
        self.weights.setdefault(revision, []).append(WeightPoint(at, weight, reached))

    def ready(self, revision: int, at: datetime, ready: int, desired: int | None) -> None:
        self.pods.setdefault(revision, []).append(PodsPoint(at, ready, desired))

    def value(self, metric: str, point: MetricPoint) -> None:
        self.values.setdefault(metric, []).append(point)


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time as the API server writes it (with or without fractions of a second); None if not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def event_time(event: dict[str, Any]) -> datetime | None:
    """When an Event happened: its eventTime, firstTimestamp, or (failing both) when it was stored."""
    meta = event.get("metadata") or {}
    for text in (event.get("eventTime"), event.get("firstTimestamp"), event.get("lastTimestamp"),
                 meta.get("creationTimestamp")):
        t = parse_time(text)
        if t is not None:
            return t
    return None


def _order(event: dict[str, Any]) -> int:
    # Events of one reconcile share their second (Promoted, then Healthy); the order they were stored in
    # keeps them apart. resourceVersion is opaque in general but an increasing integer on etcd.
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return int(version) if version.isdigit() else 0


def rollout_events(md: dict[str, Any], events: list[dict[str, Any]]) -> list[tuple[datetime, dict[str, Any]]]:
    """The Events about this ModelDeployment (not an earlier one of the same name), oldest first."""
    meta = md["metadata"]
    uid = meta.get("uid")
    mine = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != names.KIND or involved.get("name") != meta["name"]:
            continue
        if uid and involved.get("uid") and involved["uid"] != uid:
            continue
        at = event_time(event)
        if at is not None:
            mine.append((at, event))
    return sorted(mine, key=lambda pair: (pair[0], _order(pair[1])))


def _read_event(b: _Builder, at: datetime, event: dict[str, Any]) -> None:
    reason, message = str(event.get("reason") or ""), str(event.get("message") or "")
    found = _REVISION.match(message)
    if found is None:
        return
    revision = int(found.group(1))
    b.models.setdefault(revision, found.group(2))
    if reason in MARKS:
        b.marks.append(Mark(at, reason, revision, message))
    if reason == "Promoted":
        b.weight(revision, at, 100)
    elif reason in ("RolledBack", "Aborted"):
        b.weight(revision, at, 0)  # traffic goes back to stable at once
    elif reason != "RollbackRequested" and (weight := _WEIGHT.match(message)):
        b.weight(revision, at, int(weight.group(1)), reached=not any(w in message for w in _NOT_YET))
    if pods := _PODS.search(message):
        b.ready(revision, at, int(pods.group(1)), int(pods.group(2)))
    elif pods := _CANARY_PODS.search(message) or _HELD_PODS.search(message):
        b.ready(revision, at, int(pods.group(1)), None)
    if reason in ("RolledBack", "RolloutStuck") and "analysis failed" in message:
        for m in _MEASURED.finditer(message.split("analysis failed", 1)[1]):
            b.value(m.group(1), MetricPoint(at, float(m.group(3)), revision, "Fail"))


def _read_status(b: _Builder, md: dict[str, Any], deployments: list[dict[str, Any]], now: datetime) -> None:
    st = md.get("status") or {}
    canary = st.get("canaryRevision")
    if canary is not None:
        started = parse_time(st.get("rolloutStartedAt"))
        if started is not None and not any(p.at <= started for p in b.weights.get(canary, [])):
            b.weight(canary, started, 0)  # a canary starts at weight 0
        if st.get("canaryWeight") is not None:
            b.weight(canary, now, int(st["canaryWeight"]))
    analysis = st.get("analysis") or {}
    last = parse_time(analysis.get("lastRunAt"))
    if last is not None:
        for m in analysis.get("measurements") or []:
            if m.get("value") is not None and m.get("metric"):
                point = MetricPoint(last, float(m["value"]), analysis.get("revision"), str(m.get("verdict") or ""))
                if point not in b.values.get(m["metric"], []):
                    b.value(str(m["metric"]), point)
    for dep in deployments:
        label = ((dep.get("metadata") or {}).get("labels") or {}).get(names.LABEL_REVISION)
        if label is None or not str(label).isdigit():
            continue
        number = int(label)
        ready, desired = int((dep.get("status") or {}).get("readyReplicas") or 0), \
            int((dep.get("spec") or {}).get("replicas") or 0)
        if ready or desired or number in b.pods or number in b.weights:  # not a revision long kept at zero
            b.ready(number, now, ready, desired)


def _series(md: dict[str, Any], values: dict[str, list[MetricPoint]]) -> tuple[MetricSeries, ...]:
    metrics = (((md.get("spec") or {}).get("rollout") or {}).get("analysis") or {}).get("metrics") or []
    out = []
    for metric in metrics:
        bounds = metric.get("thresholdRange") or {}
        points = values.pop(str(metric.get("name")), [])
        if points or bounds:
            out.append(MetricSeries(str(metric["name"]), bounds.get("min"), bounds.get("max"),
                                    tuple(sorted(points, key=lambda p: p.at))))
    for name, points in sorted(values.items()):  # measured, but no longer in the spec: no threshold to show
        out.append(MetricSeries(name, None, None, tuple(sorted(points, key=lambda p: p.at))))
    return tuple(out)


def timeline(md: dict[str, Any], events: list[dict[str, Any]], history: list[dict[str, Any]],
             deployments: list[dict[str, Any]], now: datetime) -> Timeline:
    """A ModelDeployment's rollouts over the time its Events cover, up to `now`."""
    ordered = rollout_events(md, events)
    b = _Builder()
    for at, event in ordered:
        _read_event(b, at, event)
    _read_status(b, md, deployments, now)
    rows = render.history_rows(md, history)
    models = {**b.models, **{r["revision"]: r["model"] for r in rows if r["model"]}}
    times = [at for at, _ in ordered] + [p.at for ws in b.weights.values() for p in ws] + \
        [p.at for ps in b.pods.values() for p in ps] + [p.at for vs in b.values.values() for p in vs]
    start = min(times, default=now)
    return Timeline(
        name=md["metadata"]["name"], namespace=md["metadata"].get("namespace", ""), start=start, end=max(now, start),
        models=models, outcomes={r["revision"]: r["outcome"] for r in rows},
        weights={r: tuple(sorted(ps, key=lambda p: p.at)) for r, ps in sorted(b.weights.items())},
        pods={r: tuple(sorted(ps, key=lambda p: p.at)) for r, ps in sorted(b.pods.items())},
        metrics=_series(md, b.values), marks=tuple(b.marks), events=len(ordered))
