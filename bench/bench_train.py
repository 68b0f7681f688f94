"""Benchmark: `coder train` on this CPU.

- SFT trained tokens/s, 40 steps on the 8 tool-call sessions of tests/train_data.py,
  against the ~150 tok/s measured by hand in DESIGN.md (batch 2, LoRA r=8, all
  projections; that run had the machine to itself: the load average is printed, since
  other work on the 2 cores divides the figure)
- from the command's start to the end of the first step, with the base copy cached vs
  made from the GGUF in the same run (an empty cache but for llama.cpp's converter)

    python bench/bench_train.py [--steps N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import provision  # noqa: E402
from coder.train.base import cache_root  # noqa: E402
from tests.train_data import write_sessions  # noqa: E402

BASELINE_TOK_S = 150.0  # DESIGN.md, "Training on the export": 40 SFT steps by hand


def run(tmp: Path, logs: Path, steps: int, name: str, env: dict | None = None) -> dict:
    out = tmp / name
    start = time.perf_counter()
    got = subprocess.run(
        [sys.executable, "-m", "coder", "train", "--method", "sft", str(logs)]
        + ["--steps", str(steps), "--lr", "1e-3", "--out", str(out)]
        + ["--model", str(provision.default_model_path())],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - start
    if got.returncode != 0:
        raise SystemExit(f"coder train failed:\n{got.stderr[-2000:]}")
    card = orjson.loads((out / "card.json").read_bytes())
    card["wall"] = wall
    return card


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    provision.ensure_model()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        write_sessions(tmp / "logs")
        load = os.getloadavg()[0]
        warm = run(tmp, tmp / "logs", a.steps, "warm")  # makes the cached copy if missing
        # a cache without the base copy, but with the converter (not what is measured)
        cold_cache = tmp / "cache"
        conv = cache_root() / "llama.cpp-11434"
        shutil.copytree(conv, cold_cache / "coder" / "train" / conv.name)
        cold = run(tmp, tmp / "logs", 1, "cold", {"XDG_CACHE_HOME": str(cold_cache)})
        cached = run(tmp, tmp / "logs", 1, "cached")

    def first(c: dict) -> float:
        return c["seconds"]["setup"] + c["seconds"]["first_step"]

    ratio = warm["tokens_per_s"] / BASELINE_TOK_S
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores; torch threads "
          f"{warm['hyperparameters']['threads']}")  # fmt: skip
    print(f"{'measure':44} {'value':>12} {'baseline':>12} {'ratio':>7}")
    print(
        f"{'sft trained tokens/s (' + str(warm['steps']) + ' steps)':44} "
        f"{warm['tokens_per_s']:>12.1f} {BASELINE_TOK_S:>12.1f} {ratio:>7.2f}"
    )
    print(f"{'sft loss first -> last':44} {warm['losses'][0]:>5.3f} -> {warm['final_loss']:.4f}")
    print(f"{'seconds per step':44} {warm['seconds']['training'] / warm['steps']:>12.1f}")
    print(
        f"{'start to first step, base copy cached (s)':44} {first(cached):>12.1f} "
        f"{first(cold):>12.1f} {first(cached) / first(cold):>7.2f}"
    )
    print(f"{'start to first step, copy made from GGUF (s)':44} {first(cold):>12.1f}")
    label = f"whole run, {warm['steps']} steps incl. GGUF conversion (s)"
    print(f"{label:44} {warm['wall']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
