"""Verifiers and setup commands: a shell command in the attempt's directory, bounded.

Exit 0 is reward 1.0, anything else 0.0; a verifier whose last stdout line is
``{"reward": x}`` grades the attempt with x instead. The command runs in a process group
of its own, killed whole at its timeout or when the run is cancelled.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from coder.procs import kill_group

OUTPUT_CAP = 4000  # characters of output kept (head and tail)


@dataclass
class Verdict:
    command: str
    exit_code: int | None  # None: killed at its timeout or cancelled
    output: str
    duration_s: float
    reward: float
    graded: bool = False  # the reward came from a {"reward": x} line
    timed_out: bool = False
    cancelled: bool = False

    @property
    def note(self) -> str:
        return f"{self.command} -> {self.outcome}\n{self.output}"

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f} s (killed)"
        if self.cancelled:
            return "cancelled"
        return f"exit {self.exit_code}"

    def record(self) -> dict:
        """The reward record's `verifier` field."""
        return asdict(self)


def run_command(
    command: str,
    cwd: Path,
    timeout: float,
    cancel: threading.Event | None = None,
    env: dict[str, str] | None = None,
) -> Verdict:
    """Run `command` with bash in `cwd` (`env` added to coder's, its secrets left out);
    the reward follows its exit code, or its last stdout line when that is
    ``{"reward": x}``."""
    from coder.tools import shell
    from coder.tools.shell import command_env

    started = time.monotonic()
    proc = subprocess.Popen(
        ["/bin/bash", "-c", command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**command_env(), **(env or {})},
    )
    timed_out = cancelled = False
    watchdog = shell.WATCHDOG  # stops the group if coder is killed -9 meanwhile
    if watchdog is not None:
        watchdog.watch(proc.pid)
    try:
        out, err = _communicate(proc, started + timeout, cancel)
    except _Stopped as stop:
        timed_out, cancelled = stop.timed_out, not stop.timed_out
        kill_group(proc, grace=0.5)
        out, err = _drain(proc)
    except BaseException:
        kill_group(proc, grace=0.2)
        raise
    finally:
        if watchdog is not None:
            watchdog.forget(proc.pid)
    if proc.poll() is None or _group_left(proc):
        kill_group(proc, grace=0.2)  # what it left running in the background
    duration = time.monotonic() - started
    code = None if (timed_out or cancelled) else proc.returncode
    graded = graded_reward(out)
    reward = 0.0 if code is None else graded if graded is not None else float(code == 0)
    return Verdict(
        command=command,
        exit_code=code,
        output=cap(out + err),
        duration_s=round(duration, 3),
        reward=reward,
        graded=graded is not None and code is not None,
        timed_out=timed_out,
        cancelled=cancelled,
    )


class _Stopped(Exception):
    def __init__(self, timed_out: bool) -> None:
        self.timed_out = timed_out


def _communicate(
    proc: subprocess.Popen, deadline: float, cancel: threading.Event | None
) -> tuple[str, str]:
    exited = None  # when the command itself exited while something it started kept its pipes
    while True:
        try:
            out, err = proc.communicate(timeout=0.1)
            return _text(out), _text(err)
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                raise _Stopped(timed_out=False) from None
            if time.monotonic() >= deadline:
                raise _Stopped(timed_out=True) from None
            if proc.poll() is not None:
                exited = exited or time.monotonic()
                if time.monotonic() - exited > 1.0:
                    kill_group(proc, grace=0.2)  # its background children: the verdict is in


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        out, err = proc.communicate(timeout=2)
        return _text(out), _text(err)
    return "", ""


def _group_left(proc: subprocess.Popen) -> bool:
    from coder.procs import group_alive

    return group_alive(proc.pid)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def graded_reward(stdout: str) -> float | None:
    """x from a last stdout line ``{"reward": x}`` (a finite number), else None."""
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        last = orjson.loads(lines[-1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict):
        return None
    value = last.get("reward")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit:,} characters cut ...]\n{text[-half:]}"
