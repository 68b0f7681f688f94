"""Benchmark: what the bwrap sandbox (tools.shell.sandbox: bwrap) adds to a run_shell
command, in one run.

The same commands through run_shell without a sandbox and under bwrap, interleaved in
batches so load hits both alike (the watchdog on in both, as in coder). The probe that
checks bwrap can create namespaces runs once per coder process, before the first command;
its time is printed apart. No target: the price of isolation is reported, not gated.

    python bench/bench_shell_sandbox.py [--runs N] [--batch N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder.tools import ToolContext, dispatch  # noqa: E402
from coder.tools import sandbox as sb  # noqa: E402
from coder.tools.workspace import Workspace  # noqa: E402

COMMANDS = ["true", "echo hello; ls >/dev/null", "sleep 0.05"]


def per_command(ctx: ToolContext, command: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        r = dispatch("run_shell", {"command": command}, ctx)
        if r.is_error:
            raise SystemExit(r.output)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args(argv)
    ws = Workspace(Path(tempfile.mkdtemp()))
    plain = ToolContext(workspace=ws, mode="yes")
    boxed = ToolContext(workspace=ws, mode="yes", sandbox="bwrap")
    start = time.perf_counter()
    try:
        sb.check("bwrap", ws.root)
    except sb.SandboxError as exc:
        print(f"skipped: {exc}")
        return 0
    probe = time.perf_counter() - start
    print(f"{'command':<28} {'plain ms':>9} {'bwrap ms':>9} {'ratio':>7} {'+ms':>6}")
    for command in COMMANDS:
        a_runs, b_runs = [], []
        for _ in range(args.runs):
            a_runs.append(per_command(plain, command, args.batch))
            b_runs.append(per_command(boxed, command, args.batch))
        a, b = statistics.median(a_runs), statistics.median(b_runs)
        print(f"{command:<28} {a * 1e3:>9.2f} {b * 1e3:>9.2f} {b / a:>6.2f}x {(b - a) * 1e3:>6.2f}")
    print(f"bwrap probe (once per coder process, at start): {probe * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
