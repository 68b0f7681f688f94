"""`coder` run as a user runs it, for the tests that drive the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def coder(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """`coder ARGS` in `cwd` with this Python, the test's environment plus `env`, and no
    terminal: stdin is empty unless `input` is given."""
    return subprocess.run(
        [sys.executable, "-m", "coder", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=text,
        timeout=timeout,
    )
