"""The rollout transition: (state, world) -> decision. Pure.

One pass settles the history first (adopting Deployments whose records are gone,
finding the spec's revision, carrying out rollback and abort requests, closing
rollouts the spec moved away from), then makes exactly one move from the table in
docs/rollouts.md, then works out the pods of every revision: what serves keeps its
pods, the revision superseded last stays warm for scaleDownDelaySeconds, and a
superseded canary drains only as the wanted revisions' pods become Ready.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modeldeploy.api.status import Phase, RollbackOverride
from modeldeploy.desired import budget, canary, requests, weights
from modeldeploy.desired.actions import Event
from modeldeploy.desired.endings import draining, failure, promote, roll_back
from modeldeploy.desired.facts import RevisionRecord
from modeldeploy.desired.history import STOPPED, Outcome
from modeldeploy.desired.ledger import Ledger
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.state import PODS_STUCK, Decision, Fleet, Move, Pass, Pods, RolloutState, World


def transition(state: RolloutState, world: World) -> Decision:
    """Decide one pass: the move the table allows, then the pods every revision keeps."""
    p = begin(state, world)
    stable = p.ledger.stable(state.stable)
    p, goal = choose_goal(p, state, world)
    p = release_others(p, goal, state)
    if p.ledger[goal].outcome in STOPPED and p.ledger[goal].released:
        # Asked for again after the spec moved away: a new attempt.
        p = p.with_outcome(goal, Outcome.PROGRESSING)
    t = goal
    in_flight = stable is not None and stable != t and p.ledger[t].outcome not in STOPPED
    if world.requests.abort:
        p = p.carried_out(requests.ABORT, world.requests.abort)
        if in_flight:
            p = p.with_outcome(t, Outcome.ABORTED, "aborted by `kubectl modeldeploy abort`")
            p = p.said("Warning", "Aborted", f"revision {t} (model {p.ledger[t].model_version}) aborted; "
                                             f"revision {stable} serves 100%")
            in_flight = False  # an abort goes through a pause: a person asked for it
    # A revision that served well before (a revert in git, or a rollback request) comes back directly: no steps.
    known_good = p.ledger[t].outcome in (Outcome.SUPERSEDED.value, Outcome.STABLE.value)
    with_steps = bool(world.spec.rollout.steps) and not known_good and p.override is None
    if world.held and in_flight and not (with_steps and state.canary == t):
        assert stable is not None
        move = hold(world, p, state, t, stable)  # canary steps hold themselves, at their current step
    elif stable is None or stable == t:
        move = settle(world, p, state, t, stable)
    elif p.ledger[t].outcome in STOPPED:
        move = stopped(world, p, state, t, stable)
    elif with_steps:
        move = canary.advance(world, p, state, t, stable)
    else:
        move = progress(world, p, state, t, stable)
    return conclude(world, state, move)


# -- the history, before the move ----------------------------------------------------------------------------
def begin(state: RolloutState, world: World) -> Pass:
    """The history (with adopted Deployments) and the revision the spec asks for: a known one with the same
    serving template, or a new number (never one a Deployment still uses)."""
    obs = world.obs
    ledger = Ledger.adopt(obs.revisions, obs.deployments, state.stable, state.canary)
    template = world.spec.serving_template()
    digest = template_hash(template)
    known = ledger.find(digest)
    if known is None:
        number = max([0, *ledger.records, *obs.deployments]) + 1
        known = RevisionRecord(number=number, hash=digest, model_version=world.spec.model.version,
                               outcome=Outcome.PROGRESSING.value, template=template)
        ledger = ledger.with_record(known)
    return Pass(ledger=ledger, target=known.number, handled=dict(state.handled))


def choose_goal(p: Pass, state: RolloutState, world: World) -> tuple[Pass, int]:
    """The revision to serve: the spec's, unless a rollback request overrides it (until the spec's serving
    template changes)."""
    digest = p.ledger[p.target].hash
    recorded = state.override
    p = replace(p, override=recorded if recorded and recorded.spec_hash == digest else None)
    if world.requests.rollback:
        number, token = world.requests.rollback
        p = p.carried_out(requests.ROLLBACK, token)
        if number in p.ledger:
            p = replace(p, override=RollbackOverride(revision=number, spec_hash=digest))
            rec = p.ledger[number]
            before = (f"; it failed before ({rec.reason}), so this is a new attempt"
                      if rec.outcome == Outcome.FAILED.value else "")
            p = p.said("Normal", "RollbackRequested",
                       f"rolling back to revision {number} (model {rec.model_version}){before}; it serves until "
                       f"the spec's serving template changes")
        else:
            known = ", ".join(str(n) for n in sorted(p.ledger.records)) or "none"
            p = p.said("Warning", "RollbackRejected",
                       f"revision {number} is not in the history (known: {known}); "
                       f"see `kubectl modeldeploy history {world.obs.name}`")
    if p.override is None:
        return p, p.target
    number = p.override.revision
    rec = p.ledger[number]
    if rec.outcome in STOPPED and not rec.released:
        # Asking for it back by hand is the "spec change" that lifts a failure: a new attempt, which the history
        # records as one (it never served, so it is not "Superseded").
        p = p.with_outcome(number, Outcome(rec.outcome), rec.reason, released=True)
    return p, number


def release_others(p: Pass, goal: int, state: RolloutState) -> Pass:
    """The spec asks for `goal`: earlier failures become retryable, abandoned rollouts are closed."""
    for number in list(p.ledger.records):
        rec = p.ledger[number]
        if number == goal:
            continue
        if rec.outcome in STOPPED and not rec.released:
            p = p.with_outcome(number, Outcome(rec.outcome), rec.reason, released=True)
        elif rec.outcome == Outcome.PROGRESSING.value:
            p = p.with_outcome(number, Outcome.ABORTED, "the spec moved on before it was ready", released=True)
            if number == state.canary:
                p = superseded(p, number, goal, state)
    return p


def superseded(p: Pass, number: int, goal: int, state: RolloutState) -> Pass:
    """Say which canary the spec left behind, and that its pods stay until the goal's are Ready."""
    rec, target = p.ledger[number], p.ledger[goal]
    weight = f" at {state.canary_weight}%" if state.canary_weight is not None else ""
    why = "the spec went back to it" if goal == state.stable else "the spec changed"
    return p.said("Normal", "Superseded",
                  f"revision {number} (model {rec.model_version}){weight} superseded by revision {goal} "
                  f"(model {target.model_version}): {why}; its pods drain as revision {goal}'s become Ready")


# -- the moves without canary steps ----------------------------------------------------------------------------
def hold(world: World, p: Pass, state: RolloutState, t: int, stable: int) -> Move:
    """Paused (spec.paused or `kubectl modeldeploy pause`): nothing moves; a new revision does not start."""
    rec = p.ledger[t]
    how = "spec.paused is true" if world.spec.paused else "`kubectl modeldeploy resume` continues"
    if state.canary != t:
        return Move(p, stable, None, Phase.PAUSED, "Paused",
                    f"rollouts are paused: revision {t} (model {rec.model_version}) waits; "
                    f"revision {stable} keeps serving ({how})")
    # In flight: both keep their pods (within a pod budget, the stable one too: it gets back what it gave up
    # only as the canary gives its pods up); the progress deadline starts again on resume.
    return Move(p, stable, t, Phase.PAUSED, "Paused",
                f"revision {t} (model {rec.model_version}) held at {world.ready(t)} ready pods; "
                f"revision {stable} serves ({how})",
                pods={t: world.pods(t), stable: world.size if world.budget is None
                      else max(0, min(world.size, world.budget - world.pods(t)))})


def settle(world: World, p: Pass, state: RolloutState, t: int, stable: int | None) -> Move:
    """One revision serves (or is about to): keep it at size."""
    size = world.size
    rec = p.ledger[t]
    ready = world.ready(t)
    f = world.facts(t)
    if f is not None and f.replicas == size and ready >= size:
        return Move(p.with_outcome(t, Outcome.STABLE), t, None, Phase.HEALTHY, "Healthy",
                    f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready", pods={t: size})
    if stable is not None:
        return Move(p, t, None, Phase.PROGRESSING, "Scaling",
                    f"revision {t} (model {rec.model_version}): {ready}/{size} pods ready", pods={t: size})
    p = p.with_outcome(t, Outcome.PROGRESSING)
    # Nothing to roll back to, but a first revision that cannot start says why.
    started = state.started or world.now
    why = failure(world, t, size, started)
    if why is not None:
        return Move(p, None, None, Phase.DEGRADED, "RolloutStuck",
                    f"revision {t} (model {rec.model_version}): {why}; fix the spec", pods={t: size},
                    started=started)
    deadline = started + timedelta(seconds=world.spec.rollout.progress_deadline_seconds)
    return Move(p, None, None, Phase.PENDING, PODS_STUCK if world.stuck(t) else "Deploying",
                f"revision {t} (model {rec.model_version}): {world.readiness(t, size)}", pods={t: size},
                started=started, wake=((deadline - world.now).total_seconds(), *world.loading_wake(t)))


def stopped(world: World, p: Pass, state: RolloutState, t: int, stable: int) -> Move:
    """The spec asks for a revision that failed or was aborted: stable serves; the canary drains.

    Status may still show it as the canary: the reconcile that rolled it back recorded the outcome (records are
    written first) and then failed before its status was written. The analysis run that failed it is handed to
    this reconcile again (reconcile/runs.give_back), and is folded in here, so the evidence still reaches status.
    (Found by the fault harness: a 409 on the rollback's Deployment write left status without the evidence.)"""
    rec = p.ledger[t]
    keep, wake = draining(world, t, stable)
    verb = "was aborted" if rec.outcome == Outcome.ABORTED.value else "failed"
    evidence = canary.record_analysis(world, state, t, fresh=False) if state.canary == t else None
    return Move(p, stable, None, Phase.DEGRADED, "RolledBack" if verb == "failed" else "Aborted",
                f"revision {t} (model {rec.model_version}) {verb}: {rec.reason}; "
                f"revision {stable} serves. Change the spec to try again", pods={t: keep}, wake=wake,
                analysis=evidence)


def progress(world: World, p: Pass, state: RolloutState, t: int, stable: int) -> Move:
    """A new revision rolls out beside the stable one at full size, then takes over; within a pod budget it
    grows as the stable one gives up pods to it."""
    size = world.size
    rec = p.ledger[t]
    started = (state.started if state.canary == t else None) or world.now
    ready = world.ready(t)
    surge = world.spec.rollout.max_surge
    weight = 0
    if surge is None:
        pods = {t: size, stable: size}
    else:
        stable_pods, new_pods = weights.budgeted_split(size, surge, size, world.ready_behind_service(t),
                                                       keeps_all=False, has=world.pods(t))
        pods = {t: new_pods, stable: stable_pods}
        if world.router != "replicas":
            # (a revert or `rollback --to-revision`, which skip the steps) A mesh route sends what it carries
            # to `<md>-stable` alone: it follows the Ready pods, as the replicas router's Service does.
            weight = ready_share(world, stable, t)
    f = world.facts(t)
    # A crash loop fails it even while all its pods happen to be Ready between two crashes; a deadline only while
    # they are not (an operator back after a long outage does not roll back what became Ready).
    crashing = f.crash_loop(world.settings.crash_restart_limit) if f is not None else None
    if crashing:
        return roll_back(world, p, t, stable, crashing, started=started, held_pods=pods)
    if f is not None and f.replicas == size and ready >= size:
        return promote(world, p, t, stable, size, None)
    why = failure(world, t, size, started)
    if why is not None:
        return roll_back(world, p, t, stable, why, started=started, held_pods=pods)
    deadline = world.progress_since(t, started) + timedelta(seconds=world.spec.rollout.progress_deadline_seconds)
    return Move(p, stable, t, Phase.PROGRESSING, PODS_STUCK if world.stuck(t) else "RollingOut",
                f"revision {t} (model {rec.model_version}): {world.readiness(t, size)}"
                f"{canary.within_budget(world)}; revision {stable} serves until then",
                pods=pods, started=started, weight=weight,
                wake=((deadline - world.now).total_seconds(), *world.loading_wake(t), *load_ends(world, t)))


def ready_share(world: World, stable: int, t: int) -> int:
    """The share of the Ready endpoints that are t's, in percent. (Endpoints, not the Deployments' counts: those
    read 0 for a moment after each change of a spec, and a weight from that could send every request to a
    revision with no pods.) With none Ready at all, whichever revision still has pods."""
    old, new = world.ready_endpoints(stable), world.ready_endpoints(t)
    if old + new:
        return weights.effective_weight(old, new)
    return 0 if world.pods(stable) else 100


def load_ends(world: World, t: int) -> tuple[float, ...]:
    """When a loading model's startup budget runs out: the progress deadline's check comes then."""
    loading = world.loading(t)
    return (loading[1] - loading[0],) if loading is not None else ()


# -- after the move: every revision's pods -----------------------------------------------------------------------
def conclude(world: World, state: RolloutState, move: Move) -> Decision:
    """The pods of every revision, idle requests spent, the phase the pods allow, an Event on a transition."""
    p = spend_idle_requests(world, move)
    fleet, wake = size_fleet(world, move)
    phase, reason, message = move.phase, move.reason, move.message
    if phase == Phase.HEALTHY and (waiting := unsettled(world, fleet)):
        # Healthy only once the pods match what was asked: a revision scaled down may still run its pods.
        phase, reason, message = Phase.PROGRESSING, "ScalingDown", f"{message}; {waiting}"
    events = p.events
    if (phase != state.phase or reason != state.reason) and not any(e.reason == reason for e in events):
        kind = "Warning" if phase in (Phase.DEGRADED, Phase.FAILED) or reason == PODS_STUCK else "Normal"
        events = (*events, Event(kind, reason, message))
    move = replace(move, phase=phase, reason=reason, message=message)
    future = [w for w in (*move.wake, *wake) if w > 0]
    return Decision(move=move, fleet=fleet, handled=p.handled, events=events,
                    requeue_after=min(future) + 0.5 if future else None)


def spend_idle_requests(world: World, move: Move) -> Pass:
    """A promote with no canary step to finish is spent, with a warning, so it cannot skip a later step.
    A resume is spent at once: it acts only in the pass that sees it."""
    p, asked = move.pass_, world.requests
    if asked.resume:
        p = p.carried_out(requests.RESUME, asked.resume)
    if move.canary is not None and move.position is not None and world.held:
        return p  # kept for when the held canary resumes
    for key, token in ((requests.PROMOTE, asked.promote), (requests.PROMOTE_FULL, asked.promote_full)):
        if token and p.handled.get(key) != token:
            p = p.carried_out(key, token).said("Warning", "PromoteIgnored",
                                               "`kubectl modeldeploy promote` found no canary step to finish")
    return p


def size_fleet(world: World, move: Move) -> tuple[Fleet, list[float]]:
    """Every revision's pods, and when to look again for a scale-down that is due."""
    ledger, now = move.pass_.ledger, world.now
    serving = move.stable if move.stable is not None else move.pass_.target
    pods = dict(move.pods)
    if serving not in pods and serving not in move.retiring:
        pods[serving] = world.size  # what serves never loses its pods
    keep = {serving} | set(pods)
    previous = last_superseded(world, move, keep)
    if previous is not None:
        keep.add(previous)
    deployments: dict[int, Pods] = {}
    wake: list[float] = []
    delay = timedelta(seconds=world.spec.rollout.scale_down_delay_seconds)
    for number in sorted(keep):
        f = world.facts(number)
        if number in pods:
            deployments[number] = Pods(pods[number])
        elif f is not None:  # (a superseded revision whose Deployment is gone is not brought back)
            # Superseded: it keeps its pods until the scale-down delay has passed.
            when = now + delay if number in move.retiring else (f.scale_down_at or now + delay)
            wake.append((when - now).total_seconds())
            deployments[number] = Pods(0 if now >= when else f.replicas, when, superseded_at(world, move, number))
    drains = draining_pods(world, keep)
    for number, count in sorted(drains.items()):
        if number in ledger:  # one with no record (made before Deployments said what they run) is left as is
            deployments[number] = Pods(count)
    first = (serving, *sorted(drains, key=lambda n: -world.ready(n)), move.canary)
    deployments = budget.fit(world, deployments, tuple(n for n in first if n is not None))
    kept = frozenset(keep | set(drains))
    delete = tuple(n for n in world.obs.deployments if n not in kept)
    return Fleet(deployments=deployments, kept=kept, delete=delete, serving=serving), wake


def draining_pods(world: World, keep: set[int]) -> dict[int, int]:
    """Pods of revisions no longer wanted (a superseded canary), kept while the wanted ones are short of Ready
    pods, so what is served never drops by more than the one pod a replacement is starting. With the replicas
    router, Ready behind `<md>`: during a bake it selected the canary alone, and a spec change then moves it to
    other pods by way of both (desired.rollout.services)."""
    ready = world.ready_behind_service if world.router == "replicas" else world.ready
    missing = world.size - sum(ready(n) for n in keep)
    out: dict[int, int] = {}
    leaving = [n for n in world.obs.deployments if n not in keep and world.pods(n)]
    for number in sorted(leaving, key=lambda n: (-world.ready(n), -n)):
        count = min(world.pods(number), max(0, missing))
        if count:
            out[number] = count
            missing -= min(count, world.ready(number))
    return out


def last_superseded(world: World, move: Move, keep: set[int]) -> int | None:
    """The revision superseded last, still deployed: kept (scaled down after the delay) for a fast way back.
    Last means last to serve, which after a revert or a rollback is not the highest number."""
    ledger = move.pass_.ledger
    candidates = [n for n in world.obs.deployments
                  if n not in keep and n in ledger and ledger[n].outcome == Outcome.SUPERSEDED.value]

    def when(number: int) -> tuple[datetime, int]:
        return superseded_at(world, move, number) or datetime.min.replace(tzinfo=UTC), number

    return max(candidates, key=when) if candidates else None


def superseded_at(world: World, move: Move, number: int) -> datetime | None:
    """When a revision stopped serving: now, if this pass superseded it; else as its Deployment says."""
    return world.now if number in move.retiring else world.obs.deployments[number].superseded_at


def unsettled(world: World, fleet: Fleet) -> str:
    """Which revision's pods do not yet match this decision, for a person; empty when all do."""
    planned = {n: d.replicas for n, d in fleet.deployments.items()}
    waiting = [f"revision {n} scaling to {planned.get(n, 0)} pods" for n, f in sorted(world.obs.deployments.items())
               if planned.get(n, f.replicas) != f.replicas or not f.settled]
    return ", ".join(waiting)
