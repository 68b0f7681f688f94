"""Benchmark: llama.cpp prompt-cache reuse over a multi-step tool session.

The agent keeps the message prefix byte-stable between steps, so from step 2 on the
server should serve the earlier prompt from its cache. Per step: cache_n / (cache_n +
prompt_n) from the server's own `timings`. Target: >= 90 % on steps >= 2.

    python bench/bench_cache.py [--steps 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import provision  # noqa: E402
from coder.agent import Agent, run_turn  # noqa: E402
from coder.config import Config  # noqa: E402
from coder.llm import Client  # noqa: E402
from coder.log import Recorder  # noqa: E402
from coder.tools import ToolContext  # noqa: E402
from coder.tools.workspace import Workspace  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402


class Calls:
    def __init__(self) -> None:
        self.timings: list[dict] = []

    def log(self, record: dict) -> None:
        if record["type"] == "model_call" and record.get("timings"):
            self.timings.append(record["timings"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    model = provision.ensure_model()
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "coder.engine", "-m", str(model), "--port", str(port), "-c", "8192"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", engine)
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(3):
                Path(tmp, f"notes{i}.md").write_text(f"Note {i}\n" + "some text\n" * 20)
            cfg = Config()
            cfg.agent.max_steps = args.steps
            cfg.llm.sampling.temperature = 0.0
            cfg.llm.sampling.max_tokens = 96
            calls = Calls()
            recorder = Recorder(calls)
            client = Client(f"http://127.0.0.1:{port}/v1")
            # tools forever: the model keeps reading and listing until max_steps
            agent = Agent(
                client,
                cfg,
                ToolContext(workspace=Workspace(tmp)),
                recorder,
                tool_names=["read_file", "list_dir"],
            )
            run_turn(agent, "Read every notes file in this folder, one by one.")
            client.close()
    finally:
        engine.terminate()
        engine.wait(10)

    print(f"{'step':>4} {'prompt_n':>9} {'cache_n':>8} {'from cache':>11}")
    later = []
    for step, t in enumerate(calls.timings, 1):
        total = t["prompt_n"] + t["cache_n"]
        share = t["cache_n"] / total if total else 0.0
        if step >= 2:
            later.append(share)
        print(f"{step:>4} {t['prompt_n']:>9} {t['cache_n']:>8} {share:>10.1%}")
    if later:
        mean = sum(later) / len(later)
        print(f"steps >= 2: {mean:.1%} of prompt tokens from the cache (target >= 90%)")
        return 0 if mean >= 0.9 else 1
    print("the model answered in one step; no reuse to measure")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
