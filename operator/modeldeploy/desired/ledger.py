"""The revision history as one planning pass leaves it: an immutable value, changed by making a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from modeldeploy.desired.facts import DeploymentFacts, RevisionRecord
from modeldeploy.desired.history import Outcome


@dataclass(frozen=True)
class Ledger:
    """Revision records by number, and the numbers whose record this pass changed (to be written back)."""

    records: Mapping[int, RevisionRecord]
    changed: frozenset[int] = frozenset()

    @classmethod
    def adopt(cls, revisions: tuple[RevisionRecord, ...], deployments: Mapping[int, DeploymentFacts],
              stable: int | None, canary: int | None) -> Ledger:
        """The recorded history, plus a record for each Deployment that has none but says what it runs (the
        history was deleted by a cleanup or a restore): adopted as is, never restarted."""
        ledger = cls({r.number: r for r in revisions})
        for number, f in sorted(deployments.items()):
            if number not in ledger.records and f.carried is not None:
                outcome = (Outcome.STABLE if number == stable else
                           Outcome.PROGRESSING if number == canary else Outcome.SUPERSEDED)
                ledger = ledger.with_record(replace(f.carried, outcome=outcome.value))
        return ledger

    def __getitem__(self, number: int) -> RevisionRecord:
        return self.records[number]

    def __contains__(self, number: object) -> bool:
        return number in self.records

    def with_record(self, record: RevisionRecord) -> Ledger:
        return Ledger({**self.records, record.number: record}, self.changed | {record.number})

    def with_outcome(self, number: int, outcome: Outcome, reason: str = "", released: bool = False) -> Ledger:
        rec = self.records[number]
        if rec.outcome == outcome.value and rec.reason == reason and rec.released == released:
            return self
        return self.with_record(replace(rec, outcome=outcome.value, reason=reason, released=released))

    def find(self, digest: str) -> RevisionRecord | None:
        """The lowest-numbered revision with this serving template."""
        return next((r for _, r in sorted(self.records.items()) if r.hash == digest), None)

    def stable(self, recorded: int | None) -> int | None:
        """The serving revision: as status recorded it, or from the history when status was lost."""
        if recorded in self.records:
            return recorded
        stable = [n for n, r in self.records.items() if r.outcome == Outcome.STABLE.value]
        return max(stable) if stable else None
