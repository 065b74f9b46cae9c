"""Invalid ModelDeployment specs, generated from the API's own schema: each has exactly one defect.

The defects come from the CRD schema the pydantic models generate (api/crd.py), walked over a valid
spec: for every field, a value of the wrong type, one past its range, length or item limit, one that
breaks its pattern or enum, an unknown field beside it; for every map whose keys are checked, a bad
key; and, by hand, one breach of each rule across fields (the CEL rules and their pydantic twins),
the operator's reserved label and environment names. A defect knows the path the API server should
name when it refuses it. Pure: tests/e2e/test_bad_specs.py applies them to a real API server.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from modeldeploy.api import names
from modeldeploy.api.crd import openapi_schema
from modeldeploy.api.spec import RESERVED_ENV, RESERVED_LABELS, ModelDeploymentSpec

JSON = dict[str, Any]
SCHEMA: JSON = openapi_schema(ModelDeploymentSpec, "spec")
UNKNOWN_FIELD = "bogusField"
# One example of each JSON type; a wrong-type defect takes one that is not the field's type.
SAMPLES: dict[str, Any] = {"string": "text", "integer": 7, "number": 0.5, "boolean": True,
                           "array": ["x"], "object": {"x": 1}}


@dataclass(frozen=True)
class Defect:
    """One thing wrong with a spec: what it is, the path the refusal should name, and the spec it makes."""

    kind: str          # wrong-type, out-of-range, too-long, too-many, pattern, enum, unknown-field, ...
    path: str          # as the API server writes it: spec.runtime.env[0].name
    spec: JSON

    def __str__(self) -> str:
        return f"{self.kind} at {self.path}"


Mutation = Callable[[JSON], None]


def _set(spec: JSON, path: list[str | int], value: Any) -> JSON:
    out = copy.deepcopy(spec)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _text(path: list[str | int]) -> str:
    out = "spec"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _type_of(node: JSON) -> str:
    return "int-or-string" if node.get("x-kubernetes-int-or-string") else node.get("type", "object")


def _violating_strings(pattern: str) -> list[str]:
    """Strings that the pattern refuses, from a few a user really types."""
    tries = ["Bad Value!", "-leading-dash", "UPPER", "has space", "trailing-", "a..b", "", "9lives", "no/slash/es",
             "ftp://host/x", "10x", "-1", "5 m"]
    return [t for t in tries if not re.search(pattern, t)]


def field_defects(spec: JSON, schema: JSON = SCHEMA, path: list[str | int] | None = None
                  ) -> list[st.SearchStrategy[Defect]]:
    """Strategies for the single-field defects of every field the spec has, and of absent optional
    scalars (set to a bad value)."""
    path = path or []
    out: list[st.SearchStrategy[Defect]] = []
    kind = _type_of(schema)
    here = _text(path)
    if path:
        wrong = [v for t, v in SAMPLES.items() if t != kind and not (kind == "number" and t == "integer")
                 and not (kind == "int-or-string" and t in ("string", "integer"))]
        out.append(st.sampled_from(wrong).map(lambda v, p=path: Defect("wrong-type", _text(p), _set(spec, p, v))))
    if kind == "integer":
        if "maximum" in schema:
            out.append(st.integers(schema["maximum"] + 1, schema["maximum"] + 10 ** 6).map(
                lambda v, p=path: Defect("out-of-range", _text(p), _set(spec, p, v))))
        if "minimum" in schema:
            out.append(st.integers(schema["minimum"] - 10 ** 6, schema["minimum"] - 1).map(
                lambda v, p=path: Defect("out-of-range", _text(p), _set(spec, p, v))))
    if kind == "string" and path:
        if "maxLength" in schema:
            out.append(st.integers(1, 40).map(lambda extra, p=path, n=schema["maxLength"]: Defect(
                "too-long", _text(p), _set(spec, p, "a" * (n + extra)))))
        if schema.get("minLength", 0) >= 1:
            out.append(st.just(Defect("too-short", here, _set(spec, path, ""))))
        if "pattern" in schema and _violating_strings(schema["pattern"]):
            out.append(st.sampled_from(_violating_strings(schema["pattern"])).map(
                lambda v, p=path: Defect("pattern", _text(p), _set(spec, p, v))))
        if "enum" in schema:
            out.append(st.sampled_from(["Sometimes", "exists", "NoSuchThing"]).map(
                lambda v, p=path: Defect("enum", _text(p), _set(spec, p, v))))
    if kind == "int-or-string" and path:
        if "pattern" in schema:
            out.append(st.sampled_from(["lots", "1.5 Gi", "-2", "2Gb", "1e"]).map(
                lambda v, p=path: Defect("pattern", _text(p), _set(spec, p, v))))
        if "minimum" in schema:
            out.append(st.integers(-10 ** 6, schema["minimum"] - 1).map(
                lambda v, p=path: Defect("out-of-range", _text(p), _set(spec, p, v))))
    value = _get(spec, path)
    if kind == "object" and isinstance(value, dict):
        if "properties" in schema:
            out.append(st.just(Defect("unknown-field", _text([*path, UNKNOWN_FIELD]),
                                      _set(spec, [*path, UNKNOWN_FIELD], "x"))))
            for name, sub in schema["properties"].items():
                if name in value:
                    out += field_defects(spec, sub, [*path, name])
                elif _type_of(sub) in ("integer", "string", "int-or-string") and ("pattern" in sub or "maximum" in sub
                                                                                 or "enum" in sub):
                    # An absent optional field, given a bad value: the defects of a spec that sets it.
                    out += field_defects(_set(spec, [*path, name], _sample(sub)), sub, [*path, name])
        elif "additionalProperties" in schema:
            for key in value:
                out += field_defects(spec, schema["additionalProperties"], [*path, key])
            if any("k.matches(" in r["rule"] for r in schema.get("x-kubernetes-validations", [])):
                out.append(st.sampled_from(["bad key!", "-dash", "a/b/c", "x" * 64]).map(
                    lambda k, p=path, v=value: Defect("bad-key", _text(p), _set(spec, p, {**v, k: "1"}))))
        if "maxProperties" in schema:
            n = schema["maxProperties"] + 1
            sample = _sample(schema["additionalProperties"])
            out.append(st.just(Defect("too-many", here, _set(spec, path, {f"k{i}": sample for i in range(n)}))))
    if kind == "array" and isinstance(value, list):
        for i, _ in enumerate(value):
            out += field_defects(spec, schema["items"], [*path, i])
        if "maxItems" in schema and value:
            out.append(st.just(Defect("too-many", here, _set(spec, path, value * (schema["maxItems"] + 1)))))
    return out


def _get(spec: JSON, path: list[str | int]) -> Any:
    node: Any = spec
    for part in path:
        node = node[part]
    return node


def _sample(schema: JSON) -> Any:
    """A valid value of a scalar field (the starting point of its defects)."""
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("x-kubernetes-int-or-string"):
        return "1"
    if schema.get("type") == "integer":
        return schema.get("minimum", 1)
    return "a"


# -- rules across fields, by hand: each breaks one, and names the path of the object that holds it ------------
def _breach(path: str, change: Callable[[JSON], None]) -> Callable[[JSON], Defect]:
    def make(spec: JSON) -> Defect:
        out = copy.deepcopy(spec)
        change(out)
        return Defect("forbidden-combination", path, out)
    return make


def _steps(s: JSON, steps: list[JSON]) -> None:
    s["rollout"]["steps"] = steps


RULE_BREACHES: list[Callable[[JSON], Defect]] = [
    _breach("spec.runtime", lambda s: s["runtime"].update(preset="mlserver")),
    _breach("spec.runtime", lambda s: s["runtime"].pop("image")),
    _breach("spec.rollout.steps[0]", lambda s: s["rollout"]["steps"][0].update(pause={})),
    _breach("spec.rollout.steps[0]", lambda s: s["rollout"]["steps"].__setitem__(0, {})),
    _breach("spec.rollout", lambda s: _steps(s, [{"analysis": {}}, {"setWeight": 50}])),
    _breach("spec.rollout.trafficRouting", lambda s: s["rollout"].update(
        trafficRouting={"replicas": {}, "istio": {"virtualService": "vs"}})),
    _breach("spec.rollout", lambda s: s["rollout"].update(
        maxSurge=0, trafficRouting={"istio": {"virtualService": "vs"}}, steps=[{"pause": {"duration": "1s"}}])),
    _breach("spec.rollout", lambda s: (s["rollout"].pop("trafficRouting", None), _steps(s, [
        {"setHeaderRoute": {"match": [{"name": "x-canary", "value": "1"}]}}, {"setWeight": 50}]))),
    _breach("spec.rollout", lambda s: (s["rollout"].pop("steps", None), s["rollout"].update(
        bake={"duration": "10m"}))),
    _breach("spec.rollout", lambda s: (s["rollout"].pop("trafficRouting", None), _steps(s, [
        {"mirror": {"percent": 10}}, {"setWeight": 50}]))),
    # a compare metric without a mirror step (the steps the base spec has are kept)
    _breach("spec.rollout", lambda s: s["rollout"]["analysis"]["metrics"].append(
        {"name": "agreement", "compare": {"maxDisagreement": 0.05}})),
    _breach("spec.rollout.analysis", lambda s: s["rollout"]["analysis"]["metrics"].extend(
        {"name": n, "compare": {"maxDisagreement": 0.05}} for n in ("a", "b"))),
    _breach("spec.rollout.analysis.warmup", lambda s: s["rollout"]["analysis"].update(warmup={})),
    _breach("spec.rollout.analysis.warmup", lambda s: s["rollout"]["analysis"].update(warmup={"requests": 100})),
    _breach("spec.autoscaling", lambda s: s.update(autoscaling={"minReplicas": 5, "maxReplicas": 2})),
    _breach("spec.rollout.analysis.metrics[0]", lambda s: s["rollout"]["analysis"]["metrics"][0].update(
        prometheus={"provider": "p", "query": "up"})),
    _breach("spec.rollout.analysis.metrics[0]", lambda s: s["rollout"]["analysis"]["metrics"].__setitem__(
        0, {"name": "m", "prometheus": {"provider": "p", "query": "up"}})),
    _breach("spec.rollout.analysis.metrics[0].webhook", lambda s: s["rollout"]["analysis"]["metrics"][0]["webhook"]
            .update(url="http://127.0.0.1:9/")),
    _breach("spec.rollout.analysis.metrics[0].webhook", lambda s: s["rollout"]["analysis"]["metrics"][0]["webhook"]
            .pop("provider")),
    _breach("spec.rollout.analysis.metrics[0].thresholdRange", lambda s: s["rollout"]["analysis"]["metrics"][0]
            .update(thresholdRange={})),
    _breach("spec.rollout.analysis.metrics", lambda s: s["rollout"]["analysis"]["metrics"].append(
        copy.deepcopy(s["rollout"]["analysis"]["metrics"][0]))),
    _breach("spec.template.tolerations[0]", lambda s: s["template"]["tolerations"][0].update(
        operator="Exists", value="x")),
    _breach("spec.template.tolerations[0]", lambda s: s["template"]["tolerations"][0].update(tolerationSeconds=5)),
    _breach("spec.template.tolerations[0]", lambda s: s["template"]["tolerations"].__setitem__(0, {"value": "x"})),
    *(_breach("spec.runtime.env[0]", lambda s, n=n: s["runtime"]["env"][0].update(name=n)) for n in RESERVED_ENV),
    *(_breach("spec.template.metadata", lambda s, k=k: s["template"]["metadata"]["labels"].update({k: "x"}))
      for k in (*RESERVED_LABELS, names.LABEL_MD, names.LABEL_REVISION)),
    _breach("spec.template.metadata", lambda s: s["template"]["metadata"]["annotations"].update(
        {names.ANN_OUTCOME: "x"})),
]


def defects(spec: JSON) -> st.SearchStrategy[Defect]:
    """Every defect of a valid spec, one at a time: two in three of one field, one in three across fields."""
    fields = st.one_of(*field_defects(spec))
    rules = st.sampled_from(RULE_BREACHES).map(lambda make: make(spec))
    # (one_of would flatten the field strategies into its branches and draw a rule breach once in 150)
    return st.sampled_from(("field", "field", "rule")).flatmap(lambda which: fields if which == "field" else rules)
