"""Analysis endpoints belong to the platform: a metric names an AnalysisProvider; a URL written in the spec is
refused unless the operator allows inline URLs, and the refusal touches nothing that serves."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.provider import AnalysisProviderSpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Phase
from modeldeploy.desired.settings import Settings
from modeldeploy.desired.validity import ready_reason
from planning import HEALTHY_1, R1, observed, plan, ready, replicas, spec

STEPS = [{"setWeight": 50}, {"analysis": {}}]


def with_metric(metric: dict[str, Any]) -> dict[str, Any]:
    return spec("8", rollout={"steps": STEPS, "analysis": {"metrics": [{"name": "m", **metric}]}})


PROM = {"prometheus": {"provider": "main", "query": "up"}, "thresholdRange": {"min": 1}}
HOOK = {"webhook": {"provider": "checks", "path": "/smoke"}}


@pytest.mark.parametrize(("metric", "field"), [
    ({"prometheus": {"address": "http://10.0.0.1:9090", "query": "up"}, "thresholdRange": {"min": 1}},
     "spec.rollout.analysis.metrics[0].prometheus.address"),
    ({"webhook": {"url": "http://internal-admin.svc/secrets?"}}, "spec.rollout.analysis.metrics[0].webhook.url"),
], ids=["prometheus-address", "webhook-url"])
def test_an_inline_url_is_refused_and_what_serves_keeps_serving(metric: dict[str, Any], field: str) -> None:
    p = plan(with_metric(metric), HEALTHY_1, observed(ready(1), revisions=(R1,)), Settings())
    assert (p.status.phase, ready_reason(p.status)) == (Phase.FAILED, "InlineAnalysisURL")
    assert p.status.message.startswith(f"{field}: this operator does not reach analysis URLs written in a "
                                       f"ModelDeployment"), p.status.message
    assert "--allow-inline-analysis-urls" in p.status.message and "AnalysisProvider" in p.status.message
    assert p.apply == [] and p.delete == [] and p.traffic is None  # nothing touched: revision 1 serves on
    allowed = plan(with_metric(metric), HEALTHY_1, observed(ready(1), revisions=(R1,)),
                   Settings(allow_inline_analysis_urls=True))
    assert allowed.status.phase == Phase.PROGRESSING and allowed.status.canary_revision == 2


@pytest.mark.parametrize(("metric", "known", "says"), [
    (PROM, {}, "AnalysisProvider 'main' does not exist"),
    (PROM, {"main": "webhook"}, "AnalysisProvider 'main' is a webhook provider, and metric 'm' is a prometheus"),
    (HOOK, {"checks": "prometheus"}, "AnalysisProvider 'checks' is a prometheus provider"),
], ids=["missing", "prometheus-names-a-webhook", "webhook-names-a-prometheus"])
def test_a_provider_that_is_not_there_is_named(metric: dict[str, Any], known: dict[str, str], says: str) -> None:
    p = plan(with_metric(metric), HEALTHY_1, observed(ready(1), revisions=(R1,), analysis_providers=known),
             Settings())
    assert (p.status.phase, ready_reason(p.status)) == (Phase.FAILED, "AnalysisProviderNotFound")
    assert says in p.status.message and "kubectl get analysisproviders" in p.status.message, p.status.message
    assert p.requeue_after is not None  # a provider created later is noticed


@pytest.mark.parametrize(("metric", "known"), [(PROM, {"main": "prometheus"}), (HOOK, {"checks": "webhook"})],
                         ids=["prometheus", "webhook"])
def test_a_known_provider_lets_the_rollout_start(metric: dict[str, Any], known: dict[str, str]) -> None:
    p = plan(with_metric(metric), HEALTHY_1, observed(ready(1), revisions=(R1,), analysis_providers=known),
             Settings())
    assert p.status.phase == Phase.PROGRESSING and replicas(p)[1] == 3


@pytest.mark.parametrize(("metric", "says"), [
    ({"webhook": {"provider": "checks", "url": "http://x/y"}}, "exactly one of provider"),
    ({"webhook": {"url": "http://x/y", "path": "/z"}}, "path goes with provider"),
    ({"webhook": {"provider": "checks", "path": "smoke"}}, "String should match pattern"),
    ({"prometheus": {"query": "up"}, "thresholdRange": {"min": 1}}, "exactly one of provider (an AnalysisProvider) "
                                                                     "or address"),
], ids=["both", "path-without-provider", "relative-path", "neither"])
def test_a_metric_names_its_endpoint_one_way(metric: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=r".*") as err:
        ModelDeploymentSpec.model_validate(with_metric(metric))
    assert says in str(err.value)


@pytest.mark.parametrize(("provider", "says"), [
    ({"webhook": {"baseURL": "http://checks.platform/?"}}, "String should match pattern"),
    ({"webhook": {"baseURL": "http://user@checks.platform/"}}, "String should match pattern"),
    ({"webhook": {"baseURL": "http://checks.platform/#x"}}, "String should match pattern"),
    ({"prometheus": {"address": "http://prom:9090", "headers": {"Authorization": "Bearer x"}}},
     "credentials go in bearerTokenSecret"),
    ({"prometheus": {"address": "http://prom:9090", "headers": {"bad header": "x"}}}, "header names are"),
    ({"prometheus": {"address": "http://prom:9090"}, "webhook": {"baseURL": "http://c"}}, "exactly one of"),
], ids=["query-in-base", "user-info", "fragment", "authorization-header", "header-name", "both-kinds"])
def test_a_provider_base_url_cannot_be_bent(provider: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as err:
        AnalysisProviderSpec.model_validate(provider)
    assert says in str(err.value)


def test_a_provider_with_a_base_path_token_and_tenant_header_is_valid() -> None:
    p = AnalysisProviderSpec.model_validate({"prometheus": {
        "address": "https://prom-label-proxy.monitoring:8443/tenant", "headers": {"X-Scope-OrgID": "$namespace"},
        "bearerTokenSecret": {"name": "prom-token", "key": "token"}}})
    assert p.prometheus is not None and p.prometheus.headers == {"X-Scope-OrgID": "$namespace"}
