"""The API reference (docs/reference.md), generated from the pydantic models.

`python -m modeldeploy.api.reference > docs/reference.md` prints it; a unit test
fails when the committed copy differs. Every field of spec and status gets one
row: its path, type, default, constraints (the same ones the CRD schema and its
CEL rules enforce) and description. A field's own description comes first; for
fields whose model has none, api/descriptions.py says what it means.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from modeldeploy.api import names
from modeldeploy.api.descriptions import NOTES
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus

Schema = dict[str, Any]

ROOTS: tuple[tuple[str, type[BaseModel]], ...] = (("spec", ModelDeploymentSpec), ("status", ModelDeploymentStatus))

@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    constraints: str
    description: str


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """A property's schema standing alone: $refs inlined, Optional unwrapped; the property's own keywords win."""
    while True:
        if "$ref" in node:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            node = {**defs[node["$ref"].removeprefix("#/$defs/")], **rest}
        elif "anyOf" in node:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            branches = [b for b in node["anyOf"] if b != {"type": "null"}]
            if sorted(b.get("type", "") for b in branches) == ["integer", "string"]:
                # each branch's own bounds and pattern hold for values of its type (a quantity: 2 or "500m")
                merged = {k: v for b in branches for k, v in b.items() if k != "type"}
                return {**rest, **merged, "type": "int-or-string"}
            if len(branches) != 1:
                raise ValueError(f"no single type in {node['anyOf']}")
            node = {**branches[0], **rest}
        else:
            return node


def _type(node: Schema, defs: dict[str, Schema]) -> str:
    kind = node.get("type", "")
    if kind == "array":
        return "[]" + _type(_resolve(node["items"], defs), defs)
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return "map[string]" + _type(_resolve(extra, defs), defs)
        if extra is True or node.get("x-kubernetes-preserve-unknown-fields"):
            return "object (free-form)"
        return "object"
    return str(kind)


def _value(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) and value else "`" + json.dumps(value) + "`"


def _default(prop: Schema) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    value = prop["default"]
    if isinstance(value, dict):
        return "`{}`"  # an object whose own fields take their defaults
    return _value(value)


def _range(low: Any, high: Any, what: str) -> str | None:
    if low is not None and high is not None:
        return f"{what}{low} to {high}"
    if low is not None:
        return f"{what}at least {low}"
    if high is not None:
        return f"{what}at most {high}"
    return None


def _constraints(node: Schema, required: bool) -> str:
    parts = ["required"] if required else []
    for part in (_range(node.get("minimum"), node.get("maximum"), ""),
                 _range(node.get("minLength"), node.get("maxLength"), "length "),
                 _range(node.get("minItems"), node.get("maxItems"), "items "),
                 _range(node.get("minProperties"), node.get("maxProperties"), "entries ")):
        if part:
            parts.append(part)
    if "exclusiveMinimum" in node:
        parts.append(f"above {node['exclusiveMinimum']}")
    if "exclusiveMaximum" in node:
        parts.append(f"below {node['exclusiveMaximum']}")
    if "enum" in node:
        parts.append("one of " + ", ".join(_value(v) for v in node["enum"]))
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(f"rule: {rule['message']} (`{rule['rule']}`)")
    for rule in (node.get("items") or {}).get("x-kubernetes-validations", []):
        parts.append(f"rule for each item: {rule['message']} (`{rule['rule']}`)")
    values = node.get("additionalProperties")
    if isinstance(values, dict) and "$ref" not in values:
        each = _constraints(_resolve(values, {}), False)
        if each:
            parts.append(f"each value: {each}")
    return "; ".join(parts)


def _description(prop: Schema, node: Schema, path: str) -> str:
    """The field's own description, else NOTES, else the docstring of the model it holds."""
    if prop.get("description"):
        text = str(prop["description"])
    elif path in NOTES:
        text = NOTES[path]
    else:
        text = str(node.get("description") or "")
    return text.strip().removesuffix(".")


def _walk(node: Schema, defs: dict[str, Schema], path: str, out: list[Row]) -> None:
    required = set(node.get("required", []))
    for name, prop in node.get("properties", {}).items():
        field = f"{path}.{name}"
        resolved = _resolve(prop, defs)
        if resolved.get("type") == "array":
            resolved = {**resolved, "items": _resolve(resolved["items"], defs)}
        out.append(Row(field, _type(resolved, defs), _default(prop), _constraints(resolved, name in required),
                       _description(prop, resolved, field)))
        if resolved.get("type") == "object":
            _walk(resolved, defs, field, out)
        elif resolved.get("type") == "array" and resolved["items"].get("type") == "object":
            _walk(resolved["items"], defs, f"{field}[]", out)


def rows(root: str, model: type[BaseModel]) -> list[Row]:
    """One row per field of a model and of everything below it, in declaration order."""
    schema = model.model_json_schema(by_alias=True)
    out: list[Row] = []
    _walk(schema, schema.get("$defs", {}), root, out)
    return out


def _cell(text: str) -> str:
    """A table cell: pipes escaped; `<` outside code spans too, so `<claim>` is not taken for HTML."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _table(table: list[Row]) -> list[str]:
    lines = ["| Field | Type | Default | Constraints | Description |", "|---|---|---|---|---|"]
    for r in table:
        lines.append("| " + " | ".join(_cell(c) for c in (f"`{r.path}`", f"`{r.type}`", r.default, r.constraints,
                                                          r.description)) + " |")
    return lines


def render() -> str:
    """The reference as Markdown; byte-for-byte stable so the committed copy can be compared."""
    spec_schema = ModelDeploymentSpec.model_json_schema(by_alias=True)
    lines = [
        f"# API reference: {names.KIND} ({names.API_VERSION})",
        "",
        "<!-- Generated by `python -m modeldeploy.api.reference > docs/reference.md` from the pydantic models in",
        "     operator/modeldeploy/api/; do not edit (tests/unit/test_reference.py compares it). -->",
        "",
        f"Namespaced; plural `{names.PLURAL}`, short name `{', '.join(names.SHORT_NAMES)}`. Field paths use the "
        "YAML names; `[]` marks the items of a list.",
        "The API server enforces the constraints (the CRD schema and its CEL rules). The operator reads the "
        "spec with the same models; a spec it cannot honour gets phase `Failed` and nothing that serves is "
        "touched (see troubleshooting.md). `kubectl explain modeldeployments.spec.<field>` shows the same "
        "descriptions from the CRD.",
        "",
        "## spec",
        "",
        "What a team asks for. Rules across fields of `spec`:",
        "",
    ]
    lines += [f"- {rule['message']} (`{rule['rule']}`)" for rule in spec_schema.get("x-kubernetes-validations", [])]
    lines += ["", *_table(rows("spec", ModelDeploymentSpec)), ""]
    lines += [
        "## status",
        "",
        "Written by the operator only.",
        "",
        *_table(rows("status", ModelDeploymentStatus)),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Print the reference."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
