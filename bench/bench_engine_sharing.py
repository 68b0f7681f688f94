"""Two engines on the same cores: why parallel attempts go through one server's slots
(`--workers`), never through a second server. Each llama.cpp engine runs one thread a
core and synchronises them many times a token, so two engines generating at once on 2
cores stall each other (seen here during an eval: 35 ms a token alone, 1-2 s a token
beside a second engine). This measures, in the same run, one engine alone (2 threads),
two generating at once with 2 threads each, and two at once with 1 thread each.

    python bench/bench_engine_sharing.py [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coder import provision  # noqa: E402
from tests.conftest import start_engine  # noqa: E402

PROMPT = "def fibonacci(n):\n    " + "# compute the n-th Fibonacci number iteratively\n" * 20


def generate(base_url: str, tokens: int) -> dict:
    """One /completion of `tokens` tokens, no prompt cache: its timings."""
    body = {
        "prompt": PROMPT,
        "n_predict": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "cache_prompt": False,
    }
    req = urllib.request.Request(
        base_url.removesuffix("/v1") + "/completion",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())["timings"]


def at_once(urls: list[str], tokens: int) -> list[dict]:
    out: list[dict] = [{} for _ in urls]

    def one(i: int) -> None:
        out[i] = generate(urls[i], tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def measure(model: Path, tmp: Path, threads: int, tokens: int, rounds: int) -> dict:
    """Median generation and prompt tokens/s of one engine alone, then of two at once."""
    engines = [
        start_engine(model, tmp / f"engine-{threads}-{i}.log", "-t", str(threads)) for i in (0, 1)
    ]
    try:
        urls = [url for _, url in engines]
        at_once(urls, 8)  # warm both
        alone = [generate(urls[0], tokens) for _ in range(rounds)]
        pair = [t for _ in range(rounds) for t in at_once(urls, tokens)]
    finally:
        for proc, _ in engines:
            proc.terminate()
            proc.wait(30)

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "alone_gen": med(alone, "predicted_per_second"),
        "alone_prompt": med(alone, "prompt_per_second"),
        "pair_gen": med(pair, "predicted_per_second"),
        "pair_prompt": med(pair, "prompt_per_second"),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model = provision.default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {t: measure(model, Path(tmp), t, args.tokens, args.rounds) for t in (2, 1)}
    base = rows[2]["alone_gen"]
    print(
        f"\ntokens/s a engine (median of {args.rounds}); ratios against one engine alone, 2 threads"
    )
    print(f"{'':<12}{'alone gen':>14}{'two at once':>16}{'alone prompt':>14}{'two prompt':>12}")
    for t, r in rows.items():
        print(
            f"{t} thread{'s' if t > 1 else ' '}   {r['alone_gen']:>8.1f} {r['alone_gen'] / base:.2f}x"
            f"{r['pair_gen']:>10.1f} {r['pair_gen'] / base:.2f}x"
            f"{r['alone_prompt']:>14.0f}{r['pair_prompt']:>12.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
