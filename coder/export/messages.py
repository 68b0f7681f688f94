"""One message in a row's format: TRL (arguments as objects) or OpenAI (as strings)."""

from __future__ import annotations

import copy
from typing import Any

import orjson

_OPENAI_MSG_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")


def _parse_args(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError as e:
            raise ValueError("tool-call arguments are not JSON") from e
    return args


def args_are_json(args: Any) -> bool:
    try:
        _parse_args(args)
    except ValueError:
        return False
    return True


def has_broken_args(m: dict) -> bool:
    """A call whose arguments are not JSON (the agent answered it with an error)."""
    return any(
        not args_are_json((tc.get("function") or {}).get("arguments", ""))
        for tc in m.get("tool_calls") or []
    )


def trl_message(m: dict) -> dict:
    """TRL conversational: tool-call arguments as JSON objects."""
    m = copy.deepcopy(m)
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        if "arguments" in fn:
            fn["arguments"] = _parse_args(fn["arguments"])
    return m


def openai_message(m: dict, compact: bool = True) -> dict:
    """OpenAI fine-tuning: only known keys, tool-call arguments as JSON strings (compact,
    or with ``compact=False`` a string kept as the model wrote it)."""
    out = {k: copy.deepcopy(m[k]) for k in _OPENAI_MSG_KEYS if k in m}
    if out.get("role") == "assistant" and out.get("tool_calls"):
        calls = []
        for i, tc in enumerate(out["tool_calls"]):
            fn = dict(tc.get("function") or {})
            a = fn.get("arguments", "")
            if not isinstance(a, str) or (compact and args_are_json(a)):
                a = orjson.dumps(_parse_args(a)).decode()  # else kept as the model wrote it
            fn["arguments"] = a
            calls.append({"id": tc.get("id") or f"call_{i}", "type": "function", "function": fn})
        out["tool_calls"] = calls
    return out
