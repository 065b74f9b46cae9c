"""Where each metric of a run is measured: the AnalysisProvider it names (read, with its token, each run), or
the URL written in the spec where the platform allows that. Anything missing is said, never guessed."""

from __future__ import annotations

import base64
import string

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.api import names
from modeldeploy.api.provider import AnalysisProviderSpec, Endpoint
from modeldeploy.api.spec import Metric
from modeldeploy.comparator import AGREEMENT_PATH, STATS_PORT
from modeldeploy.desired.settings import Settings
from modeldeploy.k8s.client import Kube


def targets(kube: Kube, metrics: list[Metric], context: RunContext, settings: Settings) -> dict[str, Target | str]:
    """Each metric's Target, or why it has none (the text its Inconclusive measurement carries)."""
    return {m.name: target(kube, m, context, settings) for m in metrics}


def target(kube: Kube, metric: Metric, context: RunContext, settings: Settings) -> Target | str:
    if metric.compare is not None:
        return comparator(kube, context)
    kind = "prometheus" if metric.prometheus is not None else "webhook"
    block = metric.prometheus or metric.webhook
    assert block is not None
    inline = metric.prometheus.address if metric.prometheus else metric.webhook.url if metric.webhook else None
    if inline is not None:
        if not settings.allow_inline_analysis_urls:
            return f"{inline} is written in the ModelDeployment, and this operator reaches only AnalysisProviders"
        return Target(url=inline)
    name = block.provider
    assert name is not None
    obj = kube.get(names.API_VERSION, names.PROVIDER_KIND, "", name)
    if obj is None:
        return f"AnalysisProvider {name!r} does not exist"
    try:
        spec = AnalysisProviderSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        return f"AnalysisProvider {name!r} is not valid: {exc.errors()[0]['msg']}"
    endpoint: Endpoint | None = spec.prometheus if kind == "prometheus" else spec.webhook
    if endpoint is None:
        return f"AnalysisProvider {name!r} is not a {kind} provider"
    url = spec.prometheus.address if spec.prometheus is not None and kind == "prometheus" else (
        spec.webhook.base_url.rstrip("/") + (metric.webhook.path or "") if spec.webhook and metric.webhook else "")
    token = None
    if endpoint.bearer_token_secret is not None:
        token = secret_value(kube, settings.own_namespace, endpoint.bearer_token_secret.name,
                             endpoint.bearer_token_secret.key)
        if token is None:
            ref = endpoint.bearer_token_secret
            return (f"AnalysisProvider {name!r}: key {ref.key!r} of Secret {ref.name!r} in the operator's namespace "
                    f"{settings.own_namespace or '(unknown)'!r} cannot be read")
    # Header values may name the rollout ($namespace, $name, ...), e.g. a tenant header for a label proxy.
    headers = {k: string.Template(v).safe_substitute(context.variables()) for k, v in (endpoint.headers or {}).items()}
    return Target(url=url, headers=headers, token=token, ca_bundle=endpoint.ca_bundle)


def comparator(kube: Kube, context: RunContext) -> Target | str:
    """The counts of the comparator the operator runs beside the canary: its Service's cluster IP, which the
    operator reaches in a pod and from a host on the cluster's network alike (no DNS name needed)."""
    name = names.mirror_name(context.name)
    svc = kube.get("v1", "Service", context.namespace, name)
    ip = ((svc or {}).get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        return f"the comparator's Service {name} has no cluster IP yet"
    host = f"[{ip}]" if ":" in ip else ip
    return Target(url=f"http://{host}:{STATS_PORT}{AGREEMENT_PATH}")


def secret_value(kube: Kube, namespace: str, name: str, key: str) -> str | None:
    """One key of a Secret, decoded; None when it is missing or may not be read."""
    if not namespace:
        return None
    try:
        secret = kube.get("v1", "Secret", namespace, name)
    except ApiException as exc:
        if exc.status == 403:
            return None
        raise
    raw = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode().strip() if raw else None
