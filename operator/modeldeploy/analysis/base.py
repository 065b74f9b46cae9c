"""What every analysis provider does, the context a run carries, and where a metric is measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    # When the canary's warm-up ends (rollout.analysis.warmup), in Unix seconds; 0 without one. A query can start
    # its window there: `...[$warmupEnd]` is not PromQL, but `time() - $warmupEnd` is the warm model's age.
    warmup_end: int = 0

    def fields(self) -> dict[str, str]:
        """The context as a webhook receives it."""
        return {k: str(v) for k, v in asdict(self).items()}

    def variables(self) -> dict[str, str]:
        """What a query or a header value can name: the fields, and $warmupEnd as the docs spell it."""
        out = self.fields()
        out["warmupEnd"] = out["warmup_end"]
        return out


@dataclass(frozen=True)
class Target:
    """Where one metric is measured, as an AnalysisProvider (or, where the platform allows it, the spec itself)
    says: the URL (a Prometheus address, or a webhook's full URL), extra headers, a bearer token, a CA bundle."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None


class Provider(Protocol):
    def measure(self, metric: Metric, context: RunContext, target: Target, timeout: float) -> Measurement:
        """Measure one metric within `timeout` seconds; an unreachable backend is Inconclusive, never an
        exception."""
        ...
