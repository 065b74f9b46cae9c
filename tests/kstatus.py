"""kstatus's generic rules for a custom resource, as the unit tests apply them to planner output.

A re-implementation of kubernetes-sigs/cli-utils pkg/kstatus/status v0.37 (status.go `Compute` and
`checkReadyCondition`, generic.go `checkGenericProperties` and `checkGeneration`) for a resource with no
type-specific rule. The unit tests need it without a Go toolchain; the GitOps end-to-end test
(tests/e2e/test_gitops_status.py) checks that it agrees with the real library on every status
the real operator writes.
"""

from __future__ import annotations

from typing import Any

IN_PROGRESS, FAILED, CURRENT, TERMINATING = "InProgress", "Failed", "Current", "Terminating"


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as kstatus computes them for a resource with no type-specific rule."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    # checkGenericProperties: a resource scheduled for deletion is Terminating.
    if meta.get("deletionTimestamp"):
        return TERMINATING, "Resource scheduled for deletion"
    # checkGeneration: only when both metadata.generation and status.observedGeneration are
    # present; they differ -> InProgress (reason LatestGenerationNotObserved).
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        kind = obj.get("kind")
        return IN_PROGRESS, f"{kind} generation is {generation}, but latest observed generation is {observed}"
    # checkGenericProperties: the first condition that is Reconciling=True (-> InProgress) or
    # Stalled=True (-> Failed) decides, in the order the conditions are listed.
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Reconciling" and cond.get("status") == "True":
            return IN_PROGRESS, cond.get("message", "")
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return FAILED, cond.get("message", "")
    # Compute, checkReadyCondition: with no generic decision and no type-specific rule (a custom
    # resource), a Ready condition decides: True -> Current, False or Unknown -> InProgress.
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return CURRENT, "Resource is Ready"
        if cond.get("type") == "Ready" and cond.get("status") in ("False", "Unknown"):
            return IN_PROGRESS, cond.get("message", "")
    # Compute: nothing decided -> Current.
    return CURRENT, "Resource is current"
