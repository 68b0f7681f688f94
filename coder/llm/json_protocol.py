"""The json tool protocol, for chat templates without tool support.

The tools are described in the system message, the reply is constrained (by a
llama.cpp grammar, grammar.py, or else by `response_format`) to one JSON object ({"tool": NAME, "arguments": {...}} or
{"answer": TEXT}), and the history is re-rendered as the template can show it (past
calls as JSON text, tool results as user messages). The JSON reply becomes a normal
tool call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from coder.chat import ToolCall
from coder.llm.text_calls import dump_args, make_call, new_call_id, parse_text_calls

JSON_SCHEMA_NAME = "tool_call_or_answer"


def response_format(tools: list[dict]) -> dict:
    """json_schema: anyOf one branch per tool plus the final-answer branch."""
    branches = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        branches.append(
            {
                "type": "object",
                "properties": {"tool": {"const": fn["name"]}, "arguments": params},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    branches.append(
        {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        }
    )
    return {
        "type": "json_schema",
        "json_schema": {"name": JSON_SCHEMA_NAME, "schema": {"anyOf": branches}},
    }


def tools_text(tools: list[dict]) -> str:
    """The tool list in words, for templates that drop `tools`.

    One line per tool: on a 2-core CPU every prompt token costs about 4 ms, and a
    small model picks better from a short list. Argument types need no words: the
    grammar (or response_format's schema) enforces them.
    """
    if not tools:
        return 'Every reply is one JSON object: {"answer": "<text for the user>"}'
    lines = [
        "# Tools",
        'Every reply is one JSON object: {"tool": "<name>", "arguments": {...}} to use a tool,',
        'or {"answer": "<text for the user>"} when the task is done.',
    ]
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {}
        required = set(params.get("required") or [])
        args = ", ".join(
            name if name in required else f"{name}?" for name in params.get("properties") or {}
        )
        lines.append(f"- {fn['name']}({args}): {(fn.get('description') or '').strip()}")
    return "\n".join(lines)


def render_json_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """Canonical messages -> what a tool-less ChatML template can render.

    SmolLM2's template prints any role name verbatim (`<|im_start|>tool`), a
    role the model never saw, and drops `tool_calls`; so past calls become the
    assistant's JSON text and results become user messages.
    """
    names: dict[str, str] = {}
    out: list[dict] = []
    text = tools_text(tools)
    if messages and messages[0].get("role") == "system":
        out.append({"role": "system", "content": f"{_text(messages[0].get('content'))}\n\n{text}"})
        rest = messages[1:]
    else:
        out.append({"role": "system", "content": text})
        rest = messages
    for msg in rest:
        role = msg.get("role")
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            if calls:
                parts = []
                for call in calls:
                    fn = call.get("function") or {}
                    names[call.get("id", "")] = fn.get("name", "")
                    parts.append(call_json(fn.get("name", ""), fn.get("arguments") or "{}"))
                content = "\n".join(parts)
            else:
                content = json.dumps({"answer": _text(msg.get("content"))}, ensure_ascii=False)
            out.append({"role": "assistant", "content": content})
        elif role == "tool":
            name = names.get(msg.get("tool_call_id", ""), "") or msg.get("name") or "the tool"
            out.append(
                {"role": "user", "content": f"Result of {name}:\n{_text(msg.get('content'))}"}
            )
        else:
            out.append({"role": role, "content": _text(msg.get("content"))})
    return out


def call_json(name: str, arguments: str) -> str:
    """A tool call as the json protocol's reply text."""
    try:
        args: Any = json.loads(arguments)
    except ValueError:
        args = arguments  # keep what the model wrote, even if broken
    return json.dumps({"tool": name, "arguments": args}, ensure_ascii=False)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # typed content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def parse_json_reply(
    raw: str, finish_reason: str | None
) -> tuple[str | None, list[ToolCall], str | None]:
    """The json protocol's reply -> (content, tool calls, parse error)."""
    text = strip_fence(raw)
    obj = loads_object(text)
    if isinstance(obj, dict):
        if isinstance(obj.get("tool"), str):
            args = obj.get("arguments", {})
            arguments = args if isinstance(args, str) else dump_args(args)
            return None, [make_call(new_call_id(), obj["tool"], arguments)], None
        if isinstance(obj.get("answer"), str):
            return obj["answer"], [], None
    # not the schema (a server without json_schema support, or cut short)
    content, calls, error = parse_text_calls(raw)
    if calls or error:
        return content, calls, error
    if finish_reason == "length":
        return raw, [], "the reply was cut at max_tokens before the JSON was complete"
    if text.lstrip().startswith("{"):
        return (
            raw,
            [],
            (
                'the reply is not a valid JSON object of the form {"tool": NAME, "arguments": {...}} '
                'or {"answer": TEXT}'
            ),
        )
    return raw or None, [], None  # plain prose: take it as the answer


def loads_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


_FENCE = re.compile(r"^\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


def strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


# -- streaming the json protocol's answer -----------------------------------

_ANSWER_START = re.compile(r'\s*(?:```[\w-]*\s*)?\{\s*"answer"\s*:\s*"')
_NOT_ANSWER = re.compile(r'\s*(?:```[\w-]*\s*)?\{\s*"(?!a|$)|\s*[^\s`{]')


class AnswerStream:
    """Incrementally extracts the "answer" string from a streamed JSON reply."""

    def __init__(self) -> None:
        self.buf = ""
        self.state = "head"  # head -> body -> end (or off: not an answer)
        self.pending = ""
        self.emitted = ""

    def feed(self, text: str) -> str:
        if self.state == "head":
            self.buf += text
            m = _ANSWER_START.match(self.buf)
            if m is None:
                if _NOT_ANSWER.match(self.buf) or len(self.buf) > 200:
                    self.state = "off"
                return ""
            self.state = "body"
            text = self.buf[m.end() :]
        if self.state != "body":
            return ""
        self.pending += text
        raw, closed = _string_prefix(self.pending)
        self.pending = self.pending[len(raw) :]
        if closed:
            self.state = "end"
        if not raw:
            return ""
        try:
            piece = json.loads(f'"{raw}"', strict=False)
        except ValueError:
            piece = raw
        self.emitted += piece
        return piece


def _string_prefix(s: str) -> tuple[str, bool]:
    """The longest prefix of a JSON string body that decodes on its own, and
    whether the closing quote was reached (the prefix then excludes it)."""
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            return s[:i], True
        if ch == "\\":
            if i + 1 >= n:
                break
            if s[i + 1] == "u":
                if i + 6 > n:
                    break
                code = (
                    int(s[i + 2 : i + 6], 16)
                    if re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2 : i + 6])
                    else 0
                )
                if 0xD800 <= code < 0xDC00:  # high surrogate: needs its pair
                    if i + 12 > n:
                        break
                    i += 12
                    continue
                i += 6
                continue
            i += 2
            continue
        i += 1
    return s[:i], False
