"""Prometheus: an instant query whose value is compared with thresholdRange."""

from __future__ import annotations

import json
import string
import urllib.error
import urllib.parse
import urllib.request

from modeldeploy.analysis.base import RunContext
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict
from modeldeploy.desired.judge import judge

TIMEOUT_SECONDS = 10


def query_value(payload: dict[str, object]) -> float | None:
    """The number an instant query answered: a scalar, or a vector with exactly one sample."""
    data = payload.get("data")
    if not isinstance(data, dict):
        return None
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return float(result[1])
    if data.get("resultType") == "vector" and isinstance(result, list) and len(result) == 1:
        return float(result[0]["value"][1])
    return None


class PrometheusProvider:
    def measure(self, metric: Metric, context: RunContext) -> Measurement:
        assert metric.prometheus is not None
        query = string.Template(metric.prometheus.query).safe_substitute(context.variables())
        url = f"{metric.prometheus.address.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
                payload = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=f"prometheus at {metric.prometheus.address} did not answer: {exc}")
        value = query_value(payload)
        if value is None:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=f"the query returned no single value: {query}")
        return judge(metric.name, value, metric.threshold_range)
