"""`coder` as a user runs it, for the benchmarks that drive the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def coder(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run `coder ARGS` with this Python, no stdin; exit 0 or 1 (some attempts failed)
    is a result, anything else stops the benchmark with coder's stderr."""
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "coder", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"coder {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc
