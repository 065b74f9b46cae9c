"""The live view of a rollout (`kubectl modeldeploy status NAME --watch` on a terminal).

Pure: the ModelDeployment, its ControllerRevisions and its revision Deployments in, a `Snapshot` of what a
person watches out (`snapshot`), and a rich renderable of it (`view`). The time is passed in, so a pause's
countdown is a value like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from modeldeploy.api import names
from modeldeploy.api.spec import parse_duration
from modeldeploy.cli import render
from modeldeploy.desired.analysis import INCONCLUSIVE_HOLD
from modeldeploy.desired.clock import parse_timestamp

PHASE_STYLES = {"Healthy": "green", "Progressing": "cyan", "Paused": "yellow", "Degraded": "red", "Failed": "red",
                "Pending": "cyan"}
VERDICT_STYLES = {"Pass": "green", "Fail": "red", "Inconclusive": "yellow"}


@dataclass(frozen=True)
class RevisionPods:
    """One revision's serving pods: Ready of desired."""

    revision: int
    model: str
    role: str  # stable | canary | "" (a revision kept warm, or draining)
    ready: int
    desired: int


@dataclass(frozen=True)
class MetricLine:
    """One metric's latest value against its threshold."""

    name: str
    verdict: str
    value: float | None
    threshold: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows, worked out from the objects."""

    name: str
    namespace: str
    phase: str
    lag: str
    message: str
    stable: int | None
    canary: int | None
    models: dict[int, str]
    step: str  # "step 2/5: pause 2m", "final: 100%, then promotion", or "" without a canary
    served: int | None  # the share the canary serves
    target: int | None  # the share its step asks for
    pods: tuple[RevisionPods, ...]
    analysis: str  # the run counts, or ""
    metrics: tuple[MetricLine, ...]
    waiting: str  # what the rollout waits for, in a person's words


def _steps(md: dict[str, Any]) -> list[dict[str, Any]]:
    # The raw spec, not the pydantic model: the view must still show a spec the operator refused.
    return list(((md.get("spec") or {}).get("rollout") or {}).get("steps") or [])


def _metric_specs(md: dict[str, Any]) -> list[dict[str, Any]]:
    analysis = ((md.get("spec") or {}).get("rollout") or {}).get("analysis") or {}
    return list(analysis.get("metrics") or [])


def threshold_text(metric: dict[str, Any]) -> str:
    """A metric's pass range in words: `max 0.05`, `min 0.9`, `0.9..1.1`; a webhook's is its answer."""
    if metric.get("webhook") is not None:
        return "2xx answer"
    bounds = metric.get("thresholdRange") or {}
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None:
        return f"{low:g}..{high:g}"
    if high is not None:
        return f"max {high:g}"
    if low is not None:
        return f"min {low:g}"
    return "-"


def step_text(step: dict[str, Any]) -> str:
    """One step as the spec writes it."""
    if step.get("setWeight") is not None:
        return f"setWeight {step['setWeight']}"
    if step.get("pause") is not None:
        duration = (step["pause"] or {}).get("duration")
        return f"pause {duration}" if duration else "pause until promoted"
    if step.get("analysis") is not None:
        return "analysis"
    return "?"


def revision_pods(md: dict[str, Any], deployments: list[dict[str, Any]],
                  models: dict[int, str]) -> tuple[RevisionPods, ...]:
    """Ready and desired pods per revision, from the revision Deployments; the totals in status without them."""
    st = md.get("status") or {}
    stable, canary = st.get("stableRevision"), st.get("canaryRevision")
    rows = []
    for dep in deployments:
        label = ((dep.get("metadata") or {}).get("labels") or {}).get(names.LABEL_REVISION)
        if label is None or not str(label).isdigit():
            continue
        number = int(label)
        desired = int((dep.get("spec") or {}).get("replicas") or 0)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        role = "stable" if number == stable else "canary" if number == canary else ""
        if desired or ready or role:  # a revision kept at zero is history, not serving
            rows.append(RevisionPods(number, models.get(number, "?"), role, ready, desired))
    if not rows and st.get("replicas") is not None:
        # Without the Deployments (not readable, or not listed) the status only knows the sum.
        rows.append(RevisionPods(0, "", "all", int(st.get("readyReplicas") or 0), int(st.get("replicas") or 0)))
    return tuple(sorted(rows, key=lambda r: r.revision))


def metric_lines(md: dict[str, Any]) -> tuple[MetricLine, ...]:
    """Every configured metric, with the latest run's value and verdict when the run measured the canary."""
    st = md.get("status") or {}
    analysis = st.get("analysis") or {}
    if analysis and st.get("canaryRevision") is not None and analysis.get("revision") != st.get("canaryRevision"):
        analysis = {}  # a run of an earlier canary says nothing about this one
    measured = {m.get("metric"): m for m in analysis.get("measurements") or []}
    lines = []
    for metric in _metric_specs(md):
        m = measured.pop(metric.get("name"), {})
        lines.append(MetricLine(str(metric.get("name", "")), str(m.get("verdict") or "-"), m.get("value"),
                                threshold_text(metric), str(m.get("message") or "")))
    for name, m in measured.items():  # measured, but no longer in the spec
        lines.append(MetricLine(str(name), str(m.get("verdict") or "-"), m.get("value"), "-",
                                str(m.get("message") or "")))
    return tuple(lines)


def _ready_reason(st: dict[str, Any]) -> str:
    return next((str(c.get("reason", "")) for c in st.get("conditions") or [] if c.get("type") == "Ready"), "")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _due(seconds: float) -> str:
    return "now" if seconds < 1 else f"in {_duration(seconds)}"


def _pods_of(pods: tuple[RevisionPods, ...], revision: int | None) -> str:
    row = next((p for p in pods if p.revision == revision), None)
    return f"{row.ready}/{row.desired} Ready" if row else "pods not seen yet"


def waiting_for(md: dict[str, Any], pods: tuple[RevisionPods, ...], now: datetime) -> str:
    """What the rollout waits for, from what status tells: a pause's end, analysis, pods, or a person."""
    st, name = md.get("status") or {}, md["metadata"]["name"]
    phase, reason, canary = st.get("phase"), _ready_reason(st), st.get("canaryRevision")
    analysis = st.get("analysis") or {}
    if reason == INCONCLUSIVE_HOLD:
        return (f"a person: {analysis.get('inconclusiveStreak', 0)} inconclusive analysis runs in a row "
                f"(`kubectl modeldeploy resume|promote|abort {name}`)")
    if phase == "Failed":
        return "a spec the operator can serve (see message)"
    if canary is None:
        if phase == "Healthy":
            return "nothing: the rollout is done"
        if phase == "Degraded":
            return "a spec change (the failed revision is not retried)"
        if phase == "Paused":
            return f"a resume (`kubectl modeldeploy resume {name}`, or spec.paused: false)"
        if phase is None:
            return "the operator to see the spec"
        starting = next((p for p in pods if p.ready < p.desired), None)
        if starting is not None:
            return f"pods becoming Ready: revision {starting.revision} {starting.ready}/{starting.desired}"
        leaving = next((p for p in pods if p.ready > p.desired), None)
        if leaving is not None:
            return f"pods scaling down: revision {leaving.revision} {leaving.ready} Ready, {leaving.desired} wanted"
        return "the operator's next pass"
    steps = _steps(md)
    index = st.get("currentStepIndex")
    step = steps[index] if index is not None and index < len(steps) else None
    open_pause = step is not None and step.get("pause") is not None and not (step["pause"] or {}).get("duration")
    if phase == "Paused":
        if open_pause:
            return f"a manual promote (`kubectl modeldeploy promote {name}`)"
        return f"a resume: held by a pause request (`kubectl modeldeploy resume {name}`)"
    if phase == "Degraded":
        return (f"a person: `kubectl modeldeploy abort {name}` rolls back, `kubectl modeldeploy promote {name}` "
                f"goes on")
    canary_pods = _pods_of(pods, canary)
    if not steps:  # a plain upgrade (or a known-good revision coming back without steps)
        return f"pods becoming Ready: revision {canary} {canary_pods}"
    if step is None:
        if _metric_specs(md) and not analysis.get("passed") and not analysis.get("waived"):
            return "a passing analysis run before promotion (none has passed yet)"
        return f"promotion: revision {canary} at 100%, {canary_pods}"
    if step.get("setWeight") is not None:
        want = int(step["setWeight"])
        route = "" if st.get("canaryWeight") == want else f", and the traffic split to reach {want}%"
        return f"pods becoming Ready for {want}%: revision {canary} {canary_pods}{route}"
    started = parse_timestamp(st.get("stepStartedAt"))
    if step.get("pause") is not None:
        if open_pause:
            return f"a manual promote (`kubectl modeldeploy promote {name}`)"
        if started is None:
            return f"the pause of {step['pause']['duration']} to end"
        ends = started + timedelta(seconds=parse_duration(step["pause"]["duration"]))
        return f"the pause to end at {ends:%H:%M:%S} ({_due((ends - now).total_seconds())})"
    # An analysis step: a passing run taken after the step began.
    since = f" taken after {started:%H:%M:%S}" if started else ""
    interval = (((md.get("spec") or {}).get("rollout") or {}).get("analysis") or {}).get("interval", "30s")
    last = parse_timestamp(analysis.get("lastRunAt")) or parse_timestamp(st.get("rolloutStartedAt"))
    due = "" if last is None else \
        f"; next run due {_due((last + timedelta(seconds=parse_duration(interval)) - now).total_seconds())}"
    return f"an analysis run{since} to pass{due}"


def snapshot(md: dict[str, Any], history: list[dict[str, Any]], deployments: list[dict[str, Any]],
             now: datetime) -> Snapshot:
    """What the live view shows of a ModelDeployment at `now`."""
    meta, st = md["metadata"], md.get("status") or {}
    models = {r["revision"]: r["model"] for r in render.history_rows(md, history)}
    pods = revision_pods(md, deployments, models)
    steps, index, canary = _steps(md), st.get("currentStepIndex"), st.get("canaryRevision")
    step = ""
    if canary is not None and steps and index is not None:
        step = (f"step {index + 1}/{len(steps)}: {step_text(steps[index])}" if index < len(steps)
                else "final: 100%, then promotion")
    analysis = st.get("analysis") or {}
    counts = ""
    if analysis and (canary is None or analysis.get("revision") == canary):
        counts = (f"revision {analysis.get('revision')}: {analysis.get('runs', 0)} runs, {analysis.get('passed', 0)} "
                  f"passed, {analysis.get('failed', 0)} failed, {analysis.get('inconclusive', 0)} inconclusive"
                  + (f"; last at {analysis['lastRunAt']}" if analysis.get("lastRunAt") else ""))
    generation, observed = meta.get("generation"), st.get("observedGeneration")
    lag = "" if generation is None or observed == generation else (
        f"spec generation {generation}, not yet seen by the operator" if observed is None
        else f"spec generation {generation}, operator has seen {observed}")
    return Snapshot(
        name=meta["name"], namespace=meta.get("namespace", ""), phase=str(st.get("phase") or "Unknown"), lag=lag,
        message=str(st.get("message") or ""), stable=st.get("stableRevision"), canary=canary, models=models,
        step=step, served=st.get("canaryWeight") if canary is not None else None,
        target=st.get("stepWeight") if canary is not None else None, pods=pods, analysis=counts,
        metrics=metric_lines(md), waiting=waiting_for(md, pods, now))


def _rev(snap: Snapshot, number: int | None) -> str:
    return "-" if number is None else f"revision {number} (model {snap.models.get(number, '?')})"


def view(snap: Snapshot) -> RenderableType:
    """The live view: redrawn in place by rich.live.Live."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    phase = Text(snap.phase, style=PHASE_STYLES.get(snap.phase, ""))
    if snap.lag:
        phase.append(f"  ({snap.lag})", style="dim")
    head.add_row("phase", phase)
    head.add_row("stable", _rev(snap, snap.stable))
    if snap.canary is not None:
        head.add_row("canary", _rev(snap, snap.canary))
        if snap.step:
            target = f"  (target {snap.target}%)" if snap.target is not None else ""
            head.add_row("step", snap.step + target)
        served = snap.served or 0
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=100, completed=served, width=40, complete_style="cyan",
                                finished_style="green"),
                    Text(f"{served}% served by revision {snap.canary}, {100 - served}% by stable"))
        head.add_row("weight", bar)
    head.add_row("waiting for", Text(snap.waiting, style="bold yellow" if snap.waiting.startswith("a ") else ""))
    head.add_row("message", Text(snap.message))

    parts: list[RenderableType] = [Text(f"{snap.name} in namespace {snap.namespace}", style="bold"), head]
    if snap.pods:
        pods = Table(title="Ready pods per revision", title_justify="left", expand=False)
        for column in ("REVISION", "MODEL", "ROLE", "READY"):
            pods.add_column(column)
        for p in snap.pods:
            pods.add_row(str(p.revision) if p.revision else "-", p.model, p.role,
                         Text(f"{p.ready}/{p.desired}", style="green" if p.ready >= p.desired else "yellow"))
        parts.append(pods)
    if snap.metrics:
        metrics = Table(title="Analysis" + (f": {snap.analysis}" if snap.analysis else ""), title_justify="left")
        for column in ("METRIC", "LATEST", "THRESHOLD", "VERDICT", "MESSAGE"):
            metrics.add_column(column)
        for m in snap.metrics:
            metrics.add_row(m.name, "-" if m.value is None else f"{m.value:g}", m.threshold,
                            Text(m.verdict, style=VERDICT_STYLES.get(m.verdict, "")), m.message)
        parts.append(metrics)
    return Group(*parts)


def live(md: dict[str, Any], history: list[dict[str, Any]], deployments: list[dict[str, Any]],
         now: datetime) -> RenderableType:
    """`kubectl modeldeploy status NAME --watch` on a terminal: one frame."""
    return view(snapshot(md, history, deployments, now))
