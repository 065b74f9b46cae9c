"""docs/reference.md is the generated API reference, and it is complete and current."""

from __future__ import annotations

from pathlib import Path

from modeldeploy.api import reference
from modeldeploy.api.descriptions import NOTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def all_rows() -> list[reference.Row]:
    return [row for root, model in reference.ROOTS for row in reference.rows(root, model)]


def test_committed_reference_is_current() -> None:
    assert DOC.read_text() == reference.render(), (
        "docs/reference.md is stale: run `python -m modeldeploy.api.reference > docs/reference.md`")


def test_rendering_is_deterministic() -> None:
    assert reference.render() == reference.render()


def test_every_field_is_described() -> None:
    assert [r.path for r in all_rows() if not r.description] == []


def test_notes_name_only_fields_that_exist_and_lack_a_description() -> None:
    rows = {r.path: r for r in all_rows()}
    assert sorted(set(NOTES) - set(rows)) == []  # a renamed or removed field leaves no stale note
    # A field that gained its own description makes its note unused: drop the note.
    assert [p for p, note in NOTES.items() if rows[p].description != note.removesuffix(".")] == []


def test_every_field_appears_once() -> None:
    paths = [r.path for r in all_rows()]
    assert len(paths) == len(set(paths))
    for expected in ("spec.rollout.steps[].pause.duration", "spec.rollout.trafficRouting.gatewayAPI.httpRoute",
                     "spec.autoscaling.targetCPUUtilizationPercentage", "status.conditions[].observedGeneration"):
        assert expected in paths


def test_row_shows_type_default_and_constraints() -> None:
    rows = {r.path: r for r in all_rows()}
    deadline = rows["spec.rollout.progressDeadlineSeconds"]
    assert (deadline.type, deadline.default, deadline.constraints) == ("integer", "`600`", "1 to 86400")
    assert rows["spec.model.uri"].constraints.startswith("required; ")
    assert rows["spec.runtime.resources.limits"].type == "map[string]int-or-string"
    phases = "one of `Pending`, `Progressing`, `Paused`, `Healthy`, `Degraded`, `Failed`"
    assert phases in rows["status.phase"].constraints
    assert "rule for each item: a prometheus metric needs a thresholdRange" in \
        rows["spec.rollout.analysis.metrics"].constraints


def test_table_cells_cannot_break_the_table() -> None:
    assert reference._cell("a|b <x> `<y>`") == "a\\|b &lt;x> `<y>`"


def test_a_maps_entry_limit_and_the_checks_of_its_values_are_shown() -> None:
    rows = {row.path: row for row in all_rows()}
    labels = rows["spec.template.metadata.labels"].constraints
    assert "entries at most 64" in labels and "each value: length at most 63; pattern" in labels
    # a quantity: an integer's bound and a string's pattern, both
    limits = rows["spec.runtime.resources.limits"]
    assert limits.type == "map[string]int-or-string"
    assert "each value: at least 0; length at most 64; pattern `^[+]?" in limits.constraints
