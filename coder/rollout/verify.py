"""Verifiers and setup commands: a shell command in the attempt's directory, bounded.

Exit 0 is reward 1.0, anything else 0.0; a verifier whose last stdout line is
``{"reward": x}`` grades the attempt with x instead. The command runs in a process group
of its own, killed whole at its timeout or when the run is cancelled.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from coder import supervise

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

    ran = supervise.run(
        ["/bin/bash", "-c", command],
        cwd=cwd,
        env={**shell.command_env(), **(env or {})},
        limit=timeout,
        cancel=cancel,
        watchdog=shell.WATCHDOG,  # stops the group if coder is killed -9 meanwhile
        merge_stderr=False,
    )
    out, err = ran.stdout.text(), ran.stderr.text() if ran.stderr else ""
    graded = graded_reward(out)
    reward = 0.0 if ran.code is None else graded if graded is not None else float(ran.code == 0)
    return Verdict(
        command=command,
        exit_code=ran.code,
        output=cap(out + err),
        duration_s=round(ran.seconds, 3),
        reward=reward,
        graded=graded is not None and ran.code is not None,
        timed_out=ran.stopped == "timeout",
        cancelled=ran.stopped == "cancel",
    )


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
