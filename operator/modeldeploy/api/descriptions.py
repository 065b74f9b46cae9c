"""What the fields whose model carries no description mean, by field path.

Both generated views of the API use them: the CRD schema (so `kubectl explain
modeldeployments.spec...` tells it) and docs/reference.md. A field's own
`Field(description=...)` wins over these; `[]` marks the items of a list.
"""

from __future__ import annotations

NOTES: dict[str, str] = {
    "spec.model": "The model to serve. Part of the serving template: a change starts a new revision",
    "spec.runtime": "The model server. Part of the serving template: a change starts a new revision",
    "spec.runtime.image": "Your own model server image (set exactly one of image or preset)",
    "spec.runtime.args": "Container arguments; with a preset they replace the preset's arguments",
    "spec.runtime.env": "Environment variables of the model server container",
    "spec.runtime.env[].name": "Variable name",
    "spec.runtime.env[].value": "Literal value",
    "spec.runtime.env[].valueFrom": "A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...), "
                                    "passed through as written",
    "spec.runtime.resources.limits": "Resource limits, e.g. `memory: 2Gi`",
    "spec.runtime.resources.requests": "Resource requests, e.g. `cpu: 500m`",
    "spec.template": "Pod overrides for the serving pods. Part of the serving template: a change starts a new "
                     "revision",
    "spec.template.metadata.labels": "Labels added to the serving pods (the operator's own labels win)",
    "spec.template.metadata.annotations": "Annotations added to the serving pods",
    "spec.template.nodeSelector": "Node selector of the serving pods",
    "spec.template.tolerations": "Tolerations of the serving pods, as in core/v1",
    "spec.template.tolerations[].key": "Taint key the toleration matches; empty with operator Exists matches all",
    "spec.template.tolerations[].operator": "How key and value are compared",
    "spec.template.tolerations[].value": "Taint value the toleration matches",
    "spec.template.tolerations[].effect": "Taint effect to match; empty matches all effects",
    "spec.template.tolerations[].tolerationSeconds": "How long a NoExecute taint is tolerated",
    "spec.template.serviceAccountName": "ServiceAccount of the serving pods",
    "spec.autoscaling": "A HorizontalPodAutoscaler on this ModelDeployment's scale subresource; it sets spec.replicas",
    "spec.autoscaling.minReplicas": "Lower bound of the autoscaler",
    "spec.autoscaling.maxReplicas": "Upper bound of the autoscaler",
    "spec.autoscaling.targetCPUUtilizationPercentage": "Average CPU utilization the autoscaler aims for",
    "spec.rollout": "How a new revision rolls out. Changing it does not start a revision",
    "spec.rollout.steps": "Canary steps, in order; absent or empty: the new revision starts beside the stable one "
                          "at full size and takes over when all its pods are Ready (see rollouts.md)",
    "spec.rollout.steps[].setWeight": "Send this percentage of traffic to the canary, and wait until the canary "
                                      "pods are Ready and the router carries the weight",
    "spec.rollout.steps[].pause": "Wait: for `duration`, or without one until `kubectl modeldeploy promote`",
    "spec.rollout.steps[].setHeaderRoute": "Send requests with these headers to the canary whatever its weight, "
                                            "from this step until the rollout ends (mesh routers only)",
    "spec.rollout.steps[].setHeaderRoute.match": "Headers a request must all carry, each with this exact value",
    "spec.rollout.steps[].mirror": "Copy live requests to the canary, whose answers clients never see, from this "
                                   "step until the rollout ends or a later mirror step changes the share (mesh "
                                   "routers only)",
    "spec.rollout.steps[].analysis": "Wait for an analysis run that passes, taken after this step began; "
                                     "passes at once when analysis has no metrics",
    "spec.rollout.trafficRouting": "How traffic is split between stable and canary; absent means replicas",
    "spec.rollout.trafficRouting.replicas": "No mesh: the weight is the share of Ready pods behind the `<md>` "
                                            "Service",
    "spec.rollout.trafficRouting.gatewayAPI": "Weights on the backendRefs of a Gateway API HTTPRoute",
    "spec.rollout.trafficRouting.gatewayAPI.httpRoute": "The HTTPRoute; it must have a backendRef to Service "
                                                        "`<md>-stable`",
    "spec.rollout.trafficRouting.gatewayAPI.namespace": "Namespace of the HTTPRoute; default the "
                                                        "ModelDeployment's",
    "spec.rollout.trafficRouting.istio": "Weights on the routes of an Istio VirtualService",
    "spec.rollout.trafficRouting.istio.virtualService": "The VirtualService, in the ModelDeployment's namespace; "
                                                        "it needs an http route to host `<md>-stable`",
    "spec.rollout.trafficRouting.istio.routes": "Names of the http routes to manage; default every http route "
                                                "with a destination host `<md>-stable`",
    "spec.rollout.analysis": "Metrics that judge a canary (rollouts with steps); runs while the canary has "
                             "traffic",
    "spec.rollout.analysis.interval": "Time between analysis runs, from the start of the rollout",
    "spec.rollout.analysis.warmup": "A cold start to leave out of the verdict: runs taken during it are recorded "
                                    "(status.analysis.warmupRuns) but count neither as passed nor as failed",
    "spec.rollout.analysis.failureLimit": "Failed runs tolerated; one more fails the canary",
    "spec.rollout.analysis.inconclusiveLimit": "Inconclusive runs in a row tolerated (no data, an unreachable "
                                               "provider); one more pauses the rollout (reason "
                                               "AnalysisInconclusive) until `resume`, `promote` or `abort`",
    "spec.rollout.analysis.metrics": "The metrics measured in each run",
    "spec.rollout.analysis.metrics[].name": "Metric name, shown in status and events",
    "spec.rollout.analysis.metrics[].prometheus": "An instant query; its single value is judged by thresholdRange",
    "spec.rollout.analysis.metrics[].prometheus.provider": "The AnalysisProvider (a Prometheus the platform "
                                                           "registered) to query; `kubectl get analysisproviders`",
    "spec.rollout.analysis.metrics[].prometheus.address": "Inline base URL of the Prometheus HTTP API; used only "
                                                          "when the operator runs with --allow-inline-analysis-urls",
    "spec.rollout.analysis.metrics[].prometheus.query": "PromQL; `$name`, `$namespace`, `$revision`, "
                                                        "`$stable_revision`, `$canary_weight` and `$model_version` "
                                                        "are substituted",
    "spec.rollout.analysis.warmup.requestCount.provider": "The AnalysisProvider (a Prometheus) to query",
    "spec.rollout.analysis.warmup.requestCount.address": "Inline base URL of the Prometheus HTTP API; used only "
                                                         "when the operator runs with --allow-inline-analysis-urls",
    "spec.rollout.analysis.warmup.requestCount.query": "PromQL giving one number, the requests served so far",
    "spec.rollout.analysis.metrics[].webhook": "A POST with the rollout's context; a 2xx answer passes",
    "spec.rollout.analysis.metrics[].webhook.provider": "The AnalysisProvider (a webhook service the platform "
                                                        "registered) to POST to",
    "spec.rollout.analysis.metrics[].webhook.path": "Path appended to the provider's baseURL, starting with /",
    "spec.rollout.analysis.metrics[].webhook.url": "Inline URL to POST to; used only when the operator runs with "
                                                   "--allow-inline-analysis-urls",
    "spec.rollout.analysis.metrics[].webhook.timeoutSeconds": "Seconds to wait for the answer; no answer is "
                                                              "Inconclusive",
    "spec.rollout.analysis.metrics[].thresholdRange": "The passing range of a prometheus value, bounds inclusive; "
                                                      "required with prometheus, not used by webhook",
    "spec.rollout.analysis.metrics[].thresholdRange.min": "Lowest passing value",
    "spec.rollout.analysis.metrics[].thresholdRange.max": "Highest passing value",
    "spec.rollout.progressDeadlineSeconds": "How long a new revision (or one canary step) may take before it "
                                            "counts as failed",
    "spec.rollout.autoRollback": "Roll a failed revision back automatically; false leaves it up, phase Degraded",
    "spec.rollout.scaleDownDelaySeconds": "How long the previous stable revision keeps its pods after a promotion",
    "spec.rollout.maxSurge": "Pods a rollout may hold beyond the serving size at once, over all revisions, and "
                             "so the GPUs or other extended resources they request. 0 replaces pods in place: "
                             "one serving pod goes before each new one comes, so one pod fewer serves meanwhile. "
                             "Unset: no bound; a new revision starts at full size beside the serving one",
    "spec.rollout.bake": "A bake period: once every step has passed and the canary serves 100% with all its pods "
                         "Ready, it goes on being judged (analysis runs, crash loops, `abort`) for a duration "
                         "while the previous revision keeps its pods, serving nothing; a failure rolls back to "
                         "those warm pods at once, and the end of the bake promotes. `promote` ends it early",
    "spec.revisionHistoryLimit": "ControllerRevisions kept for `history` and `rollback --to-revision`",
    "spec.paused": "Hold rollouts: a new revision does not start, one in flight stays where it is",
    "status.observedGeneration": "The metadata.generation this status was computed from",
    "status.phase": "Summary state (see troubleshooting.md)",
    "status.stableRevision": "The revision serving clients",
    "status.canaryRevision": "The revision rolling out; absent when none is",
    "status.canaryWeight": "Traffic percentage the canary serves: its share of the Ready endpoints behind `<md>` "
                           "(replicas router), or the weight the route carries (mesh routers)",
    "status.stepWeight": "Traffic percentage the current canary step asks for",
    "status.currentStepIndex": "Index of the current canary step, from 0; the number of steps when all have passed",
    "status.replicas": "Pods wanted by the kept revision Deployments",
    "status.readyReplicas": "Ready pods of the kept revision Deployments",
    "status.url": "In-cluster URL of the `<md>` Service",
    "status.selector": "Label selector of every serving pod (the scale subresource's, read by autoscalers)",
    "status.modelVersion": "spec.model.version of the stable revision",
    "status.rolloutStartedAt": "When the current rollout started (RFC 3339)",
    "status.stepStartedAt": "When the current canary step started (RFC 3339)",
    "status.bakeStartedAt": "When the bake period began (RFC 3339): the canary reached 100% with all its pods Ready",
    "status.analysis": "Analysis of the revision rolling out (runs while it has canary traffic)",
    "status.analysis.revision": "The revision these runs judge",
    "status.analysis.runs": "Analysis runs taken",
    "status.analysis.inconclusiveStreak": "Inconclusive runs in a row, since the last decisive run, resume or "
                                          "promote",
    "status.analysis.waived": "A person promoted the revision before any run passed",
    "status.analysis.passed": "Runs in which every metric passed",
    "status.analysis.failed": "Runs in which a metric failed",
    "status.analysis.inconclusive": "Runs with no failure but a metric that could not tell",
    "status.analysis.warmupStartedAt": "When the canary's warm-up began: when it first got requests (RFC 3339)",
    "status.analysis.warmupEndsAt": "When the canary's warm-up ends (RFC 3339): runs before it count for nothing. "
                                    "With warmup.requests, set once a run has counted them",
    "status.analysis.warmupRequests": "The requests the canary had served at the last run, by warmup.requestCount",
    "status.analysis.warmupRuns": "Runs taken during the warm-up: recorded, counted neither as passed nor as failed",
    "status.analysis.lastRunAt": "When the last run was taken (RFC 3339)",
    "status.analysis.lastVerdict": "Verdict of the last run",
    "status.analysis.measurements": "The last run's measurement of each metric",
    "status.analysis.measurements[].metric": "Metric name",
    "status.analysis.measurements[].verdict": "This metric's verdict",
    "status.analysis.measurements[].value": "The measured value (a webhook's: its HTTP status); absent when none",
    "status.analysis.measurements[].message": "What was measured, or why there is no value",
    "status.rollback": "Set by `kubectl modeldeploy rollback`: the revision served instead of the spec's",
    "status.rollback.revision": "The revision served",
    "status.rollback.specHash": "Hash of the spec's serving template when the rollback was asked for; the "
                                "rollback ends when the template changes",
    "status.route": "The user's HTTPRoute or VirtualService whose weights the operator manages; its canary "
                    "backend is taken off when the spec names another, or the ModelDeployment is deleted",
    "status.route.router": "gatewayAPI or istio",
    "status.route.config": "The trafficRouting block that names the route",
    "status.handledRequests": "Tokens of the `kubectl modeldeploy` requests (annotations) already carried out",
    "status.conditions": "Ready, Progressing, Degraded, Reconciling, Stalled (kstatus reads the last two, then Ready)",
    "status.conditions[].type": "Condition type",
    "status.conditions[].status": "Whether the condition holds",
    "status.conditions[].reason": "Why, as one CamelCase word (see troubleshooting.md)",
    "status.conditions[].message": "Why, for people",
    "status.conditions[].observedGeneration": "The metadata.generation the condition was computed from",
    "status.conditions[].lastTransitionTime": "When status last changed (RFC 3339)",
    "status.message": "One line for people: what serves, what rolls out, what is wrong",
}
