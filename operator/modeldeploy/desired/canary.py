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
from modeldeploy.desired.analysis import INCONCLUSIVE_HOLD, analysis_due_at, fold, number
from modeldeploy.desired.analysis import unclear as unclear_text
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
        # (A status written before stepWeight existed kept the step's weight in canaryWeight.)
        target = old.step_weight if old.step_weight is not None else old.canary_weight
        p.weight = 0 if fresh or target is None else target
        p.analysis = self.record_analysis(t, fresh)
        total = p.serving_size()
        rec = p.record(t)
        limit = p.spec.rollout.analysis.inconclusive_limit if p.spec.rollout.analysis else 0
        asked_on = p.requests.resume or p.requests.promote or p.requests.promote_full
        if p.analysis.inconclusive_streak > limit and asked_on:
            # Waiting on a person after too many inconclusive runs: resume or promote moves it on.
            p.analysis = p.analysis.model_copy(update={"inconclusive_streak": 0})
        unclear = p.analysis.inconclusive_streak > limit
        held = p.requests.paused or p.spec.paused or unclear

        # A held rollout keeps promote requests for when it resumes: nothing moves while held.
        if p.requests.promote_full and not held:
            p.handled[requests.PROMOTE_FULL] = p.requests.promote_full
            index, step_started = len(steps), p.now
        if p.requests.promote and not held:
            p.handled[requests.PROMOTE] = p.requests.promote
            if index < len(steps):
                index, step_started = index + 1, p.now
        held_on_failure = not fresh and old.phase == Phase.DEGRADED and not p.spec.rollout.auto_rollback
        if (p.requests.promote or p.requests.promote_full) and not held:
            # A person chose to go on: past a held failure the failed runs are forgiven (later ones count),
            # and past the last step no passing run is needed any more.
            if held_on_failure:
                p.analysis = AnalysisStatus(revision=t)
            if index >= len(steps):
                p.analysis = p.analysis.model_copy(update={"waived": True})

        failure = self.canary_failure(t, index, steps, step_started, held)
        if failure is not None:
            p.index, p.step_started, p.canary_rev = index, step_started, t
            return p.roll_back(t, stable, failure)

        waiting = ""
        while not held and index < len(steps):
            step = steps[index]
            if step.set_weight is not None:
                p.weight = step.set_weight
                if not self.weight_reached(t, total, index):
                    waiting = f"waiting for {self.split(t, total, index)[1]} canary pods and the traffic split"
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

        if index >= len(steps) and not held and self.evidence_missing():
            # Every step passed, but no analysis run has: the weight stays until one does.
            waiting = "waiting for a passing analysis run before promotion (none has passed yet)"
        elif index >= len(steps) and not held:
            # Every step passed: the canary takes all of the traffic, then becomes stable.
            p.weight = 100
            f = p.facts(t)
            if f is not None and f.replicas >= total and p.ready(t) >= total and \
                    self.weight_reached(t, total, index):
                return p.promote(t, stable, total)
            waiting = f"promoting: {p.ready(t)}/{total} pods ready"
            p.wake.append(1.0)

        # While held the step clock is off; it starts again on resume.
        p.index, p.step_started = index, (None if held else step_started)
        stable_pods, canary_pods = self.split(t, total, index)
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
        if p.analysis.runs:
            progress += f": analysis {p.analysis.passed}/{p.analysis.runs} passed"
        if unclear:
            return p.finish(stable, t, Phase.PAUSED, INCONCLUSIVE_HOLD,
                            f"{progress}; {p.analysis.inconclusive_streak} inconclusive analysis runs in a row "
                            f"(inconclusiveLimit {limit}): {unclear_text(p.analysis)}. Waiting for a person: "
                            f"`kubectl modeldeploy resume|promote|abort {p.obs.name}`")
        if held:
            return p.finish(stable, t, Phase.PAUSED, "Paused",
                            f"{progress}; held by a pause request (`kubectl modeldeploy resume "
                            f"{p.obs.name}` continues)")
        step_text = f"step {min(index, len(steps)) + 1}/{len(steps)}" if index < len(steps) else "final"
        phase = Phase.PAUSED if waiting.startswith("paused until") else Phase.PROGRESSING
        return p.finish(stable, t, phase, "Paused" if phase == Phase.PAUSED else "Canary",
                        f"{progress} ({step_text}{': ' + waiting if waiting else ''})")

    def evidence_missing(self) -> bool:
        """Metrics are configured and no run has passed yet (nor has a person waived it)."""
        p = self.p
        block = p.spec.rollout.analysis
        a = p.analysis
        return bool(block and block.metrics) and not (a is not None and (a.passed > 0 or a.waived))

    def split(self, t: int, total: int, index: int) -> tuple[int, int]:
        """(stable, canary) pods for the current weight, per traffic router."""
        p = self.p
        if p.router == "replicas":
            return weights.replicas_split(total, p.weight, p.ready(t))
        stable, canary = weights.mesh_split(total, p.weight)
        if p.weight == 0 and self.pre_traffic(index):
            # Judged before it gets traffic: pods enough for the first weight it will take, at weight 0.
            steps = p.spec.rollout.steps or []
            first = next((s.set_weight for s in steps[index:] if s.set_weight), 0)
            canary = max(1, weights.canary_pods(total, first))
        return stable, canary

    def pre_traffic(self, index: int) -> bool:
        """The current step is an analysis step and the canary has had no traffic yet."""
        steps = self.p.spec.rollout.steps or []
        return index < len(steps) and steps[index].analysis is not None and \
            not any(s.set_weight for s in steps[:index])

    def weight_reached(self, t: int, total: int, index: int) -> bool:
        """The canary has its pods Ready and the router reports the weight."""
        p = self.p
        _, canary = self.split(t, total, index)
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


    def record_analysis(self, t: int, fresh: bool) -> AnalysisStatus:
        """Fold this reconcile's measurements (if any) into the running analysis; a run that measured another
        revision (the canary changed since it was taken) is discarded, never counted for this one."""
        p = self.p
        old = p.old.analysis
        a = old if (old is not None and old.revision == t and not fresh) else AnalysisStatus(revision=t)
        run = p.obs.measurements
        if run is None or p.obs.measured_revision != t:
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
