"""The tool registry: what a tool is, the schemas the model sees, and dispatch.

Each tool is a plain function `fn(ctx, **arguments) -> str` plus a JSON schema.
`dispatch` never raises (except KeyboardInterrupt): unknown tools, bad arguments
and failures come back as an error result the model can read and correct.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .arguments import coerce, parse_arguments, signature, validate
from .output import ToolError, cap_text, error_text
from .permissions import DEFAULT_MODE, Access, not_offered, offered
from .workspace import Workspace, WorkspaceError

if TYPE_CHECKING:
    from ..plan import Plan


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments object
    fn: Callable[..., str]  # fn(ctx, **arguments) -> output text; raise ToolError for a clean error
    access: Access = "read"  # read | write | run: what tools.mode decides on (permissions.py)
    # offered when agent.tools is null; an opt-in tool (False) only when agent.tools names it
    default: bool = True
    trusted: bool = False  # a run tool that never asks (a trusted MCP server's)


@dataclass
class ToolContext:
    workspace: Workspace
    # approve(tool_name, what) -> True to run it; False, or a str giving the reason, to refuse
    approve: Callable[[str, str], bool | str] = lambda name, what: False
    mode: str = DEFAULT_MODE  # read-only | ask | auto-edit | yes  (config tools.mode)
    shell_timeout: float = 120.0
    max_output_bytes: int = 32768
    sandbox: str = "none"  # none | bwrap (tools.shell.sandbox): run_shell under bubblewrap
    cancel: threading.Event | None = None  # set by the UI on Ctrl-C; long tools check it
    # the conversation's plan (/plan): update_plan changes it in place (dispatch copies
    # this context, not the plan)
    plan: Plan | None = None


@dataclass
class ToolResult:
    output: str
    is_error: bool
    duration_ms: float


REGISTRY: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    REGISTRY[tool.name] = tool
    return tool


def default_tools() -> list[str]:
    """The tools offered when agent.tools is null: all but the opt-in ones, in order."""
    return [name for name, t in REGISTRY.items() if t.default]


def schemas(
    names: Iterable[str] | None = None, extra: Iterable[Tool] = (), mode: str | None = None
) -> list[dict]:
    """OpenAI `tools` entries for the named tools (the default ones, in registration
    order, if None), then the `extra` ones (tools of MCP servers, not in the registry);
    with a `mode`, only those it offers."""
    chosen = default_tools() if names is None else [n for n in names if n in REGISTRY]
    tools = [REGISTRY[n] for n in chosen] + list(extra)
    return [schema(t) for t in tools if mode is None or offered(mode, t)]


def schema(tool: Tool) -> dict:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def dispatch(
    name: str, arguments: str | dict, ctx: ToolContext, tools: Mapping[str, Tool] | None = None
) -> ToolResult:
    """Run a tool call. Never raises except KeyboardInterrupt. The result's duration is the
    tool's own work: time spent waiting for the user's approval is left out. `tools` is
    what may be called (the registry if None)."""
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
        output, is_error = _run(name, arguments, tctx, REGISTRY if tools is None else tools), False
    except (ToolError, WorkspaceError) as e:
        output, is_error = error_text(str(e)), True
    except KeyboardInterrupt:
        raise
    except Exception as e:  # the model gets a readable error instead of a crash
        output, is_error = error_text(f"{name} failed: {type(e).__name__}: {e}"), True
    output = cap_text(output, ctx.max_output_bytes)
    elapsed = time.perf_counter() - start - waited[0]
    return ToolResult(output, is_error, max(0.0, elapsed) * 1000.0)


def _run(name: str, arguments: str | dict, ctx: ToolContext, tools: Mapping[str, Tool]) -> str:
    tool = tools.get(name) if isinstance(name, str) else None
    if tool is None:
        names = ", ".join(n for n, t in tools.items() if offered(ctx.mode, t))
        raise ToolError(f"unknown tool '{name}'. Available tools: {names}")
    if not offered(ctx.mode, tool):  # named anyway, e.g. in a call written as text
        raise ToolError(not_offered(ctx.mode, tool))
    args = coerce(tool.parameters, parse_arguments(arguments))
    problems = validate(tool.parameters, args)
    if problems:
        raise ToolError(
            f"bad arguments for {tool.name}: {'; '.join(problems)}. "
            f"Expected: {tool.name}({signature(tool.parameters)})"
        )
    args = {k: v for k, v in args.items() if v is not None}
    return tool.fn(ctx, **args)
