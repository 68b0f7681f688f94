"""A tool call's arguments: parsed from JSON, forgiving scalars sent as strings, and
checked against the tool's schema (the JSON-schema subset the tools use)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .output import ToolError


def parse_arguments(arguments: str | dict | None) -> dict:
    if arguments is None:
        return {}
    if isinstance(arguments, dict):
        return dict(arguments)
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise ToolError(f"arguments are not valid JSON ({e}); send a JSON object") from e
        if isinstance(value, dict):
            return value
    raise ToolError("arguments must be a JSON object")


def coerce(schema: dict, args: dict) -> dict:
    """Forgive scalars sent as strings ("10" for an integer, "true" for a boolean)."""
    props = schema.get("properties", {})
    out = dict(args)
    for key, value in args.items():
        typ = props.get(key, {}).get("type")
        if not isinstance(value, str):
            continue
        v = value.strip()
        if typ == "integer" and re.fullmatch(r"-?[0-9]+", v):
            out[key] = int(v)
        elif typ == "boolean" and v.lower() in ("true", "false"):
            out[key] = v.lower() == "true"
    return out


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def validate(schema: dict, value: Any, where: str = "") -> list[str]:
    """Problems with `value` against `schema` (empty if valid). Supports type, properties,
    required, additionalProperties: false, enum, items, minimum/maximum.
    An optional property given as null counts as absent (small models send that)."""
    label = where or "arguments"
    typ = schema.get("type")
    if typ is not None:
        types = typ if isinstance(typ, list) else [typ]
        if not any(_TYPES[t](value) for t in types):
            return [
                f"{label} must be {' or '.join(_article(t) for t in types)}, got {_kind(value)}"
            ]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        problems.append(f"{label} must be one of {allowed}, got {json.dumps(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{label} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{label} must be <= {schema['maximum']}")
    if isinstance(value, dict):
        props: dict = schema.get("properties", {})
        required = schema.get("required", [])
        for key in required:
            if value.get(key) is None:
                problems.append(f"missing required '{key}'")
        if schema.get("additionalProperties") is False:
            unknown = [k for k in value if k not in props]
            if unknown:
                allowed = ", ".join(props) or "none"
                problems.append(
                    f"unknown argument{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(repr(k) for k in unknown)} (allowed: {allowed})"
                )
        for key, sub in props.items():
            if key in value and not (value[key] is None and key not in required):
                problems += validate(sub, value[key], f"'{key}'")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(schema["items"], item, f"{label}[{i}]")
    return problems


def object_schema(properties: dict, required: list[str]) -> dict:
    """The JSON schema of a tool's arguments: an object with exactly these properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def signature(schema: dict) -> str:
    """A one-line summary of an arguments schema, e.g. `path: string, start_line?: integer`."""
    required = set(schema.get("required", []))
    parts = []
    for key, sub in schema.get("properties", {}).items():
        typ = sub.get("type", "any")
        if typ == "array":
            typ = f"array of {sub.get('items', {}).get('type', 'any')}"
        parts.append(f"{key}{'' if key in required else '?'}: {typ}")
    return ", ".join(parts)


def _article(t: str) -> str:
    return {"object": "an object", "integer": "an integer", "array": "an array"}.get(t, f"a {t}")


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return f"string {json.dumps(v[:40])}"
    if isinstance(v, list):
        return "array"
    return "object"
