"""Webhook: a POST carrying the rollout's context; any 2xx answer is a pass."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from modeldeploy.analysis.base import RunContext
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict


class WebhookProvider:
    def measure(self, metric: Metric, context: RunContext) -> Measurement:
        assert metric.webhook is not None
        body = json.dumps({"metric": metric.name, **context.variables()}).encode()
        request = urllib.request.Request(metric.webhook.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=metric.webhook.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return Measurement(metric=metric.name, verdict=Verdict.FAIL, value=float(exc.code),
                               message=f"{metric.webhook.url} answered {exc.code}")
        except (urllib.error.URLError, OSError) as exc:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE,
                               message=f"{metric.webhook.url} did not answer: {exc}")
        verdict = Verdict.PASS if 200 <= status < 300 else Verdict.FAIL
        return Measurement(metric=metric.name, verdict=verdict, value=float(status),
                           message=f"{metric.webhook.url} answered {status}")
