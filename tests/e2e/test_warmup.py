"""End to end: analysis.warmup leaves a canary's cold start out of the verdict.

The webhook stands for a latency check of a model that is slow for its first seconds: it fails every run
about revision 2 for COLD seconds after it was first asked about it, then passes. Without a warm-up that
rolls a good model back; with one longer than the cold start, it is promoted.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from helpers import wait_for
from modeldeployments import apply, manifest, status, wait_phase

COLD = 4.0  # seconds


def cold_then_warm() -> Any:
    first: dict[str, float] = {}

    def answer(body: dict[str, Any]) -> int:
        if body.get("revision") != "2":
            return 200
        began = first.setdefault("2", time.monotonic())
        return 500 if time.monotonic() - began < COLD else 200

    return answer


def body(namespace: str, version: str, url: str, warmup: str | None) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=2)
    analysis: dict[str, Any] = {"interval": "1s", "failureLimit": 0,
                                "metrics": [{"name": "latency", "webhook": {"url": url, "timeoutSeconds": 2}}]}
    if warmup:
        analysis["warmup"] = {"duration": warmup}
    b["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"analysis": {}}], "scaleDownDelaySeconds": 2,
                            "analysis": analysis}
    return b


def decided(cluster: Any, namespace: str) -> dict[str, Any]:
    return wait_for(lambda: status(cluster, namespace), timeout=60, message="revision 2 decided",
                    until=lambda s: s.get("stableRevision") == 2 or s.get("phase") == "Degraded")


def test_without_a_warm_up_a_cold_canary_is_rolled_back(cluster, namespace, operator, webhooks):
    hook = webhooks(cold_then_warm())
    apply(cluster, body(namespace, "1", hook.url(), None))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", hook.url(), None))
    st = decided(cluster, namespace)
    assert st["phase"] == "Degraded" and st["stableRevision"] == 1, st
    assert "analysis failed 1 of 1 runs (failureLimit 0): latency=500" in st["message"], st["message"]


def test_with_a_warm_up_the_same_canary_is_promoted(cluster, namespace, operator, webhooks):
    hook = webhooks(cold_then_warm())
    apply(cluster, body(namespace, "1", hook.url(), "6s"))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    apply(cluster, body(namespace, "2", hook.url(), "6s"))
    # While it warms up, status says so
    warming = wait_for(lambda: status(cluster, namespace), timeout=30, message="the warm-up shown",
                       until=lambda s: "warming up until" in (s.get("message") or ""))
    st = decided(cluster, namespace)
    assert (st["phase"], st["stableRevision"]) == ("Healthy", 2), st
    # Then the cold runs were taken, recorded and not counted; the verdict rests on runs after the warm-up
    a = st["analysis"]
    assert a["warmupRuns"] >= 1 and a["failed"] == 0 and a["passed"] >= 1, a
    ends = a["warmupEndsAt"]
    assert ends in warming["message"], warming["message"]
    # And the endpoint was told when the warm-up ends, as a query would be ($warmupEnd)
    told = {r.json()["warmup_end"] for r in hook.for_revision(2)}
    assert told == {str(int(datetime.fromisoformat(ends.replace("Z", "+00:00")).timestamp()))}, told
