"""Canary steps: setWeight, pause and analysis, then promotion; the transition's move for a canary. Pure.

The weight only moves forward when the canary's pods are Ready at the share it
needs (and, with a mesh, the route reports the weight); a pause waits for its
duration or for `kubectl modeldeploy promote`; an analysis step waits for a
passing run taken after it began. Crash-looping pods, failed analysis runs
beyond failureLimit, and a step that waits past progressDeadlineSeconds roll
the canary back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modeldeploy.api.spec import Step, Warmup, parse_duration
from modeldeploy.api.status import AnalysisStatus, Phase, Verdict
from modeldeploy.desired import requests, weights
from modeldeploy.desired.analysis import INCONCLUSIVE_HOLD, analysis_due_at, fold, fold_warm_up, number
from modeldeploy.desired.analysis import unclear as unclear_text
from modeldeploy.desired.clock import parse_timestamp, timestamp
from modeldeploy.desired.endings import promote, roll_back
from modeldeploy.desired.state import PODS_STUCK, Move, Pass, Position, RolloutState, World, loading_text


def advance(world: World, p: Pass, state: RolloutState, t: int, stable: int) -> Move:
    """setWeight / pause / analysis steps, then promotion."""
    spec, now, asked = world.spec, world.now, world.requests
    steps = spec.rollout.steps or []
    fresh = state.canary != t
    started = (None if fresh else state.started) or now
    step_started = (None if fresh else state.step_started) or now
    index = 0 if fresh or state.step is None else state.step
    # (A status written before stepWeight existed kept the step's weight in canaryWeight.)
    target = state.step_weight if state.step_weight is not None else state.canary_weight
    weight = 0 if fresh or target is None else target
    analysis = record_analysis(world, state, t, fresh)
    total = world.size
    rec = p.ledger[t]
    limit = spec.rollout.analysis.inconclusive_limit if spec.rollout.analysis else 0
    if analysis.inconclusive_streak > limit and (asked.resume or asked.promote or asked.promote_full):
        # Waiting on a person after too many inconclusive runs: resume or promote moves it on.
        analysis = analysis.model_copy(update={"inconclusive_streak": 0})
    unclear = analysis.inconclusive_streak > limit
    held = world.held or unclear
    bake = spec.rollout.bake
    baking_since = None if fresh or bake is None else state.bake_started
    bake_over = False  # a person ended the bake, or the one to come

    # A held rollout keeps promote requests for when it resumes: nothing moves while held.
    if asked.promote_full and not held:
        p = p.carried_out(requests.PROMOTE_FULL, asked.promote_full)
        index, step_started, bake_over = len(steps), now, True
    if asked.promote and not held:
        p = p.carried_out(requests.PROMOTE, asked.promote)
        if index < len(steps):
            index, step_started = index + 1, now
        elif baking_since is not None:
            bake_over = True  # `promote` while baking ends the bake
    held_on_failure = not fresh and state.phase == Phase.DEGRADED and not spec.rollout.auto_rollback
    if (asked.promote or asked.promote_full) and not held:
        # A person chose to go on: past a held failure the failed runs are forgiven (later ones count),
        # and past the last step no passing run is needed any more.
        if held_on_failure:
            analysis = AnalysisStatus(revision=t, warmup_started_at=analysis.warmup_started_at,
                                      warmup_ends_at=analysis.warmup_ends_at, warmup_requests=analysis.warmup_requests)
        if index >= len(steps):
            analysis = analysis.model_copy(update={"waived": True})

    if bake is not None and bake_over:
        baking_since = now - timedelta(seconds=parse_duration(bake.duration))  # a bake that is over
    bake_ends = baking_since + timedelta(seconds=parse_duration(bake.duration)) \
        if bake is not None and baking_since is not None else None
    baking = bake_ends is not None and now < bake_ends
    # The progress deadline waits while a bake runs (on its clock, not on the canary), and counts from its end.
    clock = max(step_started, bake_ends) if bake_ends is not None else step_started
    failure = canary_failure(world, analysis, t, index, steps, clock, held or baking)
    if failure is not None:
        return roll_back(world, p, t, stable, failure, weight=weight, position=Position(index, step_started),
                         started=started, analysis=analysis)

    waiting = ""
    wake: list[float] = []
    while not held and index < len(steps):
        step = steps[index]
        if step.set_weight is not None:
            weight = step.set_weight
            if not weight_reached(world, t, total, index, weight):
                waiting = (f"waiting for {unbounded_split(world, t, total, index, weight)[1]} canary pods and "
                           f"the traffic split{within_budget(world)}")
                if world.stuck(t):
                    waiting += f"; {world.stuck(t)}"
                elif (loading := world.loading(t)) is not None:
                    waiting += f"; {loading_text(*loading)}"
                    wake.extend(world.loading_wake(t))
                wake.extend(route_poll(world))
                break
        elif step.pause is not None:
            if step.pause.duration is None:
                waiting = f"paused until `kubectl modeldeploy promote {world.obs.name}`"
                break
            ends = step_started + timedelta(seconds=parse_duration(step.pause.duration))
            if now < ends:
                waiting = f"pause {step.pause.duration}"
                wake.append((ends - now).total_seconds())
                break
        elif step.analysis is not None and not analysis_passed(world, analysis, step_started):
            waiting = "waiting for an analysis run to pass"
            break
        index, step_started = index + 1, now
    if index < len(steps):
        baking_since = bake_ends = None  # (steps added to the spec after the bake began: those come first)
        baking = False

    if index >= len(steps) and not held and evidence_missing(world, analysis):
        # Every step passed, but no analysis run has: the weight stays until one does.
        waiting = "waiting for a passing analysis run before promotion (none has passed yet)"
    elif index >= len(steps) and not held:
        # Every step passed: the canary takes all of the traffic, then (after a bake period, if any) becomes stable.
        weight = 100
        f = world.facts(t)
        all_ready = f is not None and f.replicas >= total and world.ready(t) >= total and \
            weight_reached(world, t, total, index, weight)
        if bake is not None and baking_since is None and all_ready:
            baking_since, bake_ends, baking = now, now + timedelta(seconds=parse_duration(bake.duration)), True
        if all_ready and not baking:
            return promote(world, p, t, stable, total, analysis)
        if baking and bake_ends is not None:
            waiting = f"baking until {timestamp(bake_ends)}; {kept_warm(world, stable)}"
            if not all_ready:
                waiting += f"; {world.readiness(t, total)}"
            wake.append((bake_ends - now).total_seconds())
        else:
            waiting = f"promoting: {world.readiness(t, total)}"
        if not all_ready:
            wake.extend(route_poll(world))

    stable_pods, canary_pods = split(world, t, total, index, weight)
    if baking_since is not None:
        # Baking: stable serves nothing but comes back to its full size (within a pod budget, what the canary leaves
        # of it), so a rollback finds every pod it needs warm.
        stable_pods = total if world.budget is None else max(0, min(total, world.budget - canary_pods))
    elif index >= len(steps) and not held and world.budget is None:
        # Stable keeps what it has until promotion; the scale-down delay then applies. (Within a pod budget it
        # gives them up as the canary's pods become Ready, like at any other weight.)
        stable_pods = max(stable_pods, world.pods(stable))
    wake.append(next_analysis_in(world, analysis, started))
    if not held and not baking:
        deadline = world.progress_since(t, clock) + timedelta(seconds=spec.rollout.progress_deadline_seconds)
        wake.append((deadline - now).total_seconds())
    progress = f"revision {t} (model {rec.model_version}) at {weight}%"
    if analysis.runs:
        progress += f": analysis {analysis.passed}/{analysis.runs - analysis.warmup_runs} passed"
    warming = parse_timestamp(analysis.warmup_ends_at)
    warmup = spec.rollout.analysis.warmup if spec.rollout.analysis else None
    not_counted = f"; {analysis.warmup_runs} runs not counted)" if analysis.warmup_runs else ")"
    if warming is not None and now < warming:
        # (the end, not the time left: a countdown would rewrite status on every pass)
        progress += f" (warming up until {timestamp(warming)}{not_counted}"
    elif warming is None and analysis.warmup_started_at and warmup is not None and warmup.requests:
        progress += f" (warming up: {analysis.warmup_requests or 0} of {warmup.requests} requests{not_counted}"
    name = world.obs.name
    if unclear:
        phase, reason, message = (
            Phase.PAUSED, INCONCLUSIVE_HOLD,
            f"{progress}; {analysis.inconclusive_streak} inconclusive analysis runs in a row "
            f"(inconclusiveLimit {limit}): {unclear_text(analysis)}. Waiting for a person: "
            f"`kubectl modeldeploy resume|promote|abort {name}`")
    elif held:
        phase, reason, message = (Phase.PAUSED, "Paused",
                                  f"{progress}; held by a pause request (`kubectl modeldeploy resume {name}` "
                                  f"continues)")
    else:
        step_text = f"step {min(index, len(steps)) + 1}/{len(steps)}" if index < len(steps) else "final"
        phase = Phase.PAUSED if waiting.startswith("paused until") else Phase.PROGRESSING
        reason = "Paused" if phase == Phase.PAUSED else PODS_STUCK if world.stuck(t) else \
            "Baking" if baking else "Canary"
        message = f"{progress} ({step_text}: {waiting})"
    # While held the step clock is off; it starts again on resume.
    return Move(p, stable, t, phase, reason, message, pods={t: canary_pods, stable: stable_pods},
                wake=tuple(wake), position=Position(index, None if held else step_started), weight=weight,
                started=started, analysis=analysis, bake_started=baking_since)


def kept_warm(world: World, stable: int) -> str:
    """What a bake keeps of the stable revision to roll back to, for its message: all of its pods, or within a pod
    budget what the canary leaves of it."""
    total, budget = world.size, world.budget
    warm = total if budget is None else max(0, min(total, budget - total))
    if warm == total:
        return f"revision {stable} keeps its pods to roll back to"
    surge = world.spec.rollout.max_surge
    if warm == 0:
        return f"revision {stable} keeps no pod warm (maxSurge {surge}): a rollback starts its pods cold"
    return f"revision {stable} keeps {warm} of its {total} pods warm to roll back to (maxSurge {surge})"


def evidence_missing(world: World, analysis: AnalysisStatus) -> bool:
    """Metrics are configured and no run has passed yet (nor has a person waived it)."""
    block = world.spec.rollout.analysis
    return bool(block and block.metrics) and not (analysis.passed > 0 or analysis.waived)


def split(world: World, t: int, total: int, index: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods for the current weight, per traffic router, within the pod budget if any."""
    stable, canary = unbounded_split(world, t, total, index, weight)
    surge = world.spec.rollout.max_surge
    if surge is None:
        return stable, canary
    # Stable gives a pod up only once its replacement is Ready behind the Service, so clients never see fewer.
    stable, canary = weights.budgeted_split(total, surge, canary, world.ready_behind_service(t),
                                            keeps_all=world.router != "replicas", has=world.pods(t))
    if world.router == "replicas" and weight < 100:
        # As without a budget, stable keeps a pod until the canary takes all the traffic, when there is room.
        stable = max(stable, min(1, total + surge - canary))
    return stable, canary


def within_budget(world: World) -> str:
    """How the pod budget paces a rollout, for its message; empty without one."""
    surge = world.spec.rollout.max_surge
    if surge is None:
        return ""
    how = "in place, one pod at a time" if surge == 0 else f"at most {surge} beyond the serving size"
    return f" (maxSurge {surge}: {how})"


def unbounded_split(world: World, t: int, total: int, index: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods the weight asks for, with no pod budget."""
    if world.router == "replicas":
        return weights.replicas_split(total, weight, world.ready(t))
    stable, canary = weights.mesh_split(total, weight)
    if weight == 0 and (pre_traffic(world, index) or header_route(world, index) or mirror(world, index)):
        # Judged before it gets traffic, reached by header alone, or sent copies of requests: pods enough for the
        # first weight it will take, at weight 0.
        steps = world.spec.rollout.steps or []
        first = next((s.set_weight for s in steps[index:] if s.set_weight), 0)
        canary = max(1, weights.canary_pods(total, first))
    return stable, canary


def header_route(world: World, index: int) -> tuple[tuple[str, str], ...]:
    """The headers that send requests to the canary: the latest setHeaderRoute step passed (one that is passed
    stays until the rollout ends); () when none is."""
    for step in reversed((world.spec.rollout.steps or [])[:index]):
        if step.set_header_route is not None:
            return tuple((m.name, m.value) for m in step.set_header_route.match)
    return ()


def mirror(world: World, index: int) -> int:
    """The share of requests copied to the canary at step `index` (0: none)."""
    return world.spec.rollout.mirror_at(index)


def pre_traffic(world: World, index: int) -> bool:
    """The current step is an analysis step and the canary has had no traffic yet."""
    steps = world.spec.rollout.steps or []
    return index < len(steps) and steps[index].analysis is not None and \
        not any(s.set_weight for s in steps[:index])


# How soon to read a mesh router's route again while the canary waits for its weight there.
ROUTE_POLL_SECONDS = 1.0


def route_poll(world: World) -> tuple[float, ...]:
    """A wake while a step waits. The replicas router needs none: what it waits for (pods Ready, their
    endpoints, a restart, why a pod cannot start) comes as watch events. A mesh router's route is the user's
    object and is not watched, so the weight it reports is read again soon."""
    return () if world.router == "replicas" else (ROUTE_POLL_SECONDS,)


def weight_reached(world: World, t: int, total: int, index: int, weight: int) -> bool:
    """The canary has its pods Ready and the router reports the weight."""
    _, canary = split(world, t, total, index, weight)
    f = world.facts(t)
    pods_ok = f is not None and f.replicas >= canary and world.ready(t) >= canary
    if world.router == "replicas":
        return pods_ok
    return pods_ok and world.obs.router_weight == weight


def canary_failure(world: World, analysis: AnalysisStatus, t: int, index: int, steps: list[Step],
                   step_started: datetime, waiting: bool) -> str | None:
    """Pod health, analysis and deadlines, with numbers; None while the canary may still pass. `waiting`: it
    waits on a person or a clock (held, or baking), so no progress deadline runs."""
    spec = world.spec
    f = world.facts(t)
    crashing = f.crash_loop(world.settings.crash_restart_limit) if f is not None else None
    if crashing:
        return crashing
    failure_limit = spec.rollout.analysis.failure_limit if spec.rollout.analysis else 0
    if analysis.failed > failure_limit:
        worst = "; ".join(f"{m.metric}={number(m.value)} ({m.message})" for m in analysis.measurements
                          if m.verdict == Verdict.FAIL)
        return (f"analysis failed {analysis.failed} of {analysis.runs - analysis.warmup_runs} runs "
                f"(failureLimit {failure_limit}): "
                f"{worst or 'see status.analysis'}")
    # A held rollout waits on a person, not on the canary, and a bake on its clock: no deadline then.
    waits_on_something = not waiting and (index >= len(steps) or steps[index].pause is None)
    elapsed = (world.now - world.progress_since(t, step_started)).total_seconds()
    deadline = spec.rollout.progress_deadline_seconds
    loading = world.loading(t)
    if loading is not None and loading[0] < loading[1]:
        return None  # a model still loading within its startup budget (see endings.failure)
    if waits_on_something and elapsed >= deadline:
        return (f"step {index + 1} made no progress in {int(elapsed)}s (progressDeadlineSeconds {deadline}): "
                f"{world.ready(t)} canary pods ready")
    return None


def record_analysis(world: World, state: RolloutState, t: int, fresh: bool) -> AnalysisStatus:
    """Fold this reconcile's measurements (if any) into the running analysis; a run that measured another
    revision (the canary changed since it was taken) is discarded, never counted for this one."""
    old = state.analysis
    a = old if (old is not None and old.revision == t and not fresh) else AnalysisStatus(revision=t)
    a = warm_up(world, a, t, 0 if fresh or state.step is None else state.step)
    run = world.obs.measurements
    if run is None or world.obs.measured_revision != t:
        return a
    at = world.obs.measured_at or world.now
    if a.last_run_at == timestamp(at):
        # Counted already: a reconcile wrote it to status, then failed (an Event refused) and gave the run back.
        # Runs of one model are at least an interval (1 s or more) apart, so no two share a second.
        return a
    ends = parse_timestamp(a.warmup_ends_at)
    block = world.spec.rollout.analysis
    warmup = block.warmup if block is not None else None
    if ends is None and a.warmup_started_at and warmup is not None and warmup.requests:
        return fold_warm_up(counted_warm_up(a, warmup, world.obs.measured_requests, at), run, at)
    return fold_warm_up(a, run, at) if ends is not None and at < ends else fold(a, run, at)


def counted_warm_up(a: AnalysisStatus, warmup: Warmup, counted: float | None, at: datetime) -> AnalysisStatus:
    """A warm-up by requests, with the count a run took: it ends once the canary has served that many (and its
    duration, if it has one, is over too). The run that counted them was taken while it was still cold, so it
    counts for nothing; the next one is the first that counts."""
    if counted is None:
        return a  # not counted (Prometheus did not answer): still warming up, as far as anyone can tell
    a = a.model_copy(update={"warmup_requests": int(counted)})
    if warmup.requests is None or counted < warmup.requests:
        return a
    began = parse_timestamp(a.warmup_started_at) or at
    end = max(at, began + timedelta(seconds=parse_duration(warmup.duration))) if warmup.duration else at
    return a.model_copy(update={"warmup_ends_at": timestamp(end)})


def warm_up(world: World, analysis: AnalysisStatus, t: int, index: int) -> AnalysisStatus:
    """Start the canary's warm-up (rollout.analysis.warmup) when it first gets requests, once per revision:
    with the replicas router when its first pods are Ready behind the Service, with a mesh when the route
    carries a weight to it (or a pre-traffic analysis step's runs reach its Ready pods). What it serves from
    then is what the warm-up leaves out of the verdict. (Seen a pass late at worst, so the warm-up ends late,
    never early.)"""
    block = world.spec.rollout.analysis
    if block is None or block.warmup is None or analysis.warmup_started_at or analysis.warmup_ends_at:
        return analysis
    # (The same readings the served weight comes from, so the pass that first writes a weight above 0, on which
    # the first run is started, has started the warm-up too, and every run is told when it ends.)
    if world.router == "replicas":
        serving = world.ready_endpoints(t) > 0
    else:
        behind_canary = world.obs.ready_endpoints.get(f"{world.obs.name}-canary", {}).get(t, 0)
        serving = (world.obs.router_weight or 0) > 0 or ((pre_traffic(world, index) or mirror(world, index) > 0)
                                                         and max(behind_canary, world.ready(t)) > 0)
    if not serving:
        return analysis
    update = {"warmup_started_at": timestamp(world.now)}
    if block.warmup.requests is None and block.warmup.duration:
        # A warm-up by time alone: its end is known now. (By requests, a run's count tells when it is over.)
        update["warmup_ends_at"] = timestamp(world.now + timedelta(seconds=parse_duration(block.warmup.duration)))
    return analysis.model_copy(update=update)


def analysis_passed(world: World, analysis: AnalysisStatus, step_started: datetime) -> bool:
    """An analysis step passes on a passing run taken after it began (or at once with no metrics)."""
    if not (world.spec.rollout.analysis and world.spec.rollout.analysis.metrics):
        return True
    last = parse_timestamp(analysis.last_run_at)
    return bool(last and last >= step_started.replace(microsecond=0) and analysis.last_verdict == Verdict.PASS)


def next_analysis_in(world: World, analysis: AnalysisStatus, started: datetime) -> float:
    """Seconds until the next analysis run is due (0 when none is configured)."""
    due = analysis_due_at(world.spec, analysis, started)
    return (due - world.now).total_seconds() if due else 0.0
