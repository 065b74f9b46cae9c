"""Canary steps: setWeight, pause and analysis, then promotion; a pass of the planner delegates here.

The weight only moves forward when the canary's pods are Ready at the share it
needs (and, with a mesh, the route reports the weight); a pause waits for its
duration or for `kubectl modeldeploy promote`; an analysis step waits for a
passing run taken after it began. Crash-looping pods, failed analysis runs
beyond failureLimit, and a step that waits past progressDeadlineSeconds roll
the canary back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modeldeploy.api.spec import parse_duration
from modeldeploy.api.status import AnalysisStatus, Phase, Verdict
from modeldeploy.desired import requests, weights
from modeldeploy.desired.actions import Plan
from modeldeploy.desired.analysis import analysis_due_at, fold, number
from modeldeploy.desired.clock import parse_timestamp

if TYPE_CHECKING:
    from modeldeploy.desired.rollout import _Planner


class CanarySteps:
    """One pass over a canary's steps, on behalf of the planner that holds the state."""

    def __init__(self, planner: _Planner) -> None:
        self.p = planner

    def run(self, t: int, stable: int) -> Plan:
        """setWeight / pause / analysis steps, then promotion."""
        p = self.p
        steps = p.spec.rollout.steps or []
        old = p.old
        fresh = old.canary_revision != t
        p.started = (None if fresh else parse_timestamp(old.rollout_started_at)) or p.now
        step_started = (None if fresh else parse_timestamp(old.step_started_at)) or p.now
        index = 0 if fresh or old.current_step_index is None else old.current_step_index
        p.weight = 0 if fresh or old.canary_weight is None else old.canary_weight
        p.analysis = self.record_analysis(t, fresh)
        total = p.serving_size(stable)
        rec = p.record(t)
        held = p.requests.paused or p.spec.paused

        # A held rollout keeps promote requests for when it resumes: nothing moves while held.
        if p.requests.promote_full and not held:
            p.handled[requests.PROMOTE_FULL] = p.requests.promote_full
            index, step_started = len(steps), p.now
        if p.requests.promote and not held:
            p.handled[requests.PROMOTE] = p.requests.promote
            if index < len(steps):
                index, step_started = index + 1, p.now
        held_on_failure = not fresh and old.phase == Phase.DEGRADED and not p.spec.rollout.auto_rollback
        if (p.requests.promote or p.requests.promote_full) and not held and held_on_failure:
            # A person chose to go on past a held failure: the failed runs are forgiven, later ones count.
            p.analysis = AnalysisStatus(revision=t)

        failure = self.canary_failure(t, index, steps, step_started, held)
        if failure is not None:
            p.index, p.step_started, p.canary_rev = index, step_started, t
            return p.roll_back(t, stable, failure)

        waiting = ""
        while not held and index < len(steps):
            step = steps[index]
            if step.set_weight is not None:
                p.weight = step.set_weight
                if not self.weight_reached(t, total):
                    waiting = f"waiting for {self.split(t, total)[1]} canary pods and the traffic split"
                    p.wake.append(1.0)
                    break
            elif step.pause is not None:
                if step.pause.duration is None:
                    waiting = f"paused until `kubectl modeldeploy promote {p.obs.name}`"
                    break
                ends = step_started + timedelta(seconds=parse_duration(step.pause.duration))
                if p.now < ends:
                    waiting = f"pause {step.pause.duration}"
                    p.wake.append((ends - p.now).total_seconds())
                    break
            elif step.analysis is not None and not self.analysis_passed(step_started):
                waiting = "waiting for an analysis run to pass"
                break
            index, step_started = index + 1, p.now

        if index >= len(steps) and not held:
            # Every step passed: the canary takes all of the traffic, then becomes stable.
            p.weight = 100
            f = p.facts(t)
            if f is not None and f.replicas >= total and p.ready(t) >= total and self.weight_reached(t, total):
                p.replica_counts[stable] = p.pods_of(stable)
                return p.promote(t, stable, total)
            waiting = f"promoting: {p.ready(t)}/{total} pods ready"
            p.wake.append(1.0)

        # While held the step clock is off; it starts again on resume.
        p.index, p.step_started = index, (None if held else step_started)
        stable_pods, canary_pods = self.split(t, total)
        if index >= len(steps) and not held:
            # Stable keeps what it has until promotion; the scale-down delay then applies.
            stable_pods = max(stable_pods, p.pods_of(stable))
        p.replica_counts[t], p.replica_counts[stable] = canary_pods, stable_pods
        p.canary_rev = t
        p.wake.append(self.next_analysis_in())
        if not held:
            deadline = step_started + timedelta(seconds=p.spec.rollout.progress_deadline_seconds)
            p.wake.append((deadline - p.now).total_seconds())
        progress = f"revision {t} (model {rec.model_version}) at {p.weight}%"
        if p.analysis and p.analysis.runs:
            progress += f": analysis {p.analysis.passed}/{p.analysis.runs} passed"
        if held:
            return p.finish(stable, t, Phase.PAUSED, "Paused",
                               f"{progress}; held by a pause request (`kubectl modeldeploy resume "
                               f"{p.obs.name}` continues)")
        step_text = f"step {min(index, len(steps)) + 1}/{len(steps)}" if index < len(steps) else "final"
        phase = Phase.PAUSED if waiting.startswith("paused until") else Phase.PROGRESSING
        return p.finish(stable, t, phase, "Paused" if phase == Phase.PAUSED else "Canary",
                           f"{progress} ({step_text}{': ' + waiting if waiting else ''})")


    def split(self, t: int, total: int) -> tuple[int, int]:
        """(stable, canary) pods for the current weight, per traffic router."""
        p = self.p
        if p.router == "replicas":
            return weights.replicas_split(total, p.weight, p.ready(t))
        return weights.mesh_split(total, p.weight)


    def weight_reached(self, t: int, total: int) -> bool:
        """The canary has its pods Ready and the router reports the weight."""
        p = self.p
        _, canary = self.split(t, total)
        f = p.facts(t)
        pods_ok = f is not None and f.replicas >= canary and p.ready(t) >= canary
        if p.router == "replicas":
            return pods_ok
        return pods_ok and p.obs.router_weight == p.weight


    def canary_failure(self, t: int, index: int, steps: list[Any], step_started: datetime,
                       held: bool) -> str | None:
        """Pod health, analysis and deadlines, with numbers; None while the canary may still pass."""
        p = self.p
        f = p.facts(t)
        crashing = f.crash_loop(p.settings.crash_restart_limit) if f is not None else None
        if crashing:
            return crashing
        a = p.analysis
        failure_limit = p.spec.rollout.analysis.failure_limit if p.spec.rollout.analysis else 0
        if a is not None and a.failed > failure_limit:
            worst = "; ".join(f"{m.metric}={number(m.value)} ({m.message})" for m in a.measurements
                              if m.verdict == Verdict.FAIL)
            return (f"analysis failed {a.failed} of {a.runs} runs (failureLimit {failure_limit}): "
                    f"{worst or 'see status.analysis'}")
        # A held rollout waits on a person, not on the canary: no deadline then.
        waits_on_something = not held and (index >= len(steps) or steps[index].pause is None)
        elapsed = (p.now - step_started).total_seconds()
        deadline = p.spec.rollout.progress_deadline_seconds
        if waits_on_something and elapsed >= deadline:
            return (f"step {index + 1} made no progress in {int(elapsed)}s (progressDeadlineSeconds {deadline}): "
                    f"{p.ready(t)} canary pods ready")
        return None


    def record_analysis(self, t: int, fresh: bool) -> AnalysisStatus | None:
        """Fold this reconcile's measurements (if any) into the running analysis."""
        p = self.p
        old = p.old.analysis
        a = old if (old is not None and old.revision == t and not fresh) else AnalysisStatus(revision=t)
        run = p.obs.measurements
        if run is None:
            return a
        return fold(a, run, p.now)

    def analysis_passed(self, step_started: datetime) -> bool:
        """An analysis step passes on a passing run taken after it began (or at once with no metrics)."""
        p = self.p
        if not (p.spec.rollout.analysis and p.spec.rollout.analysis.metrics):
            return True
        a = p.analysis
        last = parse_timestamp(a.last_run_at) if a else None
        return bool(a and last and last >= step_started.replace(microsecond=0) and a.last_verdict == Verdict.PASS)


    def next_analysis_in(self) -> float:
        """Seconds until the next analysis run is due (0 when none is configured)."""
        p = self.p
        due = analysis_due_at(p.spec, p.analysis, p.started)
        return (due - p.now).total_seconds() if due else 0.0
