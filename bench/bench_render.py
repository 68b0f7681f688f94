"""Rendering benchmark: a streamed markdown answer through RichSink vs raw text.

Both write to the same kind of captured console (rich Console on a StringIO,
force_terminal=True, 100 columns), token by token. "raw" is `console.out(token,
end="")` per token, what a plain streaming printer costs through rich ("bytes",
file.write per token, is shown as the floor); "rendered"
is RichSink (markdown, highlighted code, Live tail with spinner). Targets:
rendered <= 3x raw at 20k tokens, and linear (2x the tokens <= 2.2x the time).

Run: .venv/bin/python bench/bench_render.py [--tokens 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402

from coder.render import RichSink  # noqa: E402

RATIO_TARGET = 3.0
LINEAR_TARGET = 2.2
WIDTH = 100

PROSE = (
    "The loader reads the **config** file first, then the `environment`, and the command "
    "line wins over both. Each value is checked against its field, so a typo names the key "
    "and the file it came from instead of failing later in some unrelated place."
)
CODE = '''def load(path: str, overrides: dict | None = None) -> Config:
    """Read the file at `path`, apply the overrides, validate."""
    cfg = Config()
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    for key, value in data.items():
        set_key(cfg, key, value, source=path)  # errors name the key
    for key, value in (overrides or {}).items():
        if value is not None:
            set_key(cfg, key, value, source="command line")
    return cfg'''


def answer_tokens(n: int) -> list[str]:
    """About `n` model-like tokens of markdown: headings, prose, lists, python code."""
    section = (
        f"## Step\n\n{PROSE}\n\n- first: {PROSE[:60]}\n- second: `x = 1`\n- third item\n\n"
        f"```python\n{CODE}\n```\n\n{PROSE}\n\n"
    )
    pieces = re.findall(r"\n|[ \t]*[^\s]{1,4}|[ \t]+", section)
    out: list[str] = []
    while len(out) < n:
        out.extend(pieces)
    return out[:n]


def console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=WIDTH, color_system="truecolor")


def run_raw(tokens: list[str]) -> float:
    c = console()
    start = time.perf_counter()
    for t in tokens:
        c.out(t, end="", highlight=False)
    return time.perf_counter() - start


def run_rendered(tokens: list[str]) -> float:
    c = console()
    start = time.perf_counter()
    sink = RichSink(c)
    sink.start()
    for t in tokens:
        sink.text(t)
    sink.finish()
    return time.perf_counter() - start


def run_bytes(tokens: list[str]) -> float:
    """The floor: the same tokens written straight to the console's file."""
    c = console()
    start = time.perf_counter()
    for t in tokens:
        c.file.write(t)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    sizes = [args.tokens // 2, args.tokens, args.tokens * 2]
    streams = {n: answer_tokens(n) for n in sizes}
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits every row alike
        for n in sizes:
            for name, fn in (("raw", run_raw), ("rendered", run_rendered), ("bytes", run_bytes)):
                times.setdefault((name, n), []).append(fn(streams[n]))
    rows = [
        (
            n,
            sum(map(len, streams[n])),
            min(times["raw", n]),
            min(times["rendered", n]),
            min(times["bytes", n]),
        )
        for n in sizes
    ]

    head = (
        f"{'tokens':>8} {'chars':>8} {'bytes ms':>9} {'raw ms':>9} {'rendered ms':>12} "
        f"{'ratio':>7} {'us/token':>9}"
    )
    print(head)
    print("-" * len(head))
    for n, chars, raw, rendered, plain in rows:
        print(
            f"{n:>8} {chars:>8} {plain * 1000:>9.1f} {raw * 1000:>9.1f} {rendered * 1000:>12.1f} "
            f"{rendered / raw:>6.2f}x {rendered / n * 1e6:>9.1f}"
        )
    by_n = {n: (raw, rendered) for n, _, raw, rendered, _ in rows}
    ratio = by_n[args.tokens][1] / by_n[args.tokens][0]
    growth = [by_n[b][1] / by_n[a][1] for a, b in zip(sizes, sizes[1:], strict=False)]
    ok_ratio = ratio <= RATIO_TARGET
    ok_linear = max(growth) <= LINEAR_TARGET
    print(
        f"\nrendered/raw at {args.tokens} tokens: {ratio:.2f}x (target <= {RATIO_TARGET}x): "
        f"{'ok' if ok_ratio else 'ABOVE TARGET'}"
    )
    print(
        "time growth per 2x tokens: "
        + ", ".join(f"{g:.2f}x" for g in growth)
        + f" (target <= {LINEAR_TARGET}x): {'ok' if ok_linear else 'ABOVE TARGET'}"
    )
    return 0 if ok_ratio and ok_linear else 1


if __name__ == "__main__":
    sys.exit(main())
