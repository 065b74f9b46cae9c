"""Which pod events can change a reconcile's outcome.

A crash-looping pod changes its status several times per restart (waiting,
running, terminated, back-off), and a rollout's pods change theirs as they
start; every one of those events would otherwise cost a full reconcile. The
reconcile reads pods only for their restart counts, for why they cannot start
(an image that cannot be pulled, a failed model download), and for how many are
left of a revision scaled down, so only a rise in a restart count, a change in
why the pod cannot start, or a pod gone, is worth a reconcile. (How many are
Ready comes with their Deployment's status and EndpointSlices, both watched: a
rollout waits for pods on events, not by polling.)
"""

from __future__ import annotations


class RestartCounts:
    """The last restart count seen of each live pod, and why it could not start if something said, by uid."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, str]] = {}

    def matters(self, uid: str, event_type: str | None, count: int, stuck: str = "") -> bool:
        """Record a pod event; whether the pod has restarted since its last event, why it cannot start changed,
        or it is gone (which can finish a scale-down: a revision is settled only once its left-over pods are)."""
        if event_type == "DELETED":
            self._seen.pop(uid, None)
            return True
        before, was_stuck = self._seen.get(uid, (0, ""))
        self._seen[uid] = (count, stuck)
        return count > before or stuck != was_stuck

    def __len__(self) -> int:
        return len(self._seen)
