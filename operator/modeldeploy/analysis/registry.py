"""Provider names to implementations, and one analysis run within one time budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from modeldeploy.analysis import compare
from modeldeploy.analysis.base import Provider, RunContext, Target
from modeldeploy.analysis.prometheus import TIMEOUT_SECONDS, PrometheusProvider
from modeldeploy.analysis.webhook import WebhookProvider
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict

PROVIDERS: dict[str, Provider] = {
    "prometheus": PrometheusProvider(),
    "webhook": WebhookProvider(),
    "compare": compare.CompareProvider(),
}
# A whole run (every metric of it) takes at most this long, however many metrics and timeouts it has.
RUN_BUDGET_SECONDS = 60.0


def provider_for(metric: Metric) -> Provider:
    """The provider a metric names (exactly one block is set: the schema says so)."""
    for name, provider in PROVIDERS.items():
        if getattr(metric, name) is not None:
            return provider
    raise ValueError(f"metric {metric.name!r} names no known provider; known: {', '.join(sorted(PROVIDERS))}")


def timeout_of(metric: Metric) -> float:
    if metric.compare is not None:
        return compare.TIMEOUT_SECONDS
    return float(metric.webhook.timeout_seconds) if metric.webhook else float(TIMEOUT_SECONDS)


def run(metrics: list[Metric], context: RunContext, targets: Mapping[str, Target | str],
        budget: float = RUN_BUDGET_SECONDS, clock: Callable[[], float] = time.monotonic) -> tuple[Measurement, ...]:
    """One analysis run: every metric measured once, at the target resolved for it (or Inconclusive, with why
    there is none), each within its own timeout and all within `budget` seconds."""
    deadline = clock() + budget
    out: list[Measurement] = []
    for metric in metrics:
        target = targets.get(metric.name, f"no endpoint was resolved for metric {metric.name!r}")
        left = deadline - clock()
        if isinstance(target, str):
            out.append(Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE, message=target))
        elif left <= 0:
            out.append(Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                                   message=f"not measured: the run's {budget:g} s were spent on the metrics "
                                           f"before it"))
        else:
            out.append(provider_for(metric).measure(metric, context, target, min(timeout_of(metric), left)))
    return tuple(out)
