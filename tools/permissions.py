"""Permission modes (config tools.mode): which tools the model is offered, which ask first.

Every tool declares its access once, in `@tool(access=...)`: "read" (looks at the
workspace; nothing changes and nothing of the model's choosing runs), "write" (changes
workspace files or the git index: the undoable edits), or "run" (runs a command, makes a
commit, calls an MCP server). The mode decides per access:

    mode        read    write   run
    read-only   yes     -       -       write and run tools are not offered
    ask         yes     ask     ask
    auto-edit   yes     yes     ask     the default
    yes         yes     yes     yes     nothing asks (--yes)

A tool that is not offered is refused if the model names it anyway. A trusted MCP
server's tools (run) do not ask; in read-only they are not offered either. The tools
ask themselves, through `check_approval`, because only they know what to show (the
command line, the diff of an edit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .output import ToolError

if TYPE_CHECKING:
    from .registry import Tool, ToolContext

Mode = Literal["read-only", "ask", "auto-edit", "yes"]
Access = Literal["read", "write", "run"]
Decision = Literal["allow", "ask", "refuse"]

MODES: tuple[str, ...] = ("read-only", "ask", "auto-edit", "yes")
DEFAULT_MODE = "auto-edit"

_DECISIONS: dict[str, dict[str, Decision]] = {
    "read-only": {"read": "allow", "write": "refuse", "run": "refuse"},
    "ask": {"read": "allow", "write": "ask", "run": "ask"},
    "auto-edit": {"read": "allow", "write": "allow", "run": "ask"},
    "yes": {"read": "allow", "write": "allow", "run": "allow"},
}

DESCRIPTIONS = {
    "read-only": "the model reads and searches; no tool that writes or runs is offered",
    "ask": "file edits and commands ask you first",
    "auto-edit": "file edits apply at once (/undo reverts them); commands ask you first",
    "yes": "nothing asks: edits apply and commands run at once",
}

_WHAT = {"write": "changes files", "run": "runs commands"}


def decide(mode: str, access: str) -> Decision:
    """What `mode` does with a tool of `access`: allow it, ask first, or refuse it."""
    try:
        return _DECISIONS[mode][access]
    except KeyError:  # an unknown mode or access grants nothing
        return "refuse"


def offered(mode: str, tool: Tool) -> bool:
    """Whether the model is offered (and may call) `tool` in `mode`."""
    return decide(mode, tool.access) != "refuse"


def asks(mode: str, tool: Tool) -> bool:
    """Whether `tool` asks before it acts in `mode` (for /tools and /mode)."""
    return decide(mode, tool.access) == "ask" and not tool.trusted


def not_offered(mode: str, tool: Tool) -> str:
    """The error for a call of a tool `mode` does not offer."""
    what = _WHAT.get(tool.access, "is not allowed")
    return (
        f"{tool.name} is not available in {mode} mode (tools.mode: {mode}): it {what}. "
        "Do not call it again; use the read and search tools, or tell the user what to do."
    )


def check_approval(ctx: ToolContext, tool_name: str, what: str, access: Access = "run") -> None:
    """Apply the session's mode to one action of `access` (`what` is shown to the user
    when it asks); raise ToolError when it is refused."""
    decision = decide(ctx.mode, access)
    if decision == "allow":
        return
    if decision == "refuse":
        raise ToolError(
            f"{tool_name} was not run: {ctx.mode} mode (tools.mode) allows no action "
            f"that {_WHAT.get(access, 'does this')}. Do not retry it; tell the user what "
            "to do instead."
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
        # a command is named whole; an edit by its first line (the rest is its diff)
        shown = what if access == "run" else (what.strip().splitlines() or [tool_name])[0]
        raise ToolError(
            f"{tool_name} was not run: it was not approved ({shown})"
            + (f"; {reason}" if reason else "")
            + ". Do not retry the same action; continue without it or tell the user what to run."
        )
