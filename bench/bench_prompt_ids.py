"""Benchmark: the cost of `logging.prompt_ids` per model call.

The same json-protocol chat call (a real prompt of ~600 tokens, 16 generated, temp 0)
with and without prompt ids, interleaved in one run against the real engine. With them
the client asks for llama.cpp's `verbose` (the rendered prompt comes back in the final
chunk) and, after the reply, POSTs it to /tokenize. That added step is also timed on its
own: on a loaded machine a whole call varies by more than it costs. Target: under 5 ms a
call (the default is on only then).

    python bench/bench_prompt_ids.py [--calls 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import provision  # noqa: E402
from coder.config import Config  # noqa: E402
from coder.llm import Client  # noqa: E402
from coder.tools import schemas  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402

TARGET_MS = 5.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args(argv)
    model = provision.ensure_model()
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-P", "-m", "coder.engine", "-m", str(model), "--port", str(port)]
        + ["-c", "8192", "-np", "1", "-t", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        wait_healthy(root, engine)
        sampling = Config().llm.sampling
        sampling.temperature, sampling.max_tokens, sampling.seed = 0.0, 16, 1
        messages = [
            {"role": "system", "content": "You are coder, a coding assistant."},
            {"role": "user", "content": "Read README.md and tell me its first line."},
        ]
        tools = schemas()
        plain = Client(root + "/v1", prompt_ids=False)
        with_ids = Client(root + "/v1", prompt_ids=True)
        added: list[float] = []
        add_ids = with_ids._add_prompt_ids

        def timed(*a: object) -> None:
            started = time.perf_counter()
            add_ids(*a)
            added.append((time.perf_counter() - started) * 1000)

        with_ids._add_prompt_ids = timed  # type: ignore[method-assign]
        times: dict[str, list[float]] = {"without": [], "with": []}
        n_ids = n_prompt = 0
        for i in range(args.calls + 2):  # the first pair warms the prompt cache
            for name, client in (("without", plain), ("with", with_ids)):
                started = time.perf_counter()
                reply = client.chat(
                    messages, tools, sampling=sampling, protocol="json", logprobs=True
                )
                if i >= 2:
                    times[name].append((time.perf_counter() - started) * 1000)
                if reply.prompt_ids is not None:
                    n_ids, n_prompt = len(reply.prompt_ids), reply.usage["prompt_tokens"]
        base = statistics.median(times["without"])
        whole = statistics.median(times["with"])
        cost = statistics.median(added[2:])
        print(f"prompt: {n_prompt} tokens, {n_ids} ids; {args.calls} calls each, medians")
        print(f"{'':<28}{'ms/call':>10}{'ratio':>8}")
        print(f"{'without prompt ids':<28}{base:>10.1f}{1.0:>8.3f}")
        print(f"{'with prompt ids':<28}{whole:>10.1f}{whole / base:>8.3f}")
        print(f"{'  of which /tokenize after':<28}{cost:>10.1f}{(base + cost) / base:>8.3f}")
        print(f"cost per call: {cost:.1f} ms (target < {TARGET_MS} ms)")
        return 0 if cost < TARGET_MS and n_ids == n_prompt else 1
    finally:
        engine.terminate()
        engine.wait(10)


if __name__ == "__main__":
    sys.exit(main())
