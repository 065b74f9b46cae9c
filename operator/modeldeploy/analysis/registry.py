"""Provider names to implementations; an unknown one fails loudly, never falls back."""

from __future__ import annotations

from modeldeploy.analysis.base import Provider, RunContext
from modeldeploy.analysis.prometheus import PrometheusProvider
from modeldeploy.analysis.webhook import WebhookProvider
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement

PROVIDERS: dict[str, Provider] = {
    "prometheus": PrometheusProvider(),
    "webhook": WebhookProvider(),
}


def provider_for(metric: Metric) -> Provider:
    """The provider a metric names (exactly one block is set: the schema says so)."""
    for name, provider in PROVIDERS.items():
        if getattr(metric, name) is not None:
            return provider
    raise ValueError(f"metric {metric.name!r} names no known provider; known: {', '.join(sorted(PROVIDERS))}")


def run(metrics: list[Metric], context: RunContext) -> tuple[Measurement, ...]:
    """One analysis run: every metric measured once."""
    return tuple(provider_for(m).measure(m, context) for m in metrics)
