"""The approval policy for tools that act beyond the workspace files (run_shell, git_commit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .output import ToolError

if TYPE_CHECKING:
    from .registry import ToolContext


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
