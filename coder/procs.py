"""Process groups: what coder starts (a model server, a shell command) runs in a group
of its own, so stopping it stops everything it started too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Protocol


class Waitable(Protocol):  # subprocess.Popen, or psutil.Process for a server not our child
    pid: int

    def wait(self, timeout: float | None = None) -> object: ...


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_group(proc: Waitable, grace: float = 5.0) -> None:
    """SIGTERM the group `proc` leads, give the leader `grace` seconds, then SIGKILL what
    is left of the group (stragglers whose leader already exited included) and reap it."""
    if isinstance(proc, subprocess.Popen) and proc.poll() is not None and not group_alive(proc.pid):
        return  # all gone: its pid may already name another process group
    signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(*_timeouts(proc)):
        proc.wait(grace)
    signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(*_timeouts(proc)):
        proc.wait(5)


def _timeouts(proc: Waitable) -> tuple[type[BaseException], ...]:
    if isinstance(proc, subprocess.Popen):
        return (subprocess.TimeoutExpired,)
    import psutil

    return (psutil.TimeoutExpired, subprocess.TimeoutExpired)
