"""The json protocol's reply as a llama.cpp grammar (GBNF), with compact separators.

`response_format` leaves whitespace to llama.cpp's schema converter, which allows a
newline and twenty spaces or tabs at every separator: a small model spends its tokens
there, and what it samples is not the compact JSON its history shows. This grammar
accepts the same replies ({"tool": NAME, "arguments": {...}} or {"answer": TEXT}) with
at most one space between tokens, properties in their declared order.

It covers the JSON schema coder's own tools are declared with (objects, strings, enums,
integers, numbers, booleans, arrays); a schema using anything else gives None and the
caller keeps `response_format`. Number bounds are left to argument validation.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import orjson

# Keys that say nothing about the shape of the value.
_NOTES = {"description", "title", "default", "examples", "$comment"}
_BASE = r"""
s ::= " "?
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
natural ::= [1-9] [0-9]{0,15}
integer ::= "-"? ("0" | natural)
number ::= integer ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
"""


class Unsupported(Exception):
    """A schema feature this grammar does not express."""


def reply_grammar(tools: list[dict]) -> str | None:
    """GBNF for one reply: a call of one of `tools`, or the final answer; None when a
    tool's schema needs more than this grammar expresses."""
    # every model call of a session offers the same tools: build their grammar once
    # (about 0.4 ms each time otherwise, on the path of every request)
    return _grammar(orjson.dumps(tools))


@functools.lru_cache(maxsize=8)
def _grammar(tools_json: bytes) -> str | None:
    tools = orjson.loads(tools_json)
    rules: dict[str, str] = {}
    branches = []
    try:
        for i, tool in enumerate(tools):
            fn = tool.get("function", tool)
            params = fn.get("parameters") or {"type": "object", "properties": {}}
            args = _value(params, f"t{i}", rules)
            rules[f"call{i}"] = (
                f'"{{" s {_json("tool")} s ":" s {_json(fn["name"])} s "," s '
                f'{_json("arguments")} s ":" s {args} s "}}"'
            )
            branches.append(f"call{i}")
    except Unsupported:
        return None
    rules["answer"] = f'"{{" s {_json("answer")} s ":" s string s "}}"'
    branches.append("answer")
    lines = [f"root ::= {' | '.join(branches)}"]
    lines += [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines) + _BASE


def _value(schema: Any, name: str, rules: dict[str, str]) -> str:
    """The rule (or inline expression) for one value of `schema`; new rules go in `rules`."""
    if not isinstance(schema, dict):
        raise Unsupported(schema)
    shape = {k: v for k, v in schema.items() if k not in _NOTES}
    if "enum" in shape:
        return "(" + " | ".join(_json(v) for v in shape["enum"]) + ")"
    kind = shape.get("type")
    extra = set(shape) - {"type"}
    if kind == "string" and not extra:
        return "string"
    if kind == "boolean" and not extra:
        return "boolean"
    if kind == "number" and extra <= {"minimum", "maximum"}:
        return "number"
    if kind == "integer" and extra <= {"minimum", "maximum"}:
        low = shape.get("minimum")
        if low is None or low < 0:
            return "integer"
        return "natural" if low >= 1 else '("0" | natural)'
    if kind == "array" and extra == {"items"}:
        item = _value(shape["items"], f"{name}i", rules)
        rules[name] = f'"[" s ({item} (s "," s {item})*)? s "]"'
        return name
    if kind == "object" and extra <= {"properties", "required", "additionalProperties"}:
        if shape.get("additionalProperties", False) is not False:
            raise Unsupported("additionalProperties")
        return _object(shape, name, rules)
    raise Unsupported(shape)


def _object(schema: dict, name: str, rules: dict[str, str]) -> str:
    """Properties in their declared order; the optional ones may be left out.

    `{name}f{i}`: properties i.. with none written yet; `{name}r{i}`: properties i.. after
    one was written (so each is preceded by a comma).
    """
    props = list((schema.get("properties") or {}).items())
    required = set(schema.get("required") or ())
    if required - {key for key, _ in props}:
        raise Unsupported("a required property without a schema")
    n = len(props)
    rules[f"{name}f{n}"] = '""'
    rules[f"{name}r{n}"] = '""'
    for i in range(n - 1, -1, -1):
        key, sub = props[i]
        pair = f'{_json(key)} s ":" s {_value(sub, f"{name}p{i}", rules)}'
        after, first = f"{name}r{i + 1}", f"{name}f{i + 1}"
        if key in required:
            rules[f"{name}r{i}"] = f'"," s {pair} {after}'
            rules[f"{name}f{i}"] = f"{pair} {after}"
        else:
            rules[f"{name}r{i}"] = f'("," s {pair})? {after}'
            rules[f"{name}f{i}"] = f"{pair} {after} | {first}"
    return f'("{{" s {name}f0 s "}}")'


def _json(value: Any) -> str:
    """A GBNF literal matching `value` written as JSON."""
    text = json.dumps(value, ensure_ascii=False)
    return '"' + re.sub(r'(["\\])', r"\\\1", text) + '"'
