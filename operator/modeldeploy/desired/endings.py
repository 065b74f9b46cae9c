"""How a rollout ends: promotion, rollback, or a hold for a person (without autoRollback)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from modeldeploy.api.status import AnalysisStatus, Phase
from modeldeploy.desired.history import Outcome
from modeldeploy.desired.state import Move, Pass, Position, World


def promote(world: World, p: Pass, t: int, stable: int, size: int, analysis: AnalysisStatus | None) -> Move:
    """The new revision is stable; the old one keeps its pods for the scale-down delay."""
    rec = p.ledger[t]
    delay = world.spec.rollout.scale_down_delay_seconds
    p = p.with_outcome(stable, Outcome.SUPERSEDED).with_outcome(t, Outcome.STABLE)
    p = p.said("Normal", "Promoted", f"revision {t} (model {rec.model_version}) is stable; "
                                     f"revision {stable} scales down in {delay}s")
    return Move(p, t, None, Phase.HEALTHY, "Healthy",
                f"revision {t} (model {rec.model_version}): {world.ready(t)}/{size} pods ready",
                retiring=frozenset({stable}), analysis=analysis)


def roll_back(world: World, p: Pass, t: int, stable: int, failure: str, *, weight: int = 0,
              position: Position | None = None, started: datetime | None = None,
              analysis: AnalysisStatus | None = None, held_pods: Mapping[int, int] | None = None) -> Move:
    """Traffic back to stable at once; the revision is recorded as failed (or, without autoRollback, held with
    `held_pods`: by default the pods each has, which a canary's split decided)."""
    rec = p.ledger[t]
    if not world.spec.rollout.auto_rollback:
        # Held, not torn down: both revisions keep their pods and the canary its weight until a person
        # aborts (rolls back) or promotes (goes on).
        name = world.obs.name
        return Move(p, stable, t, Phase.DEGRADED, "RolloutStuck",
                    f"revision {t} (model {rec.model_version}) at {weight}%: {failure}; "
                    f"autoRollback is off, so it is held: `kubectl modeldeploy abort {name}` rolls back, "
                    f"`kubectl modeldeploy promote {name}` goes on",
                    pods=held_pods or {t: world.pods(t), stable: world.pods(stable)}, weight=weight,
                    position=position, started=started, analysis=analysis)
    p = p.with_outcome(t, Outcome.FAILED, failure)
    p = p.said("Warning", "RolledBack", f"revision {t} (model {rec.model_version}) rolled back: "
                                        f"{failure}; revision {stable} serves 100%")
    keep, wake_drain = draining(world, t, stable)
    return Move(p, stable, None, Phase.DEGRADED, "RolledBack",
                f"revision {t} (model {rec.model_version}) failed: {failure}; "
                f"revision {stable} serves. Change the spec to try again",
                pods={stable: world.size, t: keep}, analysis=analysis, wake=wake_drain)


def draining(world: World, t: int, stable: int) -> tuple[int, tuple[float, ...]]:
    """Canary pods kept only while the stable revision regains its Ready pods (and when to look again).

    With the replicas router the stable revision may have handed pods to the
    canary; dropping the canary at once would leave the Service short, or
    empty. A mesh router takes the canary's traffic away at once (weight 0),
    and stable never gave up pods there, so this keeps pods only while stable
    is short for another reason (an autoscaler that just asked for more).

    With the replicas router, what counts is the stable pods behind `<md>`: after a bake `<md>` selected the
    canary alone, and its pods go only once kube-controller-manager has put the stable ones behind it (else the
    Service is left with no endpoint for a moment; measured on the local control plane).
    """
    ready = world.ready_behind_service(stable) if world.router == "replicas" else world.ready(stable)
    missing = world.size - ready
    if world.router != "replicas" and world.obs.router_weight:
        # The route still sends the canary requests (its weight is set after the Deployments are written, and
        # read back on the next pass): its pods stay until it does not.
        missing = world.size
    keep = max(0, min(world.pods(t), missing))
    return keep, ((1.0,) if keep else ())


def failure(world: World, t: int, size: int, started: datetime) -> str | None:
    """Why a rolling-out revision has failed, with numbers; None while it may still succeed."""
    f = world.facts(t)
    crashing = f.crash_loop(world.settings.crash_restart_limit) if f is not None else None
    if crashing:
        return crashing
    elapsed = (world.now - world.progress_since(t, started)).total_seconds()
    deadline = world.spec.rollout.progress_deadline_seconds
    loading = world.loading(t)
    if loading is not None and loading[0] < loading[1]:
        # The deadline counts from when the load began (the pod's start on its node), and a load may take its
        # startup budget: time spent waiting for a node does not eat into it.
        return None
    if elapsed >= deadline:
        return f"{world.readiness(t, size)} after {int(elapsed)}s (progressDeadlineSeconds {deadline})"
    return None
