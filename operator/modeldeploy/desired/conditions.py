"""Status conditions in the kstatus form, derived from the phase."""

from __future__ import annotations

from modeldeploy.api.status import Condition, ConditionType, Phase

RETRYING = "ApplyFailed"  # Reconciling's reason while a write the API server did not take is retried


def conditions(phase: Phase, reason: str, message: str, generation: int,
               previous: list[Condition], now: str) -> list[Condition]:
    """Ready/Progressing/Degraded for people, Reconciling/Stalled for kstatus.

    A condition keeps its lastTransitionTime while its status does not change,
    so a reconcile that changes nothing writes nothing.
    """
    truth = {
        ConditionType.READY: phase == Phase.HEALTHY,
        ConditionType.PROGRESSING: phase in (Phase.PENDING, Phase.PROGRESSING),
        ConditionType.DEGRADED: phase == Phase.DEGRADED,
        ConditionType.RECONCILING: phase in (Phase.PENDING, Phase.PROGRESSING),
        # Settled short of the spec, and the operator will not try again until the spec changes (a
        # rollback, an abort, a stuck rollout, a spec it cannot serve): kstatus reads Stalled as Failed,
        # so Flux's `wait` fails at once with this message instead of waiting out its timeout.
        ConditionType.STALLED: phase in (Phase.FAILED, Phase.DEGRADED),
    }
    before = {c.type: c for c in previous}
    out = []
    for ctype, is_true in truth.items():
        status = "True" if is_true else "False"
        old = before.get(ctype.value)
        since = old.last_transition_time if old and old.status == status else now
        out.append(Condition(type=ctype.value, status=status, reason=reason, message=message,
                             observed_generation=generation, last_transition_time=since))
    return out
