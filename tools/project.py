"""project_info: what the workspace is made of and how it is built, tested, linted and
formatted (coder.project does the detecting; nothing is run). Opt-in: agent.tools."""

from __future__ import annotations

from .declare import tool
from .registry import ToolContext


@tool(default=False)
def project_info(ctx: ToolContext) -> str:
    """Show the project's languages, build system, its test, lint and format commands, and
    its top-level layout."""
    from ..project import detect, summary  # here: coder.project imports this package

    return summary(detect(ctx.workspace))
