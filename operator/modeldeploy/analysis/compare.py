"""Compare: the canary judged by what it answers, from the counts of the comparator beside it.

The comparator (`<md>-mirror`, see modeldeploy.comparator) sends each mirrored request to both revisions and counts
the predictions that differ; a run reads its counts since it started for this canary, and the share that differ
is the value. Too few compared yet, or counts of another revision (a comparator not yet replaced), say nothing.
"""

from __future__ import annotations

import json

from modeldeploy.analysis import http
from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Measurement, Verdict
from modeldeploy.comparator.agreement import Counts

TIMEOUT_SECONDS = 5.0


class CompareProvider:
    def measure(self, metric: Metric, context: RunContext, target: Target, timeout: float) -> Measurement:
        assert metric.compare is not None
        rule = metric.compare

        def inconclusive(message: str, value: float | None = None) -> Measurement:
            return Measurement(metric=metric.name, verdict=Verdict.INCONCLUSIVE, value=value,
                               message=http.short(message))

        try:
            answer = http.request(target, timeout)
        except http.Unreachable as exc:
            return inconclusive(f"the comparator did not answer: {exc}")
        if answer.status != 200:
            return inconclusive(f"the comparator answered {answer.status}")
        try:
            counts = Counts.from_json(json.loads(answer.body))
        except (ValueError, KeyError, TypeError) as exc:
            return inconclusive(f"the comparator's counts could not be read: {exc}")
        if counts.canary_revision != context.revision:
            return inconclusive(f"the comparator still counts for revision {counts.canary_revision}; "
                                f"revision {context.revision}'s starts")
        errors = (f"; of {counts.requests} requests, the canary failed {counts.canary_only_errors} that stable "
                  f"answered" if counts.canary_only_errors else "")
        compared, differ = counts.tally.compared, counts.tally.differ
        if compared < rule.min_predictions:
            return inconclusive(f"{compared} predictions compared so far, fewer than minPredictions "
                                f"{rule.min_predictions}{errors}")
        share = differ / compared
        verdict = Verdict.PASS if share <= rule.max_disagreement else Verdict.FAIL
        return Measurement(metric=metric.name, verdict=verdict, value=round(share, 6), message=http.short(
            f"{differ} of {compared} predictions ({share:.1%}) differ from revision {counts.stable_revision}'s; "
            f"maxDisagreement {rule.max_disagreement:.1%}{errors}"))
