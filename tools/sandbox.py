"""The sandbox of run_shell (`tools.shell.sandbox: bwrap`): the model's command under
bubblewrap, with the workspace writable, the rest of the filesystem read-only, no network,
a private /tmp and a /proc of its own pid namespace (so /proc/$PPID/environ is bwrap's
minimal environment, nothing of coder's).

The command stays in coder's process group for its command (bwrap is not given
--new-session), so the group kill on timeout, Ctrl-C and by the watchdog reaches what runs
inside; --die-with-parent and the pid namespace (its init dying kills the rest) stop the
inside if only bwrap is killed.

--as-pid-1: the command is the namespace's init, with no bwrap reaper above it. With the
reaper, bwrap exits before its reaper is reaped, which left a zombie in the command's
group until the system's init got to it (2 s in this container): coder took that for a
process left running. As init, bash ignores SIGTERM, but bwrap does not: the group's
SIGTERM ends bwrap and --die-with-parent SIGKILLs bash (a timeout costs no grace period).
And when bash exits, the kernel ends its namespace: what a command left running in the
background ends with it, at once (without the sandbox coder stops it and says so).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from .workspace import find_program

KEY = "tools.shell.sandbox"
MODES = ("none", "bwrap")
PASSED_ENV = ("PATH", "HOME", "LANG")  # of coder's environment, the only variables passed
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxError(Exception):
    """The sandbox was asked for and cannot run here: one line naming the key."""


def bwrap_argv(bwrap: str, workspace: Path | None) -> list[str]:
    """bwrap's options up to `--`: the sandbox, with `workspace` bound writable."""
    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--unshare-all",  # pid, net, ipc, uts (user and cgroup where possible)
        "--as-pid-1",  # see below
        "--die-with-parent",
    ]  # fmt: skip
    if workspace is not None:  # after --tmpfs /tmp: a workspace under /tmp is bound over it
        argv += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace)]
    return [*argv, "--"]


def sandbox_env(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a sandboxed command: PATH, HOME, LANG and `extra`."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return {**env, **extra}


def wrap(workspace: Path, argv: list[str]) -> list[str]:
    """`argv` to run inside the sandbox; SandboxError when bwrap is missing or cannot
    create namespaces here."""
    bwrap = find_program("bwrap", workspace)
    if bwrap is None:
        raise SandboxError(
            f"{KEY}: bwrap is not installed (install the bubblewrap package, or set {KEY}: none)"
        )
    problem = _probe(bwrap)
    if problem:
        raise SandboxError(f"{KEY}: bwrap cannot create its sandbox here: {problem}")
    return [*bwrap_argv(bwrap, workspace), *argv]


def check(mode: str, workspace: Path) -> None:
    """For startup: SandboxError now rather than on the model's first command."""
    if mode == "bwrap":
        wrap(workspace, ["true"])


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str) -> str:
    """'' when bwrap runs `true` with the sandbox's own options (some containers forbid
    the namespaces: that is caught here, once), else its stderr's last line."""
    try:
        proc = subprocess.run(
            [*bwrap_argv(bwrap, None), "true"],
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            env=sandbox_env({}),
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode == 0:
        return ""
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {proc.returncode}"
