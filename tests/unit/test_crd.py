"""The generated CRD: structural, complete, and identical to the committed copy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import names, reference
from modeldeploy.api.crd import build_crd, render, to_structural
from modeldeploy.api.spec import (
    BAKE_NEEDS_STEPS,
    BUDGET_NEEDS_STEPS,
    COMPARE_NEEDS_A_MIRROR,
    ENV_NAME_PATTERN,
    HEADER_ROUTE_NEEDS_A_MESH,
    LABEL_VALUE_PATTERN,
    MIRROR_NEEDS_A_MESH,
    ONE_COMPARE,
    ONE_METRIC_KIND,
    PRE_TRAFFIC_REFUSED,
    PROVIDER_OR_ADDRESS,
    PROVIDER_OR_URL,
    QUALIFIED_NAME_RULE,
    QUANTITY_PATTERN,
    REQUESTS_NEED_A_COUNT,
    RESERVED_KEYS_MESSAGE,
    STEP_KINDS,
    TOLERATION_RULES,
    WARMUP_NEEDS_A_BOUND,
)

Schema = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeldeploy.dev_modeldeployments.yaml"
CRD = build_crd()
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]

# Keywords a structural schema node may carry (everything else means a conversion gap).
ALLOWED = {
    "type", "description", "properties", "required", "items", "additionalProperties", "enum", "default",
    "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
    "x-kubernetes-validations", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
}


def nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node with its path: .field, [] for list items, {} for map values."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def node_at(path: str) -> Schema:
    """The schema node at a path as `nodes` spells it."""
    return dict(nodes(SCHEMA))[path]


def has_cel_below(schema: Schema) -> bool:
    """Whether the node or anything under it carries CEL rules."""
    return any("x-kubernetes-validations" in n for _, n in nodes(schema))


STRUCTURAL_RULES: list[tuple[str, Callable[[Schema], bool]]] = [
    ("known-keywords-only", lambda n: set(n) <= ALLOWED),
    ("no-ref", lambda n: "$ref" not in n and "$defs" not in n),
    ("no-anyof", lambda n: not {"anyOf", "oneOf", "allOf"} & set(n)),
    ("no-title", lambda n: "title" not in n),
    ("no-boolean-additional-properties", lambda n: not isinstance(n.get("additionalProperties"), bool)),
    ("no-null-default", lambda n: "default" not in n or n["default"] is not None),
    ("scalar-defaults-only", lambda n: not isinstance(n.get("default"), dict | list)),
    ("typed", lambda n: "type" in n or "x-kubernetes-int-or-string" in n),
    ("properties-xor-additional-properties", lambda n: not ("properties" in n and "additionalProperties" in n)),
    ("required-are-properties", lambda n: set(n.get("required", [])) <= set(n.get("properties", {}))),
    # The API server estimates CEL cost for the largest list it could receive.
    ("cel-under-lists-is-bounded", lambda n: n.get("type") != "array" or not has_cel_below(n["items"])
     or "maxItems" in n),
]


@pytest.mark.parametrize("rule", [r for _, r in STRUCTURAL_RULES], ids=[i for i, _ in STRUCTURAL_RULES])
def test_schema_is_structural(rule: Callable[[Schema], bool]) -> None:
    assert [path or "<root>" for path, node in nodes(SCHEMA) if not rule(node)] == []


EXPECTED_CEL = {
    "": [names.NAME_MESSAGE],
    ".spec.runtime.env[]": ["MODEL_DIR and MODEL_VERSION are set by the operator (where the model is, its "
                            "version); use another name"],
    ".spec.template.metadata": [RESERVED_KEYS_MESSAGE, RESERVED_KEYS_MESSAGE],
    ".spec.rollout": [PRE_TRAFFIC_REFUSED, BUDGET_NEEDS_STEPS, HEADER_ROUTE_NEEDS_A_MESH, BAKE_NEEDS_STEPS,
                      MIRROR_NEEDS_A_MESH, COMPARE_NEEDS_A_MIRROR],
    ".spec.rollout.analysis": [ONE_COMPARE],
    ".spec.rollout.analysis.warmup": [WARMUP_NEEDS_A_BOUND, REQUESTS_NEED_A_COUNT],
    ".spec.rollout.analysis.warmup.requestCount": [PROVIDER_OR_ADDRESS],
    ".spec.runtime": ["set exactly one of runtime.image or runtime.preset"],
    ".spec.autoscaling": ["autoscaling.minReplicas must not exceed maxReplicas"],
    ".spec.rollout.steps[]": [STEP_KINDS],
    ".spec.rollout.trafficRouting": ["trafficRouting takes exactly one of replicas, gatewayAPI, istio"],
    ".spec.rollout.analysis.metrics[]": [ONE_METRIC_KIND,
                                         "a prometheus metric needs a thresholdRange"],
    ".spec.rollout.analysis.metrics[].thresholdRange": ["thresholdRange needs min, max or both"],
    ".spec.rollout.analysis.metrics[].prometheus": [PROVIDER_OR_ADDRESS],
    ".spec.rollout.analysis.metrics[].webhook": [PROVIDER_OR_URL, "path goes with provider (an inline url carries "
                                                                  "its own path)"],
    # What the API server would check only in the pods built from the spec (spec.py's patterns)
    ".spec.template.metadata.labels": [f"each label key must be {QUALIFIED_NAME_RULE}"],
    ".spec.template.metadata.annotations": [f"each annotation key must be {QUALIFIED_NAME_RULE}"],
    ".spec.template.nodeSelector": [f"each nodeSelector key must be {QUALIFIED_NAME_RULE}"],
    ".spec.template.tolerations[]": [message for _, message in TOLERATION_RULES],
    ".spec.model": ["caBundleConfigMap is for a model the fetcher downloads; a pvc:// model is mounted, not fetched"],
}


@pytest.mark.parametrize(("path", "messages"), EXPECTED_CEL.items(), ids=list(EXPECTED_CEL))
def test_cel_rules_at_path(path: str, messages: list[str]) -> None:
    rules = node_at(path)["x-kubernetes-validations"]
    assert [r["message"] for r in rules] == messages
    assert all(r["rule"].strip() for r in rules)


def test_cel_rules_nowhere_else() -> None:
    assert {p for p, n in nodes(SCHEMA) if "x-kubernetes-validations" in n} == set(EXPECTED_CEL)


FIELD_SCHEMAS: list[tuple[str, Schema]] = [
    (".spec.model.uri", {"pattern": r"^(s3|gs|hf|pvc|https|oci)://[^\s]+$", "maxLength": 2048}),
    (".spec.replicas", {"type": "integer", "minimum": 0, "maximum": 1000}),
    (".spec.revisionHistoryLimit", {"default": 10}),
    (".spec.paused", {"type": "boolean", "default": False}),
    (".spec.autoscaling.targetCPUUtilizationPercentage", {"default": 80, "maximum": 100}),
    (".spec.rollout.autoRollback", {"default": True}),
    (".spec.rollout.steps", {"maxItems": 50}),
    (".spec.rollout.analysis.metrics", {"maxItems": 20}),
    (".spec.runtime.env", {"maxItems": 200}),
    (".spec.runtime.args", {"maxItems": 200}),
    (".spec.template.tolerations", {"maxItems": 50}),
    (".spec.template.tolerations[].operator", {"type": "string", "enum": ["Exists", "Equal"]}),
    (".spec.runtime.resources.limits{}", {"x-kubernetes-int-or-string": True}),
    (".spec.runtime.env[].valueFrom", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    (".spec.template.nodeSelector", {"type": "object", "maxProperties": 64, "additionalProperties": {
        "type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN}}),
    # A quantity: an integer of at least 0, or a string such as 500m (each keyword holds for its own type)
    (".spec.runtime.resources.limits", {"maxProperties": 16, "additionalProperties": {
        "x-kubernetes-int-or-string": True, "minimum": 0, "pattern": QUANTITY_PATTERN, "maxLength": 64}}),
    (".spec.runtime.env[].name", {"pattern": ENV_NAME_PATTERN}),
    (".status.phase", {"enum": ["Pending", "Progressing", "Paused", "Healthy", "Degraded", "Failed"]}),
]


def test_status_has_no_room_for_kopfs_state():
    # The operator keeps none (event handlers only); the API server prunes what older versions left there.
    assert ".status.kopf" not in dict(nodes(SCHEMA))


@pytest.mark.parametrize(("path", "expected"), FIELD_SCHEMAS, ids=[p for p, _ in FIELD_SCHEMAS])
def test_field_schema(path: str, expected: Schema) -> None:
    node = node_at(path)
    assert {k: node.get(k) for k in expected} == expected


@pytest.mark.parametrize("path", [
    ".spec.rollout",  # defaults of its own fields apply once it is given
    ".spec.autoscaling",
    ".status.conditions",  # an empty-list default would be written on every read
])
def test_no_object_or_list_default(path: str) -> None:
    assert "default" not in node_at(path)


@pytest.mark.parametrize("path", [".spec.rollout.steps[].analysis", ".spec.rollout.trafficRouting.replicas",
                                  ".spec.rollout.steps[].pause"])
def test_empty_models_are_plain_objects(path: str) -> None:
    # `analysis: {}` must survive pruning: an object with no properties keeps its own `{}`.
    node = node_at(path)
    assert node["type"] == "object"
    assert "x-kubernetes-preserve-unknown-fields" not in node
    assert not node.get("required")


@pytest.mark.parametrize(("path", "required"), [
    pytest.param("", ["spec"], id="root"),
    pytest.param(".spec", ["model", "runtime"], id=".spec"),
    pytest.param(".spec.model", ["uri", "version"], id=".spec.model"),
    pytest.param(".spec.autoscaling", ["maxReplicas"], id=".spec.autoscaling"),
])
def test_required(path: str, required: list[str]) -> None:
    assert node_at(path)["required"] == required


def test_status_keeps_only_kopf_unknown_fields() -> None:
    status = node_at(".status")
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert "required" not in status


@pytest.mark.parametrize(("name", "json_path", "kind", "priority"), [
    ("Phase", ".status.phase", "string", 0),
    ("Stable", ".status.stableRevision", "integer", 0),
    ("Canary", ".status.canaryRevision", "integer", 0),
    ("Weight", ".status.canaryWeight", "integer", 0),
    ("Ready", ".status.readyReplicas", "integer", 0),
    ("Model", ".status.modelVersion", "string", 1),
    ("Age", ".metadata.creationTimestamp", "date", 0),
])
def test_printer_column(name: str, json_path: str, kind: str, priority: int) -> None:
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert columns[name]["jsonPath"] == json_path
    assert columns[name]["type"] == kind
    assert columns[name].get("priority", 0) == priority


@pytest.mark.parametrize(("keys", "expected"), [
    (("apiVersion",), "apiextensions.k8s.io/v1"),
    (("metadata", "name"), "modeldeployments.modeldeploy.dev"),
    (("spec", "group"), names.GROUP),
    (("spec", "scope"), "Namespaced"),
    (("spec", "names", "kind"), "ModelDeployment"),
    (("spec", "names", "plural"), "modeldeployments"),
    (("spec", "names", "singular"), "modeldeployment"),
    (("spec", "names", "shortNames"), ["md"]),
    (("spec", "names", "categories"), ["modeldeploy"]),
], ids=lambda v: ".".join(v) if isinstance(v, tuple) else None)
def test_crd_field(keys: tuple[str, ...], expected: Any) -> None:
    value: Any = CRD
    for key in keys:
        value = value[key]
    assert value == expected


def test_single_served_storage_version_with_status_subresource() -> None:
    assert [v["name"] for v in CRD["spec"]["versions"]] == [names.VERSION]
    assert VERSION["served"] is True
    assert VERSION["storage"] is True
    assert VERSION["subresources"] == {"status": {}, "scale": {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}}


@pytest.mark.parametrize(("json_schema", "expected"), [
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "X"}, {"type": "string"}),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"x-kubernetes-int-or-string": True}),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}, {"x-kubernetes-int-or-string": True}),
    ({"$defs": {"A": {"type": "object", "description": "class", "additionalProperties": False}},
      "$ref": "#/$defs/A", "description": "field"}, {"type": "object", "description": "field"}),
    ({"type": "object", "additionalProperties": True},
     {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ({"type": "object", "properties": {}}, {"type": "object"}),
    ({"type": "boolean", "default": False}, {"type": "boolean", "default": False}),
    ({"type": "integer", "default": 0}, {"type": "integer", "default": 0}),
    ({"type": "object", "default": {"a": 1}}, {"type": "object"}),
    ({"type": "array", "items": {"type": "string"}, "default": []}, {"type": "array", "items": {"type": "string"}}),
    ({"type": "string", "const": "x"}, {"type": "string", "enum": ["x"]}),
    ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 0, "exclusiveMinimum": True}),
], ids=["optional", "int-or-string", "optional-int-or-string", "ref-field-description-wins",
        "free-form-map", "empty-model", "false-default", "zero-default", "object-default", "list-default",
        "const", "exclusive-minimum"])
def test_to_structural(json_schema: Schema, expected: Schema) -> None:
    assert to_structural(json_schema) == expected


@pytest.mark.parametrize("json_schema", [
    {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    {"oneOf": [{"type": "string"}]},
], ids=["union", "unique-items", "one-of"])
def test_to_structural_fails_loudly(json_schema: Schema) -> None:
    with pytest.raises(ValueError, match="no structural equivalent"):
        to_structural(json_schema)


def test_committed_crd_is_current() -> None:
    # Same check as `make crds-check`, so a stale file fails the unit tests too.
    assert CRD_FILE.read_text() == render(), "run `make crds` and commit the result"
    assert yaml.safe_load(CRD_FILE.read_text()) == CRD


def test_kubectl_explain_describes_every_field_as_the_reference_does() -> None:
    described = {path: str(node.get("description", "")).strip().removesuffix(".") for path, node in nodes(SCHEMA)}
    rows = [row for root, model in reference.ROOTS for row in reference.rows(root, model)]
    assert [r.path for r in rows if described.get("." + r.path) != r.description] == []
