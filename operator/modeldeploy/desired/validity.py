"""Specs the operator cannot honour: where, what, and how to fix it, touching nothing that serves."""

from __future__ import annotations

import re

from pydantic import ValidationError

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec, PrometheusMetric
from modeldeploy.api.status import Condition, ConditionType, ModelDeploymentStatus, Phase
from modeldeploy.desired import workload
from modeldeploy.desired.actions import Event, Plan
from modeldeploy.desired.clock import timestamp
from modeldeploy.desired.conditions import RETRYING, conditions
from modeldeploy.desired.facts import Observed
from modeldeploy.desired.runtime import UnknownPreset, resolve
from modeldeploy.desired.settings import Settings

# Reasons that a change of another object (not the ModelDeployment) clears.
WAITS_FOR_OTHERS = ("CredentialsSecretNotFound", "ModelClaimNotFound", "TrafficRouterError", "AnalysisProviderNotFound")
RECHECK_SECONDS = 15.0


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: where (spec.a.b) and what."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in ("spec", *e["loc"]))
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def unhonourable(spec: ModelDeploymentSpec, obs: Observed, settings: Settings) -> tuple[str, str] | None:
    """(reason, message) when the spec passes the schema but cannot be served as written."""
    if len(obs.name) > names.MAX_NAME_LENGTH or not re.match(names.NAME_PATTERN, obs.name):
        return "InvalidName", names.NAME_MESSAGE  # made before the schema said so
    try:
        resolve(spec.runtime)
    except UnknownPreset as exc:
        return "UnknownRuntimePreset", str(exc)
    secret = spec.model.credentials_secret
    if secret and secret in obs.missing_secrets:
        return ("CredentialsSecretNotFound",
                f"spec.model.credentialsSecret: Secret {secret!r} does not exist in namespace "
                f"{obs.namespace!r}; create it (kubectl create secret generic {secret} ...) or fix the name")
    routing = spec.rollout.traffic_routing
    if routing and routing.gateway_api and routing.gateway_api.namespace not in (None, obs.namespace):
        # Another namespace's route belongs to another team: the operator must not be a way into it.
        return ("CrossNamespaceRoute",
                f"spec.rollout.trafficRouting.gatewayAPI.namespace: {routing.gateway_api.namespace!r} is not this "
                f"ModelDeployment's namespace {obs.namespace!r}; only a route in the same namespace can be "
                f"managed: move the HTTPRoute here or drop the field")
    refused = analysis_refused(spec, obs, settings)
    if refused is not None:
        return refused
    if spec.model.uri.startswith("pvc://"):
        claim, _ = workload.split_pvc_uri(spec.model.uri)
        if claim in obs.missing_claims:
            return ("ModelClaimNotFound",
                    f"spec.model.uri: PersistentVolumeClaim {claim!r} does not exist in namespace "
                    f"{obs.namespace!r}; create it or fix the uri")
    return None


def analysis_refused(spec: ModelDeploymentSpec, obs: Observed, settings: Settings) -> tuple[str, str] | None:
    """A metric whose endpoint the operator will not reach: an inline URL where the platform did not allow
    them, or an AnalysisProvider that does not exist or is of the other kind."""
    block = spec.rollout.analysis
    # Each endpoint the analysis reaches: the metrics' (a compare metric's is the operator's own comparator) and
    # a warm-up's request count.
    # (where, kind, name, what it is, endpoint)
    reached = [(f"spec.rollout.analysis.metrics[{i}].{kind}", kind, metric.name, f"metric {metric.name!r}", endpoint)
               for i, metric in enumerate(block.metrics or [] if block else [])
               for kind, endpoint in (("prometheus", metric.prometheus), ("webhook", metric.webhook))
               if endpoint is not None]
    if block is not None and block.warmup is not None and block.warmup.request_count is not None:
        reached.append(("spec.rollout.analysis.warmup.requestCount", "prometheus", "warm-up request count",
                        "the warm-up's request count", block.warmup.request_count))
    for where, kind, name, what, endpoint in reached:
        provider = endpoint.provider
        inline = endpoint.address if isinstance(endpoint, PrometheusMetric) else endpoint.url
        if inline is not None and not settings.allow_inline_analysis_urls:
            field = "address" if kind == "prometheus" else "url"
            return ("InlineAnalysisURL",
                    f"{where}.{field}: this operator does not reach analysis URLs written in a ModelDeployment "
                    f"({name}: {inline}); name an AnalysisProvider instead ({kind}.provider; "
                    f"`kubectl get analysisproviders` lists them), or ask the platform team to run the operator "
                    f"with --allow-inline-analysis-urls")
        if provider is not None and obs.analysis_providers.get(provider) != kind:
            found = obs.analysis_providers.get(provider)
            why = (f"is a {found} provider, and {what} is a {kind} metric" if found else
                   "does not exist")
            return ("AnalysisProviderNotFound",
                    f"{where}.provider: AnalysisProvider {provider!r} {why}; `kubectl get analysisproviders` lists "
                    f"the ones the platform team created")
    return None


def ready_reason(status: ModelDeploymentStatus) -> str | None:
    for c in status.conditions:
        if c.type == "Ready":
            return c.reason
    return None


def failed(status: ModelDeploymentStatus, obs: Observed, reason: str, message: str) -> Plan:
    """A spec that cannot be honoured: say so, touch no serving object."""
    serving = status.stable_revision
    if serving is not None:
        message = f"{message}. Revision {serving} (model {status.model_version}) keeps serving"
    plan = Plan()
    plan.status = status.model_copy(update={
        "observed_generation": obs.generation,
        "phase": Phase.FAILED,
        "message": message,
        "conditions": conditions(Phase.FAILED, reason, message, obs.generation, status.conditions,
                                 timestamp(obs.now)),
    })
    if status.phase != Phase.FAILED or ready_reason(status) != reason or status.message != message:
        plan.events.append(Event("Warning", reason, message))
    if reason in WAITS_FOR_OTHERS:
        plan.requeue_after = RECHECK_SECONDS  # those objects are not watched: look again
    return plan


NOT_DEPLOYED_YET = "not deployed yet: a write is being retried (see the Reconciling condition)"


def retrying(status: ModelDeploymentStatus, obs: Observed, message: str) -> Plan:
    """A write the API server did not take for a reason of its own (a 5xx, a quota, a conflict, a
    permission), which the operator retries. Only the Reconciling condition (True, ApplyFailed) and the
    message say so: what served still serves, so phase, Ready and the rest stay as they were, and so does
    observedGeneration, since the spec has not been carried out. One Warning Event per distinct failure."""
    message = f"{message}; retrying"
    now = timestamp(obs.now)
    # A new ModelDeployment has reported nothing yet: it starts from the Pending set, which says only that; what
    # is being retried is the Reconciling condition's to say (and status.message's).
    conds = status.conditions or conditions(Phase.PENDING, RETRYING, NOT_DEPLOYED_YET, obs.generation, [], now)
    before = next((c for c in status.conditions if c.type == ConditionType.RECONCILING.value), None)
    since = before.last_transition_time if before is not None and before.status == "True" else now
    reconciling = Condition(type=ConditionType.RECONCILING.value, status="True", reason=RETRYING, message=message,
                            observed_generation=obs.generation, last_transition_time=since)
    conds = [c for c in conds if c.type != ConditionType.RECONCILING.value] + [reconciling]
    plan = Plan()
    plan.status = status.model_copy(update={"phase": status.phase or Phase.PENDING, "message": message,
                                            "conditions": conds})
    if before is None or before.reason != RETRYING or before.message != message:
        plan.events.append(Event("Warning", RETRYING, message))
    return plan
