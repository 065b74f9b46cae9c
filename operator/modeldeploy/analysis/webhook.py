"""Webhook: a POST carrying the rollout's context; a 2xx answer is a pass, another status a fail."""

from __future__ import annotations

import json

from modeldeploy.analysis import http
from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict


class WebhookProvider:
    def measure(self, metric: Metric, context: RunContext, target: Target, timeout: float) -> Measurement:
        url = target.url
        body = json.dumps({"metric": metric.name, **context.fields()}).encode()
        try:
            answer = http.request(target, timeout, body)
        except http.Unreachable as exc:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE, message=f"{url} did not answer: {exc}")
        if 300 <= answer.status < 400:
            # Not a verdict: the endpoint is elsewhere, and the operator does not follow it there.
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE, value=float(answer.status),
                               message=http.short(f"{url} answered {answer.status} (a redirect to "
                                                  f"{answer.location or 'nowhere'}); redirects are not followed: "
                                                  f"use the final URL"))
        verdict = Verdict.PASS if 200 <= answer.status < 300 else Verdict.FAIL
        return Measurement(metric=metric.name, verdict=verdict, value=float(answer.status),
                           message=f"{url} answered {answer.status}")
