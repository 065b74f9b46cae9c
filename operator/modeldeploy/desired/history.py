"""Revision history as ControllerRevision objects (apps/v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from modeldeploy.api import names
from modeldeploy.desired.facts import RevisionRecord
from modeldeploy.desired.workload import Owner


class Outcome(StrEnum):
    PROGRESSING = "Progressing"  # rolling out now
    STABLE = "Stable"  # serving
    SUPERSEDED = "Superseded"  # served, then replaced by a newer revision
    FAILED = "Failed"  # rolled back; not retried until the spec changes
    ABORTED = "Aborted"  # stopped by hand


# Outcomes that keep a revision down until the spec asks for another one.
STOPPED = (Outcome.FAILED.value, Outcome.ABORTED.value)


def revision_name(md: str, template_hash: str) -> str:
    """ControllerRevision name: one per distinct serving template."""
    return f"{md}-{template_hash}"


def controller_revision(owner: Owner, record: RevisionRecord) -> dict[str, Any]:
    """The ControllerRevision holding one revision's serving template and outcome."""
    annotations = {names.ANN_MODEL_VERSION: record.model_version, names.ANN_OUTCOME: record.outcome}
    if record.reason:
        annotations[names.ANN_OUTCOME_REASON] = record.reason
    if record.released:
        annotations[names.ANN_RELEASED] = "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": owner.metadata(revision_name(owner.name, record.hash),
                                   {names.LABEL_REVISION_HASH: record.hash}, annotations),
        "revision": record.number,
        "data": record.template,
    }
