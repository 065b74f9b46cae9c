"""End to end: canaries judged by a webhook the test serves on loopback.

The webhook contract (operator/modeldeploy/analysis/webhook.py): for each metric of a run the operator POSTs
a JSON body `{"metric": <name>, "name", "namespace", "revision", "stable_revision", "canary_weight",
"model_version", "warmup_end"}` (the context's values as strings) to the metric's URL. The answer's HTTP status is the
measurement's value and decides it: 2xx passes, 3xx is Inconclusive (a redirect is never followed), any other
status fails; no answer within timeoutSeconds is Inconclusive.

Each test runs its own endpoint (`webhooks.Webhook`, through the `webhooks` fixture), chooses its answer, and
checks what the endpoint was sent as well as what the operator made of it.
"""

from __future__ import annotations

from typing import Any

from helpers import holds_for, wait_for
from modeldeployments import MD, apply, deployments, events, get, manifest, status, wait_phase

METRIC = "canary-check"


def webhook_analysis(url: str, **limits: int) -> dict[str, Any]:
    # A 1 s interval keeps the runs frequent; timeoutSeconds bounds a reconcile if the endpoint hangs.
    return {"interval": "1s", **limits, "metrics": [{"name": METRIC, "webhook": {"url": url, "timeoutSeconds": 2}}]}


def body(namespace: str, version: str, steps: list[dict[str, Any]], analysis: dict[str, Any]) -> dict[str, Any]:
    b = manifest(namespace, version=version, replicas=4)
    b["spec"]["rollout"] = {"steps": steps, "scaleDownDelaySeconds": 2, "analysis": analysis}
    return b


def history(cluster: Any, namespace: str) -> dict[int, dict[str, str]]:
    """Revision number -> its ControllerRevision's annotations (outcome, outcome-reason, model-version)."""
    return {int(cr["revision"]): cr["metadata"].get("annotations") or {}
            for cr in get(cluster, namespace, "controllerrevisions")["items"]}


def serve_revision_1(cluster: Any, namespace: str, steps: list[dict[str, Any]], analysis: dict[str, Any]) -> None:
    apply(cluster, body(namespace, "1", steps, analysis))
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)


def settled(cluster: Any, namespace: str) -> dict[str, Any]:
    """Status once the rollout of revision 2 has been decided: promoted, rolled back, or held for a person."""
    return wait_for(lambda: status(cluster, namespace), timeout=60, message="revision 2 decided",
                    until=lambda s: s.get("stableRevision") == 2 or s.get("phase") in ("Degraded", "Paused"))


def test_a_passing_webhook_promotes_the_canary(cluster, namespace, operator, webhooks):
    # Given a webhook that answers 204 (a 2xx other than 200, so the recorded value can only be its answer)
    hook = webhooks(204)
    url = hook.url("/analysis/canary-check?team=risk")
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50},
                                   {"pause": {"duration": "2s"}}]
    analysis = webhook_analysis(url, failureLimit=0)
    serve_revision_1(cluster, namespace, steps, analysis)
    # A first revision has no canary: nothing is judged
    assert hook.requests == [], hook.requests
    # When revision 2 rolls out
    apply(cluster, body(namespace, "2", steps, analysis))
    st = settled(cluster, namespace)
    assert (st.get("phase"), st.get("stableRevision")) == ("Healthy", 2), st
    # Then the endpoint was asked about the canary, with the rollout's context, at the URL as written
    asked = hook.for_revision(2)
    assert asked, f"the webhook was never asked about revision 2; it got {hook.requests}"
    assert all(r.method == "POST" for r in hook.requests), hook.requests
    assert {r.path for r in asked} == {"/analysis/canary-check?team=risk"}
    assert {r.content_type for r in asked} == {"application/json"}
    first = asked[0].json()
    weight = first.pop("canary_weight")
    assert first == {"metric": METRIC, "name": MD, "namespace": namespace, "revision": "2", "stable_revision": "1",
                     "model_version": "2", "warmup_end": "0"}, first
    # (canary_weight is the share it served then: Ready pods, so 20% while 1 of 5 is the canary, then 25%)
    assert 0 < int(weight) <= 25, weight
    # (runs go on at the interval while the canary has traffic, and only then)
    assert all(0 < int(r.json()["canary_weight"]) <= 100 for r in asked), [r.json() for r in asked]
    # And status keeps the evidence: passing runs of revision 2 whose value is the endpoint's answer
    a = st["analysis"]
    assert a["revision"] == 2 and a["passed"] >= 1 and a["failed"] == 0 and a["inconclusive"] == 0, a
    assert a["runs"] == a["passed"] <= len(asked), (a, len(asked))
    assert a["lastVerdict"] == "Pass"
    assert a["measurements"] == [{"metric": METRIC, "verdict": "Pass", "value": 204.0,
                                  "message": f"{url} answered 204"}], a["measurements"]
    # And the history records the promotion, and an Event says so
    revisions = history(cluster, namespace)
    assert {n: ann["modeldeploy.dev/outcome"] for n, ann in revisions.items()} == {1: "Superseded", 2: "Stable"}
    promoted = events(cluster, namespace, "Promoted")
    assert any(m.startswith("revision 2 (model 2) is stable") for m in promoted), promoted


def test_a_failing_webhook_rolls_the_canary_back(cluster, namespace, operator, webhooks):
    # Given a webhook that answers 503, and a failureLimit of 1 (the second failed run rolls back)
    hook = webhooks(503)
    url = hook.url()
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 75}]
    analysis = webhook_analysis(url, failureLimit=1)
    serve_revision_1(cluster, namespace, steps, analysis)
    # When revision 2 rolls out
    apply(cluster, body(namespace, "2", steps, analysis))
    st = settled(cluster, namespace)
    # Then it is rolled back: revision 1 serves, no canary, and it never went past the analysis step
    assert (st.get("phase"), st.get("stableRevision"), st.get("canaryRevision")) == ("Degraded", 1, None), st
    asked = hook.for_revision(2)
    assert len(asked) >= 2, f"two failed runs need two answers; the webhook got {hook.requests}"
    assert all(0 < int(r.json()["canary_weight"]) <= 25 for r in asked), [r.json() for r in asked]
    # And status counts the failed runs, with the endpoint's answer as the value
    a = st["analysis"]
    assert a["revision"] == 2 and a["failed"] == 2 and a["passed"] == 0 and a["lastVerdict"] == "Fail", a
    assert a["measurements"] == [{"metric": METRIC, "verdict": "Fail", "value": 503.0,
                                  "message": f"{url} answered 503"}], a["measurements"]
    # And the failing value is quoted in the message, the Warning Event and the revision's recorded outcome
    said = f"{METRIC}=503 ({url} answered 503)"
    assert "analysis failed 2 of 2 runs (failureLimit 1)" in st["message"] and said in st["message"], st["message"]
    rolled_back = events(cluster, namespace, "RolledBack")
    assert any(said in m for m in rolled_back), rolled_back
    revisions = history(cluster, namespace)
    assert revisions[2]["modeldeploy.dev/outcome"] == "Failed", revisions
    assert said in revisions[2].get("modeldeploy.dev/outcome-reason", ""), revisions
    assert revisions[1]["modeldeploy.dev/outcome"] == "Stable", revisions
    wait_for(lambda: deployments(cluster, namespace)[f"{MD}-r2"]["spec"]["replicas"], timeout=15,
             until=lambda n: n == 0, message="the failed canary gives up its pods")
    # And a rolled-back canary is not judged again: no request for 3 analysis intervals (1 s each)
    after = len(hook.requests)
    holds_for(lambda: len(hook.requests), duration=3, until=lambda n: n == after,
              message="no more webhook calls after the rollback")


def test_a_redirecting_webhook_is_not_followed_and_the_run_is_inconclusive(cluster, namespace, operator, webhooks):
    # Given a webhook that answers 302 towards another endpoint on loopback, which would answer 200.
    # (A POST answered 302 is what urllib's default handler does follow, as a GET: the case to refuse.)
    target = webhooks(200)
    hook = webhooks(302, location=target.url("/elsewhere"))
    url = hook.url()
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 75}]
    analysis = webhook_analysis(url, failureLimit=0, inconclusiveLimit=1)
    serve_revision_1(cluster, namespace, steps, analysis)
    # When revision 2 is judged by it, twice (inconclusiveLimit 1: the second inconclusive run holds it)
    apply(cluster, body(namespace, "2", steps, analysis))
    wait_for(lambda: (len(hook.for_revision(2)), status(cluster, namespace).get("stableRevision")), timeout=60,
             until=lambda seen: seen[0] >= 2 or seen[1] == 2,
             message="the webhook was asked twice about revision 2 (or revision 2 was promoted)")
    # Then the redirect was never followed: the endpoint it points to was sent nothing
    assert target.requests == [], target.requests
    # And the runs are Inconclusive, not failed: the rollout waits for a person, saying why
    st = wait_phase(cluster, namespace, "Paused", timeout=20, canaryRevision=2, canaryWeight=25)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "AnalysisInconclusive", st
    a = st["analysis"]
    assert a["revision"] == 2 and a["inconclusive"] >= 2 and a["passed"] == 0 and a["failed"] == 0, a
    assert a["lastVerdict"] == "Inconclusive", a
    (m,) = a["measurements"]
    assert (m["metric"], m["verdict"], m["value"]) == (METRIC, "Inconclusive", 302.0), m
    redirect = f"{url} answered 302 (a redirect to {target.url('/elsewhere')}); redirects are not followed"
    assert m["message"].startswith(redirect), m["message"]
    assert redirect in st["message"], st["message"]
    # And nothing was decided: revision 1 serves, revision 2 keeps its 25% and is not recorded Failed
    assert st["stableRevision"] == 1, st
    revisions = history(cluster, namespace)
    assert revisions[2]["modeldeploy.dev/outcome"] == "Progressing", revisions
    assert not events(cluster, namespace, "RolledBack")
    assert target.requests == [], target.requests
