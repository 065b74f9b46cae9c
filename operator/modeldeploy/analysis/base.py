"""What every analysis provider does, and the context a run carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement


@dataclass(frozen=True)
class RunContext:
    """The rollout a run judges; a webhook receives it, a query can use it as $name, $revision, ..."""

    name: str
    namespace: str
    revision: int
    stable_revision: int
    canary_weight: int
    model_version: str

    def variables(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


class Provider(Protocol):
    def measure(self, metric: Metric, context: RunContext) -> Measurement:
        """Measure one metric; an unreachable backend is Inconclusive, never an exception."""
        ...
