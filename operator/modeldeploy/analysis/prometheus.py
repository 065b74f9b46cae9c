"""Prometheus: an instant query whose one value is compared with thresholdRange."""

from __future__ import annotations

import json
import math
import string
import urllib.parse

from modeldeploy.analysis import http
from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict
from modeldeploy.desired.judge import judge

# A Prometheus query gets this long (webhooks have their own timeoutSeconds).
TIMEOUT_SECONDS = 10


def query_value(payload: dict[str, object]) -> float | str:
    """The number an instant query answered (a scalar, or a vector of exactly one sample), or why there is none."""
    if payload.get("status") == "error":
        return f"prometheus refused the query: {payload.get('error', 'no reason given')}"
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        return "prometheus answered no query result"
    result = data["result"]
    if data.get("resultType") == "scalar":
        value = float(result[1])
    elif data.get("resultType") == "vector" and len(result) == 1:
        value = float(result[0]["value"][1])
    elif data.get("resultType") == "vector" and not result:
        return "the query returned no data"
    elif data.get("resultType") == "vector":
        return f"the query returned {len(result)} series; it must return one (aggregate it, e.g. with sum())"
    else:
        return f"the query returned a {data.get('resultType')}; it must return a scalar or one series"
    return "the query returned NaN (no samples in the window, or 0/0)" if math.isnan(value) else value


class PrometheusProvider:
    def measure(self, metric: Metric, context: RunContext, target: Target, timeout: float) -> Measurement:
        assert metric.prometheus is not None
        address = target.url
        query = string.Template(metric.prometheus.query).safe_substitute(context.variables())
        url = f"{address.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            answer = http.request(target, timeout, url=url)
            payload = json.loads(answer.body)
        except http.Unreachable as exc:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=f"prometheus at {address} did not answer: {exc}")
        except ValueError:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=f"prometheus at {address} answered {answer.status} without JSON")
        value = query_value(payload if isinstance(payload, dict) else {})
        if isinstance(value, str):
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=http.short(f"{value}: {query}"))
        return judge(metric.name, value, metric.threshold_range)
