"""Which pod events can change a reconcile's outcome.

A crash-looping pod changes its status several times per restart (waiting,
running, terminated, back-off), and a rollout's pods change theirs as they
start; every one of those events would otherwise cost a full reconcile. The
reconcile reads pods only for their restart counts and for how many are left
of a revision scaled down, so only a rise in a restart count, or a pod gone,
is worth a reconcile.
"""

from __future__ import annotations


class RestartCounts:
    """The last restart count seen of each live pod, by uid."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def matters(self, uid: str, event_type: str | None, count: int) -> bool:
        """Record a pod event; whether the pod has restarted since its last event, or is gone (which can finish a
        scale-down: a revision is settled only once its left-over pods are)."""
        if event_type == "DELETED":
            self._seen.pop(uid, None)
            return True
        before = self._seen.get(uid, 0)
        self._seen[uid] = count
        return count > before

    def __len__(self) -> int:
        return len(self._seen)
