"""Tool calls the model wrote as text: `<tool_call>` tags, fenced JSON, bare JSON."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from coder.chat import ToolCall


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def make_call(call_id: str, name: str, arguments: str) -> ToolCall:
    if not arguments.strip():
        arguments = "{}"  # a call without arguments
    error = None
    try:
        if not isinstance(json.loads(arguments), dict):
            error = "arguments must be a JSON object"
    except ValueError as exc:
        error = f"arguments are not valid JSON ({exc})"
    if not name:
        error = "the call has no tool name"
    return ToolCall(call_id, name, arguments, error)


def dump_args(args: Any) -> str:
    return json.dumps(args, ensure_ascii=False)


# -- tool calls written as text ---------------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json|tool_call)?[ \t]*\n(.*?)\n?```", re.S)
_NAME_KEYS = ("name", "tool")
_ARG_KEYS = ("arguments", "parameters")


def parse_text_calls(text: str) -> tuple[str | None, list[ToolCall], str | None]:
    """Find tool calls the model wrote as text.

    Recognises `<tool_call>{...}</tool_call>` (closing tag optional at the end),
    ```json fenced blocks and bare JSON objects with name/arguments (or
    tool/arguments). Returns (remaining text or None, calls, parse error): the
    error is set when a <tool_call> block was found but could not be read.
    """
    if not text or "{" not in text:
        return text or None, [], None
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    errors: list[str] = []
    if "<tool_call>" in text:
        for m in _TAGGED.finditer(text):
            obj, err = _call_object(m.group(1))
            if obj is None:
                errors.append(f"a <tool_call> block is not valid JSON ({err})")
            else:
                calls.append(obj)
                spans.append(m.span())
    if not calls and "```" in text:
        for m in _FENCED.finditer(text):
            obj, _ = _call_object(m.group(1))
            if obj is not None:
                calls.append(obj)
                spans.append(m.span())
    if not calls and not errors:
        decoder = json.JSONDecoder()
        for m in re.finditer(r"\{\s*\"", text):
            if spans and m.start() < spans[-1][1]:
                continue
            try:
                value, end = decoder.raw_decode(text, m.start())
            except ValueError:
                continue
            call = _as_call(value)
            if call is not None:
                calls.append(call)
                spans.append((m.start(), end))
    if not calls:
        if errors:
            return text, [], "; ".join(errors) + _FORMAT_HINT
        return text, [], None
    rest, last = [], 0
    for start, end in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    remaining = "".join(rest).strip()
    return remaining or None, calls, None


_FORMAT_HINT = '; expected <tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>'


def _call_object(block: str) -> tuple[ToolCall | None, str | None]:
    try:
        value = json.loads(block)
    except ValueError as exc:
        return None, str(exc)
    call = _as_call(value)
    return (call, None) if call else (None, "no name/arguments keys")


def _as_call(value: Any) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None or not any(k in value for k in _ARG_KEYS):
        return None
    args = next(value[k] for k in _ARG_KEYS if k in value)
    arguments = args if isinstance(args, str) else dump_args(args)
    return make_call(new_call_id(), name, arguments)
