"""What `kubectl modeldeploy status` and `history` print."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api import names
from modeldeploy.cli import render


def cr(revision: int, model: str, outcome: str, reason: str = "", created: str = "") -> dict[str, Any]:
    ann = {names.ANN_MODEL_VERSION: model, names.ANN_OUTCOME: outcome}
    if reason:
        ann[names.ANN_OUTCOME_REASON] = reason
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": revision,
            "metadata": {"name": f"fraud-{revision:010x}", "annotations": ann,
                         "creationTimestamp": created or f"2025-06-0{revision}T12:00:00Z"}}


def md(generation: int = 4, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "namespace": "risk", "generation": generation}, "status": status}


# Listed out of order, as the API server may return them.
HISTORY = [cr(3, "9", "Failed", "0/3 pods ready after 601s (progressDeadlineSeconds 600)"),
           cr(1, "7", "Superseded"), cr(4, "10", "Progressing"), cr(2, "8", "Stable")]
ROLLING = md(observedGeneration=4, phase="Progressing", stableRevision=2, canaryRevision=4, canaryWeight=10,
             replicas=6, readyReplicas=4, url="http://fraud.risk.svc.cluster.local",
             message="revision 4 (model 10): 1/3 pods ready; revision 2 serves until then",
             conditions=[{"type": "Ready", "status": "False", "reason": "RollingOut",
                          "lastTransitionTime": "2025-06-04T12:00:00Z"},
                         {"type": "Progressing", "status": "True", "reason": "RollingOut",
                          "lastTransitionTime": "2025-06-04T12:00:00Z"}])


def test_history_rows_are_oldest_first_with_outcome_and_serving_mark() -> None:
    rows = render.history_rows(ROLLING, HISTORY)
    assert [(r["revision"], r["model"], r["outcome"], r["serving"]) for r in rows] == [
        (1, "7", "Superseded", ""),
        (2, "8", "Stable", "stable"),
        (3, "9", "Failed", ""),
        (4, "10", "Progressing", "canary"),
    ]
    assert rows[2]["reason"] == "0/3 pods ready after 601s (progressDeadlineSeconds 600)"
    assert rows[0]["created"] == "2025-06-01T12:00:00Z"


def test_history_table() -> None:
    lines = render.history(ROLLING, HISTORY).splitlines()
    assert lines[0].split() == ["REVISION", "MODEL", "CREATED", "OUTCOME", "SERVING", "REASON"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["1", "7", "2025-06-01T12:00:00Z", "Superseded"],
        ["2", "8", "2025-06-02T12:00:00Z", "Stable"],
        ["3", "9", "2025-06-03T12:00:00Z", "Failed"],
        ["4", "10", "2025-06-04T12:00:00Z", "Progressing"],
    ]
    assert lines[2].split()[4] == "stable" and lines[4].split()[4] == "canary"
    assert lines[3].endswith("0/3 pods ready after 601s (progressDeadlineSeconds 600)")
    # Columns line up: every row starts its OUTCOME column where the header does.
    column = lines[0].index("OUTCOME")
    assert {line[column:].split()[0] for line in lines[1:]} == {"Superseded", "Stable", "Failed", "Progressing"}


def test_history_without_revisions() -> None:
    assert render.history(md(), []) == "fraud: no revisions yet"


def test_status_while_rolling_out() -> None:
    text = render.status(ROLLING, HISTORY)
    lines = text.splitlines()
    assert lines[0] == "fraud in namespace risk"
    assert "  phase:     Progressing" in lines
    assert "  stable:    revision 2 (model 8)" in lines
    assert "  canary:    revision 4 (model 10) at 10%" in lines
    assert "  replicas:  4/6 ready" in lines
    assert "  url:       http://fraud.risk.svc.cluster.local" in lines
    assert "  message:   revision 4 (model 10): 1/3 pods ready; revision 2 serves until then" in lines
    conditions = text.split("  conditions:\n", 1)[1].splitlines()
    assert [c.split() for c in conditions] == [["TYPE", "STATUS", "REASON", "SINCE"],
                                               ["Ready", "False", "RollingOut", "2025-06-04T12:00:00Z"],
                                               ["Progressing", "True", "RollingOut", "2025-06-04T12:00:00Z"]]


@pytest.mark.parametrize(("resource", "history", "expected", "absent"), [
    (md(observedGeneration=4, phase="Healthy", stableRevision=2, replicas=3, readyReplicas=3), HISTORY,
     ["  phase:     Healthy", "  stable:    revision 2 (model 8)", "  replicas:  3/3 ready"], ["canary:", "(spec"]),
    (md(generation=5, observedGeneration=4, phase="Healthy", stableRevision=2), HISTORY,
     ["  phase:     Healthy  (spec generation 5, operator has seen 4)"], []),
    ({"metadata": {"name": "fraud", "namespace": "risk"}}, [],
     ["  phase:     Unknown", "  stable:    -", "  replicas:  0/0 ready"], ["conditions:", "canary:"]),
    (md(observedGeneration=4, phase="Healthy", stableRevision=7), HISTORY, ["  stable:    revision 7 (model ?)"], []),
], ids=["healthy", "generation-not-yet-seen", "no-status-yet", "stable-missing-from-history"])
def test_status_lines(resource: dict[str, Any], history: list[dict[str, Any]], expected: list[str],
                      absent: list[str]) -> None:
    text = render.status(resource, history)
    for line in expected:
        assert line in text.splitlines(), text
    for fragment in absent:
        assert fragment not in text, text


def test_status_before_the_operator_has_seen_it() -> None:
    text = render.status(md(generation=1), [])
    assert "None" not in text
    assert text.splitlines()[1].startswith("  phase:     Unknown")
