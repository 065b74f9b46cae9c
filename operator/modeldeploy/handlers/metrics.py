"""Prometheus metrics of the operator process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modeldeploy.api.status import Phase
from modeldeploy.k8s.client import Kube

RECONCILES = Counter("modeldeploy_reconciles_total", "Reconciles by result", ["result"])
RESYNC_NEWS = Counter("modeldeploy_resync_news_total", "ModelDeployments a periodic resync found changed where no "
                      "watch event had told of it (a lost event)")
RECONCILE_SECONDS = Histogram("modeldeploy_reconcile_duration_seconds", "Time one reconcile takes",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OUTCOMES = ("Promoted", "RolledBack", "Aborted")
ROLLOUTS = Counter("modeldeploy_rollouts_total", "Finished rollouts of each ModelDeployment by outcome "
                   "(Promoted, RolledBack, Aborted)", ["namespace", "name", "outcome"])
CANARY_WEIGHT = Gauge("modeldeploy_canary_weight", "Current canary weight of each ModelDeployment, percent",
                      ["namespace", "name"])
PHASE = Gauge("modeldeploy_phase", "1 for the current phase of each ModelDeployment",
              ["namespace", "name", "phase"])


class ApiRequests(Collector):
    """Requests the operator's client has sent, read from its own counters at scrape time: exact, however many
    reconciles run at once, and including those made outside a reconcile (peering, start-up)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily("modeldeploy_api_writes", "Write requests sent to the API server",
                                  value=self.kube.writes)
        yield CounterMetricFamily("modeldeploy_api_reads", "Read requests (GET) sent to the API server",
                                  value=self.kube.reads)
        if self.kube.throttle is not None:
            yield CounterMetricFamily("modeldeploy_api_throttled_seconds",
                                      "Time requests waited for the client's rate limit (--kube-qps)",
                                      value=self.kube.throttle.waited)
        if self.kube.cache is not None:
            yield GaugeMetricFamily("modeldeploy_cache_objects", "Objects the watch-fed cache holds",
                                    value=len(self.kube.cache))
            events = CounterMetricFamily("modeldeploy_watch_events", "Watch events received, by kind", labels=["kind"])
            for kind, count in sorted(self.kube.cache.events.items()):
                events.add_metric([kind], count)
            yield events
            yield CounterMetricFamily("modeldeploy_cache_relists",
                                      "Watch listings after the first of each kind (each one makes its kind "
                                      "listed again on demand)", value=self.kube.cache.relists)


def count_requests(kube: Kube) -> None:
    """Export the client's request counters (once per process)."""
    REGISTRY.register(ApiRequests(kube))


def forget(namespace: str, name: str) -> None:
    """Drop a deleted ModelDeployment's series, so no dashboard or alert sees it serving after it is gone."""
    series = ([(CANARY_WEIGHT, (namespace, name))] + [(PHASE, (namespace, name, p.value)) for p in Phase]
              + [(ROLLOUTS, (namespace, name, o)) for o in OUTCOMES])
    for metric, labels in series:
        with contextlib.suppress(KeyError):  # never exported
            metric.remove(*labels)


def count_rollouts(namespace: str, name: str, events: list[str]) -> None:
    """Count the rollouts a reconcile finished. Every outcome's series exists from the first reconcile on, at 0:
    Prometheus's increase() sees no rise in a series whose first sample is already 1, so an alert on the first
    rollback of a model would never fire."""
    for outcome in OUTCOMES:
        ROLLOUTS.labels(namespace, name, outcome).inc(events.count(outcome))
