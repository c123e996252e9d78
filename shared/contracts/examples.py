"""A valid example of each published payload, made from its JSON Schema.

The AsyncAPI document shows one example record per type and version. Writing them by hand
would let them drift from the contracts; made from the schema (a field's own `examples`
first, else the simplest value its type allows), every example follows the contract it
illustrates, and a test validates each against its model and its schema.
"""

from __future__ import annotations

from typing import Any

EXAMPLE_DAY = "2026-01-29"
EXAMPLE_TIME = "2026-01-29T08:30:00+08:00"
EXAMPLE_UUID = "0b6f5a9e-3c1d-4e2f-8a7b-9c0d1e2f3a4b"

_FORMATS = {"date": EXAMPLE_DAY, "date-time": EXAMPLE_TIME, "uuid": EXAMPLE_UUID}


def example(schema: dict[str, Any], defs: dict[str, Any], name: str = "value") -> Any:
    """An instance of `schema`; `defs` resolves `#/$defs/...`, `name` words a free string."""
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"] or schema["anyOf"]
        return example(options[0], defs, name)
    kind = schema.get("type", "object")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {k: example(v, defs, k) for k, v in props.items()}
    if kind == "array":
        return [example(schema.get("items", {}), defs, name)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), _word(name))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(low, 1) if schema.get("maximum", 1) >= 1 else low
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def _word(name: str) -> str:
    """`node_id` -> `node-1`: an id-looking value for ids, the field's name otherwise."""
    return f"{name.removesuffix('_id')}-1" if name.endswith("_id") else name
