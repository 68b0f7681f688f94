"""run_shell: a command in the workspace, with approval, timeout and an output cap.

The command runs in its own session (process group). On timeout, Ctrl-C or
cancel the whole group is killed, and so is anything it left running in the
background when it ends: no stray processes, and no pipe held open forever. If coder
itself dies without running any code (kill -9), coder's watchdog process stops the
group (see coder/watchdog.py). With `tools.shell.sandbox: bwrap` the command runs under
bubblewrap (tools/sandbox.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from typing import Annotated

from ..procs import group_alive, kill_group
from ..redact import without_secrets
from ..watchdog import Watchdog
from .declare import Bounds, tool
from .output import ToolError, cap_bytes
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


class _Capture:
    """Reads a pipe to EOF keeping the first `head` and the last `tail` bytes."""

    def __init__(self, fd: int, head: int, tail: int) -> None:
        self.fd, self.head_limit, self.tail_limit = fd, head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            room = self.head_limit - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > self.tail_limit:
                    del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        out = cap_bytes(
            bytes(self.head), self.total, self.head_limit + self.tail_limit, bytes(self.tail)
        )
        return _ANSI.sub("", out)


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
    proc = subprocess.Popen(
        argv,
        cwd=ctx.workspace.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    watchdog = WATCHDOG
    if watchdog is not None:
        watchdog.watch(proc.pid)
    try:
        return _supervise(ctx, proc, limit, cap)
    finally:
        if watchdog is not None:
            watchdog.forget(proc.pid)


def _command_line(ctx: ToolContext, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to start: as given, or inside the sandbox (with only a
    minimal environment)."""
    if ctx.sandbox != "bwrap":
        return argv, command_env()
    try:
        return wrap(ctx.workspace.root, argv), sandbox_env(_ENV)
    except SandboxError as exc:
        raise ToolError(str(exc)) from None


def _supervise(ctx: ToolContext, proc: subprocess.Popen, limit: float, cap: int) -> str:
    """Wait for the command within `limit` seconds, capture its output, stop its group."""
    assert proc.stdout is not None
    capture = _Capture(proc.stdout.fileno(), cap // 2, cap - cap // 2)
    deadline = time.monotonic() + limit
    stopped = ""
    try:
        while proc.poll() is None:
            if ctx.cancel is not None and ctx.cancel.is_set():
                stopped = "cancelled by the user"
                break
            if time.monotonic() >= deadline:
                stopped = f"timed out after {limit:g} s"
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
    except BaseException:  # Ctrl-C, and SIGTERM / SIGHUP unwinding coder (SystemExit)
        kill_group(proc, grace=0.2)
        raise
    finally:
        if stopped:
            kill_group(proc, grace=0.5)
    leftover = ""
    if not stopped and group_alive(proc.pid):
        kill_group(proc, grace=0.2)
        leftover = "\n[processes it left running in the background were stopped]"
    capture.thread.join(timeout=2.0)
    if not capture.thread.is_alive():  # else a detached process still holds the pipe
        proc.stdout.close()
    output = capture.text().rstrip("\n") or "(no output)"
    if stopped:
        raise ToolError(f"{output}\n[{stopped}; the command and its child processes were killed]")
    code = proc.returncode
    status = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"{output}{leftover}\n[{status}]"
