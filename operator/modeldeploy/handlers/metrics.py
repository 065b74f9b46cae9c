"""Prometheus metrics of the operator process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("modeldeploy_reconciles_total", "Reconciles by result", ["result"])
RECONCILE_SECONDS = Histogram("modeldeploy_reconcile_duration_seconds", "Time one reconcile takes",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_WRITES = Counter("modeldeploy_api_writes_total", "Write requests sent to the API server")
ROLLOUTS = Counter("modeldeploy_rollouts_total", "Finished rollouts by outcome (Promoted, RolledBack, Aborted)",
                   ["outcome"])
CANARY_WEIGHT = Gauge("modeldeploy_canary_weight", "Current canary weight of each ModelDeployment, percent",
                      ["namespace", "name"])
PHASE = Gauge("modeldeploy_phase", "1 for the current phase of each ModelDeployment",
              ["namespace", "name", "phase"])
