"""Tool registry: schemas for the model, argument validation, and dispatch.

Each tool is a plain function `fn(ctx, **arguments) -> str` plus a JSON schema.
`dispatch` never raises (except KeyboardInterrupt): unknown tools, bad arguments
and failures come back as an error result the model can read and correct.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workspace import Workspace


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments object
    fn: Callable[..., str]  # fn(ctx, **arguments) -> output text; raise ToolError for a clean error
    needs_approval: bool = False


class ToolError(Exception):
    """A failure to report to the model as the tool's (error) output."""


@dataclass
class ToolContext:
    workspace: Workspace
    # approve(tool_name, what) -> True to run it; False, or a str giving the reason, to refuse
    approve: Callable[[str, str], bool | str] = lambda name, what: False
    approval: str = "ask"  # ask | auto | never  (config tools.shell.approval)
    shell_timeout: float = 120.0
    max_output_bytes: int = 32768
    cancel: threading.Event | None = None  # set by the UI on Ctrl-C; long tools check it


@dataclass
class ToolResult:
    output: str
    is_error: bool
    duration_ms: float


REGISTRY: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    REGISTRY[tool.name] = tool
    return tool


def schemas(names: Iterable[str] | None = None) -> list[dict]:
    """OpenAI `tools` entries for the named tools (all, in registration order, if None)."""
    chosen = list(REGISTRY) if names is None else [n for n in names if n in REGISTRY]
    return [
        {
            "type": "function",
            "function": {
                "name": REGISTRY[n].name,
                "description": REGISTRY[n].description,
                "parameters": REGISTRY[n].parameters,
            },
        }
        for n in chosen
    ]


def dispatch(name: str, arguments: str | dict, ctx: ToolContext) -> ToolResult:
    """Run a tool call. Never raises except KeyboardInterrupt. The result's duration is the
    tool's own work: time spent waiting for the user's approval is left out."""
    start = time.perf_counter()
    waited = [0.0]
    ask = ctx.approve

    def timed_approve(tool_name: str, what: str) -> bool | str:
        t = time.perf_counter()
        try:
            return ask(tool_name, what)
        finally:
            waited[0] += time.perf_counter() - t

    try:
        # a copy: the shared context may be used by another thread meanwhile
        tctx = replace(ctx, approve=timed_approve)
        output, is_error = _run(name, arguments, tctx), False
    except ToolError as e:
        output, is_error = error_text(str(e)), True
    except KeyboardInterrupt:
        raise
    except Exception as e:  # the model gets a readable error instead of a crash
        from .workspace import WorkspaceError

        if isinstance(e, WorkspaceError):
            output = error_text(str(e))
        else:
            output = error_text(f"{name} failed: {type(e).__name__}: {e}")
        is_error = True
    output = cap_text(output, ctx.max_output_bytes)
    elapsed = time.perf_counter() - start - waited[0]
    return ToolResult(output, is_error, max(0.0, elapsed) * 1000.0)


_ERROR_PREFIX = re.compile(r"\A(?:\s*(?:error|fatal)\s*:)+\s*", re.IGNORECASE)


def error_text(message: str) -> str:
    """`message` as an error result: with one leading "error: ", however many (or "fatal: ",
    as git writes) it had."""
    return "error: " + (_ERROR_PREFIX.sub("", message) or "failed")


def _run(name: str, arguments: str | dict, ctx: ToolContext) -> str:
    tool = REGISTRY.get(name) if isinstance(name, str) else None
    if tool is None:
        raise ToolError(f"unknown tool '{name}'. Available tools: {', '.join(REGISTRY)}")
    args = coerce(tool.parameters, parse_arguments(arguments))
    problems = validate(tool.parameters, args)
    if problems:
        raise ToolError(
            f"bad arguments for {tool.name}: {'; '.join(problems)}. "
            f"Expected: {tool.name}({signature(tool.parameters)})"
        )
    args = {k: v for k, v in args.items() if v is not None}
    return tool.fn(ctx, **args)


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


# -- a validator for the JSON-schema subset the tools use ---------------------

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


# -- helpers for tool modules --------------------------------------------------


def check_approval(ctx: ToolContext, tool_name: str, what: str) -> None:
    """Apply the approval policy (ask | auto | never) to an action; raise ToolError if refused."""
    policy = ctx.approval
    if policy == "auto":
        return
    if policy == "never":
        raise ToolError(
            f"{tool_name} is disabled by configuration (approval: never). "
            "Do not call it again; use the file and search tools, or tell the user what to run."
        )
    try:
        answer = ctx.approve(tool_name, what)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise ToolError(
            f"{tool_name} was not run: asking the user for approval failed ({e})"
        ) from e
    # a str is a refusal with its reason (bool("reason") would approve it)
    if isinstance(answer, str) or not answer:
        reason = answer.strip().rstrip(".") if isinstance(answer, str) else ""
        raise ToolError(
            f"{tool_name} was not run: it was not approved ({what})"
            + (f"; {reason}" if reason else "")
            + ". Do not retry the same action; continue without it or tell the user what to run."
        )


def cap_text(text: str, limit: int) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else its head and tail with the middle elided."""
    data = text.encode("utf-8", errors="surrogateescape")
    if limit <= 0 or len(data) <= limit:
        return text
    return cap_bytes(data, len(data), limit)


def cap_bytes(data: bytes, total: int, limit: int, tail: bytes = b"") -> str:
    """Head and tail of an output of `total` bytes, decoded, with a note of what was elided.
    `data` holds the head (or everything); `tail` the last bytes if kept separately."""
    if not tail:
        if len(data) <= limit:
            return data.decode("utf-8", errors="replace")
        half = limit // 2
        head, tail = data[:half], data[len(data) - (limit - half) :]
    else:
        head = data
    elided = total - len(head) - len(tail)
    # cut at line boundaries when one is near, so no half lines are shown
    nl = head.rfind(b"\n", max(0, len(head) - 200))
    if nl >= 0:
        elided += len(head) - nl - 1
        head = head[: nl + 1]
    nl = tail.find(b"\n", 0, 200)
    if nl >= 0:
        elided += nl + 1
        tail = tail[nl + 1 :]
    note = f"\n[... {elided} bytes elided from the middle of the output ...]\n"
    return (
        head.decode("utf-8", errors="replace").rstrip("\n")
        + note
        + tail.decode("utf-8", errors="replace")
    )


# The tool modules register themselves on import (at the bottom: they import this module).
from . import files, git, search, shell  # noqa: E402, F401
