"""Benchmark: what coder's kill -9 watchdog adds to a run_shell command, in one run.

The same commands through run_shell with the watchdog (registering each group with it)
and without (shell.WATCHDOG = None), interleaved in batches so load hits both alike;
plus the watchdog's own start, paid once per coder process on its first command.
Target: <= 1.10x for `true` (a command that does nothing: the worst case).

    python bench/bench_shell_watchdog.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder.tools import ToolContext, dispatch, shell  # noqa: E402
from coder.tools.workspace import Workspace  # noqa: E402
from coder.watchdog import Watchdog  # noqa: E402

COMMANDS = ["true", "echo hello; ls >/dev/null", "sleep 0.05"]


def per_command(ctx: ToolContext, command: str, watchdog: Watchdog | None, n: int) -> float:
    shell.WATCHDOG = watchdog
    start = time.perf_counter()
    for _ in range(n):
        dispatch("run_shell", {"command": command}, ctx)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args(argv)
    ctx = ToolContext(workspace=Workspace(Path(tempfile.mkdtemp())), mode="yes")
    watchdog = Watchdog()
    start = time.perf_counter()
    watchdog.watch(1 << 30)  # the first registration starts it (a pgid that never exists)
    started = time.perf_counter() - start
    watchdog.forget(1 << 30)
    print(f"{'command':<28} {'unwatched ms':>13} {'watched ms':>11} {'ratio':>7}")
    worst = 0.0
    for command in COMMANDS:
        plain, watched = [], []
        for _ in range(args.runs):
            plain.append(per_command(ctx, command, None, args.batch))
            watched.append(per_command(ctx, command, watchdog, args.batch))
        a, b = statistics.median(plain), statistics.median(watched)
        ratio = b / a
        worst = max(worst, ratio) if command == "true" else worst
        print(f"{command:<28} {a * 1000:>13.2f} {b * 1000:>11.2f} {ratio:>6.2f}x")
    print(f"watchdog spawn (once per coder process, on its first command): {started * 1000:.1f} ms")
    print(f"target true <= 1.10x: {'met' if worst <= 1.10 else 'MISSED'}")
    return 0 if worst <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
