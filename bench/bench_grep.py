"""Benchmark: the grep tool against raw `rg` on a large tree (the venv's site-packages).

The tool runs rg with its own flags, sorts the results by path and formats them;
this measures that overhead. Target: median time ratio tool/rg <= 1.2.

    python bench/bench_grep.py [--tree DIR] [--runs N] [--fallback]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder.tools import ToolContext, dispatch  # noqa: E402
from coder.tools.search import rg_binary  # noqa: E402
from coder.tools.workspace import Workspace  # noqa: E402

PATTERNS = [
    "def main",
    "TODO",
    r"class \w+Error\(",
    "import os",
    "import",
]
TARGET = 1.2


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=sysconfig.get_paths()["purelib"])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fallback", action="store_true", help="also time the pure-Python search")
    args = ap.parse_args(argv)

    rg = rg_binary()
    if rg is None:
        print("rg not found (pip install ripgrep)", file=sys.stderr)
        return 2
    tree = Path(args.tree).resolve()
    ctx = ToolContext(workspace=Workspace(tree), max_output_bytes=1 << 20)
    files = sum(1 for p in tree.rglob("*") if p.is_file())
    print(f"tree: {tree} ({files} files)\nrg: {rg}\nruns: {args.runs} (median)\n")

    rows = []
    for pattern in PATTERNS:

        def raw(pattern: str = pattern) -> None:
            subprocess.run([rg, "-n", "-e", pattern], cwd=tree, capture_output=True)

        def tool(pattern: str = pattern) -> None:
            r = dispatch("grep", {"pattern": pattern}, ctx)
            assert not r.is_error, r.output

        lines = subprocess.run(
            [rg, "-n", "-e", pattern], cwd=tree, capture_output=True
        ).stdout.count(b"\n")
        raw(), tool()  # warm the page cache and the interpreter
        t_rg, t_tool = [], []
        for _ in range(args.runs):  # interleaved, so load from other processes hits both
            t_rg.append(_time(raw))
            t_tool.append(_time(tool))
        rg_ms, tool_ms = statistics.median(t_rg), statistics.median(t_tool)
        row = [pattern, lines, rg_ms, tool_ms, tool_ms / rg_ms]
        if args.fallback:
            import os

            os.environ["CODER_RG"] = "none"
            try:
                row.append(_time(tool))
            finally:
                del os.environ["CODER_RG"]
        rows.append(row)

    head = f"{'pattern':<18} {'rg lines':>9} {'rg ms':>8} {'tool ms':>8} {'ratio':>6}"
    if args.fallback:
        head += f" {'python ms':>10}"
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row[0]:<18} {row[1]:>9} {row[2]:>8.1f} {row[3]:>8.1f} {row[4]:>5.2f}x"
        if args.fallback:
            line += f" {row[5]:>10.0f}"
        print(line)
    overall = statistics.median(r[4] for r in rows)
    verdict = "ok" if overall <= TARGET else "ABOVE TARGET"
    print(f"\nmedian ratio tool/rg: {overall:.2f}x (target <= {TARGET}x): {verdict}")
    return 0 if overall <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
