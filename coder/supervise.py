"""A command in a process group of its own, bounded: the one way coder runs a command
line (the model's run_shell, a task's verifier and setup).

Its output is read as it comes, keeping the head and the tail (a command printing
gigabytes costs no memory and never blocks on a full pipe). The whole group is stopped
at the time limit, on cancel, and when coder unwinds (Ctrl-C, or SIGTERM / SIGHUP raised
as SystemExit); whatever the command left running in the background is stopped when it
exits, so no process outlives it and no pipe is held open forever. If coder itself is
killed -9, the watchdog (coder/watchdog.py) stops the group.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coder.procs import group_alive, kill_group
from coder.watchdog import Watchdog


class Capture:
    """Reads a pipe to EOF on a thread of its own, keeping the first `head` and the last
    `tail` bytes and counting the rest."""

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
        """What was kept, decoded, with a note of what was cut from the middle."""
        from coder.tools.output import cap_bytes  # here: coder.tools imports this module

        limit = self.head_limit + self.tail_limit
        return cap_bytes(bytes(self.head), self.total, limit, bytes(self.tail))


@dataclass
class Finished:
    code: int | None  # exit status (negative: killed by that signal); None when stopped
    stopped: Literal["", "timeout", "cancel"]  # why coder stopped it, if it did
    leftover: bool  # it exited leaving processes in its group, which were stopped
    stdout: Capture
    stderr: Capture | None  # None: merged into stdout
    seconds: float


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    limit: float,
    cancel: threading.Event | None = None,
    watchdog: Watchdog | None = None,
    merge_stderr: bool = True,
    keep: int = 65536,
) -> Finished:
    """Run `argv` in `cwd` with no stdin, within `limit` seconds; `keep` bytes of each
    output stream are kept (half head, half tail)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    if watchdog is not None:
        watchdog.watch(proc.pid)
    try:
        pipes = [p for p in (proc.stdout, proc.stderr) if p is not None]
        captures = [Capture(p.fileno(), keep // 2, keep - keep // 2) for p in pipes]
        stopped = _wait(proc, started + limit, cancel)
        if stopped:
            kill_group(proc, grace=0.5)
        leftover = not stopped and group_alive(proc.pid)
        if leftover:
            kill_group(proc, grace=0.2)
    except BaseException:
        kill_group(proc, grace=0.2)
        raise
    finally:
        if watchdog is not None:
            watchdog.forget(proc.pid)
    for pipe, capture in zip(pipes, captures, strict=True):
        capture.thread.join(timeout=2.0)
        if not capture.thread.is_alive():  # else a process that left the group holds it
            pipe.close()
    return Finished(
        code=None if stopped else proc.returncode,
        stopped=stopped,
        leftover=leftover,
        stdout=captures[0],
        stderr=None if merge_stderr else captures[1],
        seconds=time.monotonic() - started,
    )


def _wait(
    proc: subprocess.Popen, deadline: float, cancel: threading.Event | None
) -> Literal["", "timeout", "cancel"]:
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            return "cancel"
        if time.monotonic() >= deadline:
            return "timeout"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    return ""
