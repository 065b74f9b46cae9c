"""The ModelDeployment spec (v1alpha1): field names are the API contract.

The CRD's OpenAPI schema is generated from these models (api/crd.py), so the
API server rejects what they reject; rules across fields are CEL expressions
attached with `_cel(...)` and repeated as pydantic validators for the operator.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

URI_SCHEMES = ("s3", "gs", "hf", "pvc", "https", "oci")
URI_PATTERN = rf"^({'|'.join(URI_SCHEMES)})://[^\s]+$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PATH_PATTERN = r"^/[^\s]*$"

IntOrString = int | str


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Attach CEL validations (rule, message) to a model's generated schema."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


# What the API server checks in the pods the operator builds from a spec, checked in the spec's own schema too: a
# bad value is refused at apply, with its path, instead of being accepted and failing when the Deployment is
# written. These patterns have no backslashes, so they read the same in OpenAPI and in CEL string literals.
QUALIFIED_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
QUANTITY_PATTERN = (r"^[+]?(([0-9]+([.][0-9]*)?)|([.][0-9]+))"
                    r"(([KMGTPE]i)|[numkMGTPE]|([eE][-+]?(([0-9]+([.][0-9]*)?)|([.][0-9]+))))?$")
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
QUALIFIED_NAME_RULE = "a qualified name: an optional DNS subdomain and '/', then at most 63 of a-z, A-Z, 0-9, " \
                      "'-', '_' and '.', starting and ending with a letter or digit"
MAX_MAP_ENTRIES = 64


def _keys_are_qualified_names(what: str) -> dict[str, Any]:
    return _cel((f"self.all(k, k.matches('{QUALIFIED_NAME_PATTERN}'))", f"each {what} key must be "
                 f"{QUALIFIED_NAME_RULE}"))


def _check_keys(what: str) -> AfterValidator:
    def check(value: dict[str, Any] | None) -> dict[str, Any] | None:
        bad = sorted(k for k in value or {} if not re.match(QUALIFIED_NAME_PATTERN, k))
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: each {what} key must be {QUALIFIED_NAME_RULE}")
        return value
    return AfterValidator(check)


LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
LabelMap = Annotated[dict[str, LabelValue] | None, Field(max_length=MAX_MAP_ENTRIES,
                                                         json_schema_extra=_keys_are_qualified_names("label")),
                     _check_keys("label")]
NodeSelector = Annotated[dict[str, LabelValue] | None, Field(
    max_length=MAX_MAP_ENTRIES, json_schema_extra=_keys_are_qualified_names("nodeSelector")),
    _check_keys("nodeSelector")]
AnnotationMap = Annotated[dict[str, str] | None, Field(
    max_length=MAX_MAP_ENTRIES, json_schema_extra=_keys_are_qualified_names("annotation")),
    _check_keys("annotation")]


# A quantity is a non-negative integer or a string such as 500m; each form is checked by its own keyword.
Quantity = Annotated[int, Field(ge=0)] | Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]
ResourceMap = Annotated[dict[str, Quantity] | None, Field(max_length=16)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class ModelSource(_Model):
    """Where the model comes from."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("!has(self.caBundleConfigMap) || !self.uri.startsWith('pvc://')",
         "caBundleConfigMap is for a model the fetcher downloads; a pvc:// model is mounted, not fetched"),
    ))

    uri: Annotated[str, Field(pattern=URI_PATTERN, max_length=2048, description=(
        "Model location; scheme one of s3://, gs://, hf://, pvc://<claim>/<path>, https://, oci://"))]
    version: Annotated[str, Field(min_length=1, max_length=63,
                                  description="Model version, shown in status and history")]
    format: Annotated[str | None, Field(max_length=63, description="Model format hint, e.g. sklearn, onnx")] = None
    credentials_secret: Annotated[str | None, Field(
        pattern=DNS_SUBDOMAIN_PATTERN, max_length=253,
        description="Secret whose keys become environment variables of the model fetcher and server")] = None
    ca_bundle_config_map: Annotated[str | None, Field(
        pattern=DNS_SUBDOMAIN_PATTERN, max_length=253,
        description=("ConfigMap whose ca.crt holds the CA certificates the model fetcher trusts, instead of the "
                     "public ones: an https:// server or object store behind a private CA"))] = None

    @model_validator(mode="after")
    def _ca_for_fetched_models(self) -> ModelSource:
        if self.ca_bundle_config_map and self.uri.startswith("pvc://"):
            raise ValueError("caBundleConfigMap is for a model the fetcher downloads; a pvc:// model is mounted, "
                             "not fetched")
        return self


# Set by the operator on every model server; a spec may not set them too.
RESERVED_ENV = ("MODEL_DIR", "MODEL_VERSION")
# Label and annotation keys the operator owns on pods: its selectors and bookkeeping depend on them.
RESERVED_PREFIX = "modeldeploy.dev/"
RESERVED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/managed-by")
_RESERVED_KEY_CEL = (f"!k.startsWith('{RESERVED_PREFIX}') && "
                     f"!(k in [{', '.join(repr(k) for k in RESERVED_LABELS)}])")


def reserved_keys(keys: dict[str, str] | None) -> list[str]:
    """The keys of a pod label or annotation map that the operator owns."""
    return sorted(k for k in keys or {} if k.startswith(RESERVED_PREFIX) or k in RESERVED_LABELS)


class EnvVar(_Model):
    """A container environment variable (value or valueFrom, as in core/v1)."""

    model_config = ConfigDict(json_schema_extra=_cel(
        (f"!(self.name in [{', '.join(repr(n) for n in RESERVED_ENV)}])",
         f"{' and '.join(RESERVED_ENV)} are set by the operator (where the model is, its version); "
         f"use another name"),
    ))

    name: Annotated[str, Field(min_length=1, max_length=255, pattern=ENV_NAME_PATTERN)]
    value: str | None = None
    value_from: Annotated[dict[str, Any] | None, Field(json_schema_extra={
        "x-kubernetes-preserve-unknown-fields": True})] = None

    @model_validator(mode="after")
    def _not_reserved(self) -> EnvVar:
        if self.name in RESERVED_ENV:
            raise ValueError(f"{' and '.join(RESERVED_ENV)} are set by the operator (where the model is, its "
                             f"version); use another name")
        return self


class Resources(_Model):
    """Compute resources of the model server container."""

    limits: ResourceMap = None
    requests: ResourceMap = None


class Startup(_Model):
    """How long the model server may take to load its model before it must answer its readiness path."""

    timeout_seconds: Annotated[int, Field(ge=1, le=86400, description=(
        "The longest a load may take, e.g. 600; past it the kubelet restarts the server"))] = 600
    period_seconds: Annotated[int, Field(ge=1, le=300, description="How often the load is checked")] = 10


class Runtime(_Model):
    """The model server: an image, or a preset the operator knows."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("has(self.image) != has(self.preset)", "set exactly one of runtime.image or runtime.preset"),
    ))

    image: Annotated[str | None, Field(min_length=1, max_length=512, pattern=r"^[^\s]+$")] = None
    preset: Annotated[str | None, Field(pattern=DNS_LABEL_PATTERN, max_length=63, description=(
        "A runtime preset known to the operator (mlserver, triton, torchserve, vllm)"))] = None
    # Bounded lists keep objects small and the API server's worst-case CEL cost estimate in budget.
    args: Annotated[list[str] | None, Field(max_length=200)] = None
    env: Annotated[list[EnvVar] | None, Field(max_length=200)] = None
    resources: Resources | None = None
    port: Annotated[int | None, Field(ge=1, le=65535, description="Serving port; default 8080 or the preset's")] = None
    startup: Annotated[Startup | None, Field(description=(
        "A startup probe for slow model loads, separate from readiness: the readiness path is checked every "
        "periodSeconds for up to timeoutSeconds. Default: 10 minutes with a preset, none with an image"))] = None
    readiness_path: Annotated[str | None, Field(pattern=PATH_PATTERN, max_length=1024, description=(
        "HTTP path of the readiness probe; default /v2/health/ready or the preset's"))] = None

    @model_validator(mode="after")
    def _one_source(self) -> Runtime:
        if (self.image is None) == (self.preset is None):
            raise ValueError("set exactly one of runtime.image or runtime.preset")
        return self


RESERVED_KEYS_MESSAGE = (f"keys starting with {RESERVED_PREFIX} and {', '.join(RESERVED_LABELS)} belong to the "
                         f"operator (its Services select pods by them); use other keys")


class TemplateMetadata(_Model):
    """Labels and annotations added to the serving pods."""

    model_config = ConfigDict(json_schema_extra=_cel(
        (f"!has(self.labels) || self.labels.all(k, {_RESERVED_KEY_CEL})", RESERVED_KEYS_MESSAGE),
        (f"!has(self.annotations) || self.annotations.all(k, {_RESERVED_KEY_CEL})", RESERVED_KEYS_MESSAGE),
    ))

    labels: LabelMap = None
    annotations: AnnotationMap = None

    @model_validator(mode="after")
    def _not_reserved(self) -> TemplateMetadata:
        taken = reserved_keys(self.labels) + reserved_keys(self.annotations)
        if taken:
            raise ValueError(f"{', '.join(taken)}: {RESERVED_KEYS_MESSAGE}")
        return self


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


TOLERATION_RULES = (
    ("(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
     "a toleration without a key must have operator Exists (it then tolerates every taint)"),
    ("!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
     "a toleration with operator Exists takes no value"),
    ("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
     "tolerationSeconds goes with effect NoExecute (how long a pod stays on a node once it is tainted)"),
)


class Toleration(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(*TOLERATION_RULES))

    key: Annotated[str | None, Field(max_length=317, pattern=f"^$|{QUALIFIED_NAME_PATTERN}")] = None
    operator: TolerationOperator | None = None
    value: Annotated[str | None, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)] = None
    effect: TaintEffect | None = None
    toleration_seconds: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        exists = self.operator == TolerationOperator.EXISTS
        if not self.key and not exists:
            raise ValueError(TOLERATION_RULES[0][1])
        if exists and self.value:
            raise ValueError(TOLERATION_RULES[1][1])
        if self.toleration_seconds is not None and self.effect != TaintEffect.NO_EXECUTE:
            raise ValueError(TOLERATION_RULES[2][1])
        return self


class PodTemplate(_Model):
    """Pod overrides for the serving pods."""

    metadata: TemplateMetadata | None = None
    node_selector: NodeSelector = None
    tolerations: Annotated[list[Toleration] | None, Field(max_length=50)] = None
    service_account_name: Annotated[str | None, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)] = None


class Autoscaling(_Model):
    """A HorizontalPodAutoscaler on the serving revision."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("self.minReplicas <= self.maxReplicas", "autoscaling.minReplicas must not exceed maxReplicas"),
    ))

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    # to_camel would spell it targetCpu...; DESIGN.md and the HPA API spell it targetCPU...
    target_cpu_utilization_percentage: Annotated[int, Field(
        alias="targetCPUUtilizationPercentage", ge=1, le=100)] = 80

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must not exceed maxReplicas")
        return self


class Pause(_Model):
    duration: Annotated[str | None, Field(pattern=DURATION_PATTERN, description=(
        "How long to wait, e.g. 30s or 5m; absent: wait for `kubectl modeldeploy promote`"))] = None


class AnalysisStep(_Model):
    """Run the rollout's analysis block now and gate on its verdict."""


# An HTTP header name: a token (RFC 9110), less the backquote, which no header in use has.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_|~-]+$"


class HeaderMatch(_Model):
    name: Annotated[str, Field(pattern=HEADER_NAME_PATTERN, max_length=256, description="The header's name")]
    value: Annotated[str, Field(min_length=1, max_length=4096, description="Its value, matched exactly")]


class HeaderRoute(_Model):
    """Requests carrying all these headers go to the canary whatever its weight (testers reaching it on
    purpose), from this step until the rollout ends."""

    # A list-map: the API server refuses two entries for one header.
    match: Annotated[list[HeaderMatch], Field(min_length=1, max_length=8, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})]


class Mirror(_Model):
    """A copy of live requests for the canary, whose answers no client sees, from this step until the rollout ends
    (or a later mirror step changes it)."""

    percent: Annotated[int, Field(ge=0, le=100, description=(
        "The share of the requests the route carries that is copied to the canary; 0 stops mirroring"))] = 100


STEP_KINDS = "each rollout step sets exactly one of setWeight, pause, analysis, setHeaderRoute, mirror"


class Step(_Model):
    """One rollout step: exactly one of setWeight, pause, analysis, setHeaderRoute, mirror."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("[has(self.setWeight), has(self.pause), has(self.analysis), has(self.setHeaderRoute), has(self.mirror)]"
         ".filter(x, x).size() == 1", STEP_KINDS),
    ))

    set_weight: Annotated[int | None, Field(ge=0, le=100)] = None
    pause: Pause | None = None
    analysis: AnalysisStep | None = None
    set_header_route: HeaderRoute | None = None
    mirror: Mirror | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = (self.set_weight, self.pause, self.analysis, self.set_header_route, self.mirror)
        if sum(x is not None for x in kinds) != 1:
            raise ValueError(STEP_KINDS)
        return self


class ReplicasRouting(_Model):
    """No mesh: a weight is the share of ready pods behind the Service."""


class GatewayAPIRouting(_Model):
    http_route: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    namespace: Annotated[str | None, Field(pattern=DNS_LABEL_PATTERN, max_length=63)] = None


class IstioRouting(_Model):
    virtual_service: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    routes: list[str] | None = None


class TrafficRouting(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("[has(self.replicas), has(self.gatewayAPI), has(self.istio)].filter(x, x).size() <= 1",
         "trafficRouting takes exactly one of replicas, gatewayAPI, istio"),
    ))

    replicas: ReplicasRouting | None = None
    gateway_api: Annotated[GatewayAPIRouting | None, Field(alias="gatewayAPI")] = None
    istio: IstioRouting | None = None


class ThresholdRange(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("has(self.min) || has(self.max)", "thresholdRange needs min, max or both"),
    ))

    min: float | None = None
    max: float | None = None


PROVIDER_OR_ADDRESS = ("a prometheus metric names exactly one of provider (an AnalysisProvider) or address (inline, "
                       "only where the operator allows inline analysis URLs)")
PROVIDER_OR_URL = ("a webhook metric names exactly one of provider (an AnalysisProvider, with an optional path) or "
                   "url (inline, only where the operator allows inline analysis URLs)")


class PrometheusMetric(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(("has(self.provider) != has(self.address)",
                                                      PROVIDER_OR_ADDRESS)))

    provider: Annotated[str | None, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)] = None
    address: Annotated[str | None, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] = None
    query: Annotated[str, Field(min_length=1, max_length=4096)]

    @model_validator(mode="after")
    def _one_endpoint(self) -> PrometheusMetric:
        if (self.provider is None) == (self.address is None):
            raise ValueError(PROVIDER_OR_ADDRESS)
        return self


class WebhookMetric(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("has(self.provider) != has(self.url)", PROVIDER_OR_URL),
        ("!has(self.path) || has(self.provider)", "path goes with provider (an inline url carries its own path)"),
    ))

    provider: Annotated[str | None, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)] = None
    # Appended to the provider's baseURL; it starts with "/", so it can never name another host.
    path: Annotated[str | None, Field(pattern=PATH_PATTERN, max_length=2048)] = None
    url: Annotated[str | None, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] = None
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10

    @model_validator(mode="after")
    def _one_endpoint(self) -> WebhookMetric:
        if (self.provider is None) == (self.url is None):
            raise ValueError(PROVIDER_OR_URL)
        if self.path is not None and self.provider is None:
            raise ValueError("path goes with provider (an inline url carries its own path)")
        return self


class CompareMetric(_Model):
    """The canary judged by what it answers: a comparator beside it (`<md>-mirror`, which the mirror steps copy
    requests to) sends each copy to both revisions and counts the predictions that differ."""

    max_disagreement: Annotated[float, Field(ge=0, le=1, description=(
        "The largest share (0 to 1) of predictions that may differ from the stable revision's for the same "
        "requests, e.g. 0.05"))]
    tolerance: Annotated[float, Field(ge=0, description=(
        "Two numeric predictions this close (absolute difference) agree; default 0: only equal ones"))] = 0.0
    min_predictions: Annotated[int, Field(ge=1, le=1_000_000, description=(
        "Fewer predictions compared than this: the run is Inconclusive; default 100"))] = 100


ONE_METRIC_KIND = "each metric takes exactly one of prometheus, webhook or compare"


class Metric(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("[has(self.prometheus), has(self.webhook), has(self.compare)].filter(x, x).size() == 1", ONE_METRIC_KIND),
        ("!has(self.prometheus) || has(self.thresholdRange)", "a prometheus metric needs a thresholdRange"),
    ))

    name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]
    prometheus: PrometheusMetric | None = None
    webhook: WebhookMetric | None = None
    compare: CompareMetric | None = None
    threshold_range: ThresholdRange | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Metric:
        if sum(x is not None for x in (self.prometheus, self.webhook, self.compare)) != 1:
            raise ValueError(ONE_METRIC_KIND)
        return self


WARMUP_NEEDS_A_BOUND = "warmup needs duration, requests or both"
REQUESTS_NEED_A_COUNT = ("warmup.requests needs warmup.requestCount: a Prometheus query (provider and query) that "
                         "counts the requests the canary has served, e.g. sum(model_infer_request_success_total{"
                         "namespace=\"$namespace\", revision=\"$revision\"})")


class Warmup(_Model):
    """The canary's cold start, left out of the verdict: a time, a number of requests served, or both (it ends
    once each given one is reached)."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("has(self.duration) || has(self.requests)", WARMUP_NEEDS_A_BOUND),
        ("has(self.requests) == has(self.requestCount)", REQUESTS_NEED_A_COUNT),
    ))

    duration: Annotated[str | None, Field(pattern=DURATION_PATTERN, max_length=32, description=(
        "How long after the canary first gets requests its analysis runs count for nothing, e.g. 2m"))] = None
    requests: Annotated[int | None, Field(ge=1, le=1_000_000_000, description=(
        "How many requests the canary serves before its analysis runs count, e.g. 500 (counted by "
        "requestCount)"))] = None
    request_count: Annotated[PrometheusMetric | None, Field(description=(
        "A Prometheus query giving the number of requests the canary's revision has served so far, measured "
        "with each analysis run until the warm-up ends; it may use $namespace, $name, $revision"))] = None

    @model_validator(mode="after")
    def _bounds(self) -> Warmup:
        if self.duration is None and self.requests is None:
            raise ValueError(WARMUP_NEEDS_A_BOUND)
        if (self.requests is None) != (self.request_count is None):
            raise ValueError(REQUESTS_NEED_A_COUNT)
        return self


class Bake(_Model):
    """A time after promotion's 100% during which the previous revision stays warm to roll back to."""

    duration: Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32, description=(
        "How long the canary serves 100% under analysis before it becomes stable, e.g. 10m"))]


ONE_COMPARE = ("at most one metric is a compare metric: one comparator sends the mirrored requests to both "
               "revisions, with one tolerance")


class Analysis(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("!has(self.metrics) || self.metrics.filter(m, has(m.compare)).size() <= 1", ONE_COMPARE),
    ))

    interval: Annotated[str, Field(pattern=DURATION_PATTERN)] = "30s"
    warmup: Warmup | None = None
    failure_limit: Annotated[int, Field(ge=0, le=100)] = 1
    inconclusive_limit: Annotated[int, Field(ge=0, le=100)] = 2
    # A list-map: the API server refuses two metrics of one name (each is reported by name).
    metrics: Annotated[list[Metric] | None, Field(max_length=20, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})] = None

    @model_validator(mode="after")
    def _unique_names(self) -> Analysis:
        seen = [m.name for m in self.metrics or []]
        if len(seen) != len(set(seen)):
            twice = sorted({n for n in seen if seen.count(n) > 1})
            raise ValueError(f"metric names must be unique; repeated: {', '.join(twice)}")
        if len([m for m in self.metrics or [] if m.compare is not None]) > 1:
            raise ValueError(ONE_COMPARE)
        return self

    def compared(self) -> CompareMetric | None:
        """The compare metric's settings, when the canary is judged by its answers."""
        return next((m.compare for m in self.metrics or [] if m.compare is not None), None)


PRE_TRAFFIC_REFUSED = ("an analysis step before any setWeight judges a canary before it has traffic, which "
                       "the replicas router cannot do (its pods would serve at once); use trafficRouting "
                       "gatewayAPI or istio, or put a setWeight step first")


BUDGET_NEEDS_STEPS = ("maxSurge with trafficRouting needs a setWeight step: without one the route sends every "
                      "request to the stable revision until promotion, while the budget takes its pods away; add "
                      "setWeight steps, or leave maxSurge unset")


BAKE_NEEDS_STEPS = ("bake needs canary steps: it is the time after a canary reaches 100% and before it becomes "
                    "stable; add rollout.steps, or leave bake unset")


HEADER_ROUTE_NEEDS_A_MESH = ("setHeaderRoute needs trafficRouting gatewayAPI or istio: the replicas router "
                             "has one Service and cannot route by header")


MIRROR_NEEDS_A_MESH = ("a mirror step needs trafficRouting gatewayAPI or istio: the replicas router has one "
                       "Service and cannot copy requests")


COMPARE_NEEDS_A_MIRROR = ("a compare metric needs a mirror step: it judges the canary on copies of live requests, "
                          "which only a mirror step sends; add a step such as {mirror: {percent: 20}} before the "
                          "analysis")


class Rollout(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("!has(self.steps) || (has(self.trafficRouting) && (has(self.trafficRouting.gatewayAPI) || "
         "has(self.trafficRouting.istio))) || !self.steps.exists(i, s, has(s.analysis) && "
         "!self.steps.exists(j, u, j < i && has(u.setWeight) && u.setWeight > 0))", PRE_TRAFFIC_REFUSED),
        ("!has(self.maxSurge) || !has(self.trafficRouting) || !(has(self.trafficRouting.gatewayAPI) || "
         "has(self.trafficRouting.istio)) || (has(self.steps) && self.steps.exists(s, has(s.setWeight)))",
         BUDGET_NEEDS_STEPS),
        ("!has(self.steps) || !self.steps.exists(s, has(s.setHeaderRoute)) || (has(self.trafficRouting) && "
         "(has(self.trafficRouting.gatewayAPI) || has(self.trafficRouting.istio)))", HEADER_ROUTE_NEEDS_A_MESH),
        ("!has(self.bake) || (has(self.steps) && size(self.steps) > 0)", BAKE_NEEDS_STEPS),
        ("!has(self.steps) || !self.steps.exists(s, has(s.mirror)) || (has(self.trafficRouting) && "
         "(has(self.trafficRouting.gatewayAPI) || has(self.trafficRouting.istio)))", MIRROR_NEEDS_A_MESH),
        ("!has(self.analysis) || !has(self.analysis.metrics) || !self.analysis.metrics.exists(m, has(m.compare)) "
         "|| (has(self.steps) && self.steps.exists(s, has(s.mirror)))", COMPARE_NEEDS_A_MIRROR),
    ))

    steps: Annotated[list[Step] | None, Field(max_length=50)] = None
    traffic_routing: TrafficRouting | None = None
    analysis: Analysis | None = None
    progress_deadline_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    auto_rollback: bool = True
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86400)] = 30
    # Unset: a new revision runs beside the serving one at its full size (capacity never drops, but a rollout
    # may hold twice the pods, and so twice the GPUs).
    max_surge: Annotated[int | None, Field(ge=0, le=1000)] = None
    bake: Bake | None = None

    def compares(self) -> bool:
        """Is the canary judged by its answers (a compare metric), so the mirror steps copy requests to the
        comparator instead of the canary?"""
        return self.analysis is not None and self.analysis.compared() is not None

    def mirror_at(self, index: int) -> int:
        """The share of requests copied to the canary at step `index`: the latest mirror step before it (it stays
        until the steps end or another changes it); 0 when there is none, and after the last step, when the canary
        takes every request (copies of them would double its load and the traffic it is judged on)."""
        if index >= len(self.steps or []):
            return 0
        for step in reversed((self.steps or [])[:index]):
            if step.mirror is not None:
                return step.mirror.percent
        return 0

    @model_validator(mode="after")
    def _combinations(self) -> Rollout:
        if self.bake is not None and not self.steps:
            raise ValueError(BAKE_NEEDS_STEPS)
        routing = self.traffic_routing
        mesh = bool(routing and (routing.gateway_api or routing.istio))
        if not mesh and any(s.set_header_route is not None for s in self.steps or []):
            raise ValueError(HEADER_ROUTE_NEEDS_A_MESH)
        if not mesh and any(s.mirror is not None for s in self.steps or []):
            raise ValueError(MIRROR_NEEDS_A_MESH)
        if self.compares() and not any(s.mirror is not None for s in self.steps or []):
            raise ValueError(COMPARE_NEEDS_A_MIRROR)
        if routing and (routing.gateway_api or routing.istio):
            if self.max_surge is not None and not any(s.set_weight is not None for s in self.steps or []):
                raise ValueError(BUDGET_NEEDS_STEPS)
            return self
        for step in self.steps or []:
            if step.set_weight:
                break
            if step.analysis is not None:
                raise ValueError(PRE_TRAFFIC_REFUSED)
        return self


class ModelDeploymentSpec(_Model):
    """What a team asks for: one model, served."""

    model: ModelSource
    runtime: Runtime
    template: PodTemplate | None = None
    # Defaulted by the API server too, so the scale subresource always has a number: an autoscaler treats a
    # target at 0 replicas as switched off.
    replicas: Annotated[int, Field(ge=0, le=1000, description=(
        "Serving pods; default 1. With autoscaling the autoscaler sets it (through the scale subresource), "
        "within [minReplicas, maxReplicas]"))] = 1
    autoscaling: Autoscaling | None = None
    rollout: Rollout = Rollout()
    revision_history_limit: Annotated[int, Field(ge=1, le=100)] = 10
    paused: bool = False

    def desired_replicas(self) -> int:
        """Serving pods: spec.replicas, kept within the autoscaler's bounds (which it enforces on its next pass
        anyway; a new ModelDeployment starts at minReplicas without waiting for it)."""
        a = self.autoscaling
        return min(max(self.replicas, a.min_replicas), a.max_replicas) if a else self.replicas

    def serving_template(self) -> dict[str, Any]:
        """The part of the spec that makes a revision: everything that changes pods."""
        return {
            "model": self.model.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "runtime": self.runtime.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "template": (self.template.model_dump(by_alias=True, exclude_none=True, mode="json")
                         if self.template else {}),
        }


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as 30s, 1m30s, 500ms."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for num, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text):
        total += float(num) * units[unit]
    return total
