"""A watchdog that stops the model's shell commands when coder dies, even by kill -9.

coder kills a command's process group on every way out that runs Python code. kill -9
runs none, and PR_SET_PDEATHSIG reaches only a direct child (bash), not what bash
started. So one small process per coder (started with the first command) holds the
read end of a pipe from coder and is told each command's group (`+PGID`, `-PGID` when
it is gone). The kernel closes the pipe when coder dies, however it dies: EOF, and the
watchdog stops every group still registered, then exits.

The limit: a command is registered right after its fork returns in coder, so a kill -9
landing in those microseconds leaves that one command unwatched (closing the window
would take a gate in front of every command: another exec, about 1 ms each, measured).

This file is also the watchdog's program, run by path with `python -I -S`: stdlib only,
nothing of coder imported (its start is the only cost, once per coder process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

GRACE = 1.0  # seconds between SIGTERM and SIGKILL of an orphaned command


class Watchdog:
    """coder's side: started lazily, shared by every command of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def watch(self, pgid: int) -> None:
        """Have the group `pgid` stopped if coder dies before `forget(pgid)`."""
        self._send(f"+{pgid}\n", start=True)

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n", start=False)

    def _send(self, line: str, start: bool) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if not start:
                    return
                self._proc = _spawn()
            if self._proc is None:
                return  # could not start one: the commands still run, unwatched
            try:
                os.write(self._proc.stdin.fileno(), line.encode())
            except OSError:  # it died (someone killed it): the next command starts another
                self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


def _spawn() -> subprocess.Popen | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,  # coder keeps the write end (close-on-exec): no command holds it
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={},  # it needs none, so it inherits none (no key of coder's, whoever runs it)
            start_new_session=True,  # not in coder's group: a Ctrl-C at the terminal is not for it
            close_fds=True,
        )
    except OSError:
        return None


def _stop_groups(groups: set[int]) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while groups and time.monotonic() < deadline:
        groups = {g for g in groups if _alive(g)}
        time.sleep(0.02)
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:  # ends at EOF: coder has exited or died
        with contextlib.suppress(ValueError):
            pgid = int(line[1:])
            if line.startswith(b"+"):
                groups.add(pgid)
            elif line.startswith(b"-"):
                groups.discard(pgid)
    _stop_groups(groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
