"""Benchmark: the json protocol's reply under llama.cpp's schema converter (response_format)
vs coder's compact grammar (GBNF), same prompts, seeds and engine in one run.

Per mode: replies holding a run of 8+ whitespace characters (padding), whitespace
characters in runs of 2+, completion tokens spent, wall time, and replies that are not
valid JSON although not cut at max_tokens. Target: no padding under the grammar, and
fewer completion tokens than under response_format.

    python bench/bench_json_grammar.py [--seeds 2] [--temperature 0.2 1.0]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import provision, tools  # noqa: E402
from coder.config import Sampling  # noqa: E402
from coder.llm import Client, build_body  # noqa: E402
from tests.conftest import start_engine, stop_engine  # noqa: E402

PROMPTS = [
    "Write a haiku about the sea.",
    "What is 2+2?",
    "List the files here.",
    "Read README.md and summarise it.",
    "Explain recursion briefly.",
    "Say hi.",
    "What does grep do?",
    "Name three colors.",
    "Fix the bug in main.py",
    "Describe Python in one line.",
]


def run(client: Client, grammar: bool, temperature: float, seeds: int) -> dict:
    out = {"padded": 0, "ws": 0, "tokens": 0, "invalid": 0, "n": 0, "s": 0.0}
    schemas = tools.schemas()
    for seed in range(seeds):
        for prompt in PROMPTS:
            sampling = Sampling(temperature=temperature, seed=seed, max_tokens=256)
            messages = [
                {"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": prompt},
            ]
            body = build_body(
                messages, schemas, sampling=sampling, protocol="json", stream=False, grammar=grammar
            )
            started = time.perf_counter()
            resp = client._client.post("/chat/completions", cast_to=object, body=body)
            out["s"] += time.perf_counter() - started
            choice = resp["choices"][0]
            text = choice["message"]["content"] or ""
            runs = [len(w) for w in re.findall(r"[ \t\n]{2,}", text)]
            out["n"] += 1
            out["ws"] += sum(runs)
            out["padded"] += bool(runs) and max(runs) >= 8
            out["tokens"] += resp["usage"]["completion_tokens"]
            try:
                json.loads(text)
            except ValueError:
                out["invalid"] += choice["finish_reason"] != "length"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--temperature", type=float, nargs="+", default=[0.2, 1.0])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_engine(provision.ensure_model(), Path(tmp) / "engine.log")
        client = Client(url)
        try:
            print(
                f"{'mode':<16}{'temp':>5}{'padded':>9}{'ws chars':>10}{'tokens':>8}"
                f"{'seconds':>9}{'invalid':>9}"
            )
            ok = True
            for temperature in args.temperature:
                rows = {}
                for mode, grammar in (("response_format", False), ("grammar", True)):
                    r = rows[mode] = run(client, grammar, temperature, args.seeds)
                    print(
                        f"{mode:<16}{temperature:>5}{r['padded']:>5}/{r['n']:<3}{r['ws']:>10}"
                        f"{r['tokens']:>8}{r['s']:>9.1f}{r['invalid']:>9}"
                    )
                ratio = rows["grammar"]["tokens"] / max(1, rows["response_format"]["tokens"])
                print(f"  completion tokens, grammar / response_format: {ratio:.2f}x")
                ok &= rows["grammar"]["padded"] == 0 and ratio < 1.0
        finally:
            client.close()
            stop_engine(proc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
