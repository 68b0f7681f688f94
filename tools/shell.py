"""run_shell: a command in the workspace, with approval, timeout and an output cap.

The command runs in a process group of its own (coder/supervise.py): on timeout, Ctrl-C
or cancel the whole group is killed, and so is anything it left running in the
background when it ends. With `tools.shell.sandbox: bwrap` it runs under bubblewrap
(tools/sandbox.py).
"""

from __future__ import annotations

import os
import re
from typing import Annotated

from .. import supervise
from ..redact import without_secrets
from ..watchdog import Watchdog
from .declare import Bounds, tool
from .output import ToolError
from .permissions import check_approval
from .registry import ToolContext
from .sandbox import SandboxError, sandbox_env, wrap

_ENV = {
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "TERM": "dumb",
    "NO_COLOR": "1",
}
# One per coder process; None runs commands unwatched (the benchmark's baseline).
WATCHDOG: Watchdog | None = Watchdog()
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


# coder's own credentials stay out of the commands the model runs (and so out of
# their output, which the model reads and the log keeps).
def command_env() -> dict[str, str]:
    """The environment of the model's commands: coder's own keys left out in every form,
    and so is any other variable holding one of their values."""
    return {**without_secrets(os.environ), **_ENV}


@tool(access="run")
def run_shell(
    ctx: ToolContext, command: str, timeout: Annotated[int, Bounds(minimum=1)] | None = None
) -> str:
    """Run a shell command in the workspace and show its output and exit code. Needs user
    approval.

    Args:
        command: bash command line
        timeout: seconds (optional)
    """
    if not command.strip():
        raise ToolError("command is empty")
    check_approval(ctx, "run_shell", command)
    return run_command(ctx, command, timeout)


def run_command(ctx: ToolContext, command: str, timeout: int | None = None) -> str:
    """Run an approved command line: its output (head + tail) and `[exit code N]`; a
    timeout or Ctrl-C kills its whole process group (ToolError)."""
    limit = min(float(timeout), ctx.shell_timeout) if timeout else ctx.shell_timeout
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    cap = max(1024, ctx.max_output_bytes - 256)
    argv, env = _command_line(ctx, [shell, "-c", command])
    ran = supervise.run(
        argv,
        cwd=ctx.workspace.root,
        env=env,
        limit=limit,
        cancel=ctx.cancel,
        watchdog=WATCHDOG,
        keep=cap,
    )
    output = _ANSI.sub("", ran.stdout.text()).rstrip("\n") or "(no output)"
    if ran.stopped:
        why = "cancelled by the user" if ran.stopped == "cancel" else f"timed out after {limit:g} s"
        raise ToolError(f"{output}\n[{why}; the command and its child processes were killed]")
    leftover = (
        "\n[processes it left running in the background were stopped]" if ran.leftover else ""
    )
    code = ran.code or 0
    status = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"{output}{leftover}\n[{status}]"


def _command_line(ctx: ToolContext, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to start: as given, or inside the sandbox (with only a
    minimal environment)."""
    if ctx.sandbox != "bwrap":
        return argv, command_env()
    try:
        return wrap(ctx.workspace.root, argv), sandbox_env(_ENV)
    except SandboxError as exc:
        raise ToolError(str(exc)) from None
