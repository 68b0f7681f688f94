"""MCP tools as coder tools: namespaced names, their schemas, approval, results as text.

A server's tool `read` becomes `mcp__files__read` (OpenAI function names: letters, digits,
`_` and `-`, at most 64). It counts as running (access "run"): not offered in read-only
mode, and asking in ask and auto-edit like run_shell unless the server is `trusted`; its result's text comes back as the tool output (other content is
summarised), capped by dispatch like every tool's.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from coder.mcp.host import McpCallError, McpHost, RemoteTool, Server
from coder.tools import Tool, ToolContext, ToolError, check_approval

PREFIX = "mcp__"
MAX_NAME = 64
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """`mcp__SERVER__TOOL`, made a valid function name; a long one keeps its head and a
    hash of the whole, so two long names stay apart."""
    raw = f"{PREFIX}{server}__{tool}"
    name = _NOT_ALLOWED.sub("_", raw)
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 9] + "_" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return name


def mcp_tools(host: McpHost) -> list[Tool]:
    """The tools of every ready server, in config order; a name two tools would share
    goes to the first."""
    out: dict[str, Tool] = {}
    for server in host.ready():
        for remote in server.tools:
            name = tool_name(server.name, remote.name)
            if name not in out:
                out[name] = adapt(host, server, remote, name)
    return list(out.values())


def adapt(host: McpHost, server: Server, remote: RemoteTool, name: str) -> Tool:
    trusted = server.spec.trusted

    def run(ctx: ToolContext, **arguments: Any) -> str:
        if not trusted:
            what = f"MCP server '{server.name}': {remote.name} {_brief(arguments)}"
            check_approval(ctx, name, what)
        try:
            result = host.call(server.name, remote.name, arguments, ctx.cancel)
        except McpCallError as exc:
            raise ToolError(str(exc)) from None
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or f"{remote.name} failed")
        return text

    description = f"[MCP {server.name}] {remote.description}".strip()
    return Tool(
        name, description, parameters(remote.input_schema), run, access="run", trusted=trusted
    )


def parameters(schema: dict) -> dict:
    """The server's input schema as a function's parameters: always an object."""
    out = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
    out["type"] = "object"
    out.setdefault("properties", {})
    return out


def result_text(result: Any) -> str:
    """A CallToolResult as the model reads it: text as is; images, audio and resources
    named by type and size; structured content when there is nothing else."""
    parts: list[str] = []
    for item in getattr(result, "content", None) or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind in ("image", "audio"):
            size = len(getattr(item, "data", "") or "") * 3 // 4
            parts.append(f"[{kind}: {getattr(item, 'mime_type', '?')}, about {size} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {item.uri}]")
        elif kind == "resource":
            res = item.resource
            text = getattr(res, "text", None)
            parts.append(text if text is not None else f"[resource: {res.uri}, binary]")
        else:
            parts.append(f"[{kind or type(item).__name__} content]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


def _brief(arguments: dict, limit: int = 300) -> str:
    text = json.dumps(arguments, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."
