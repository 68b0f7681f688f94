"""Pinned files and the prompt cache: where a pinned file's content goes.

Eight turns against the real engine, each bringing ~400 tokens of output, and a 2 KB
pinned file edited before turns 3 and 6:
- baseline: the file's current content in the system prompt (what many agents do): an
  edit changes the first message, so the server re-evaluates the whole conversation;
- coder (/add): the content at the end of the user's message when it changed, the
  history before it untouched.
Reported: prompt tokens the server evaluated (timings.prompt_n) and took from its cache
(cache_n), summed over the turns, and the ratio baseline / coder of evaluated tokens.

    python bench/bench_pinned.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coder import provision  # noqa: E402
from coder.config import Sampling  # noqa: E402
from coder.llm import Client  # noqa: E402
from tests.conftest import start_engine  # noqa: E402

TURNS, EDITS = 8, (3, 6)
SAMPLING = Sampling(temperature=0.0, max_tokens=16, seed=1)


def pinned(version: int) -> str:
    body = "\n".join(f"def f{i}(x):\n    return x + {i * version}" for i in range(60))
    return f"```python\n{body}\n```"


def run(client: Client, placement: str) -> tuple[int, int]:
    base = "You are a helpful coding assistant."
    messages = [{"role": "system", "content": base}]
    version, sent_version, evaluated, cached = 1, None, 0, 0
    for turn in range(1, TURNS + 1):
        if turn in EDITS:
            version += 1
        # each turn brings ~400 tokens of its own (pasted output, as work does)
        output = "\n".join(f"line {turn}.{i}: ok value={i * turn}" for i in range(50))
        ask = f"Question {turn}: what does f{turn} return for 1? Output:\n{output}"
        if placement == "system":
            messages[0] = {
                "role": "system",
                "content": f"{base}\n\nPinned file:\n{pinned(version)}",
            }
        elif version != sent_version:
            ask += f"\n\n[pinned file, current content: f.py]\n{pinned(version)}"
            sent_version = version
        messages.append({"role": "user", "content": ask})
        reply = client.chat(messages, [], sampling=SAMPLING, protocol="native")
        messages.append({"role": "assistant", "content": reply.message.get("content") or ""})
        t = reply.timings or {}
        evaluated += int(t.get("prompt_n") or 0)
        cached += int(t.get("cache_n") or 0)
    return evaluated, cached


def main() -> int:
    model = provision.ensure_model()
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_engine(model, Path(d) / "engine.log")
        try:
            with Client(url) as client:
                results = {p: run(client, p) for p in ("system", "message")}
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{TURNS} turns, a pinned file edited before turns {EDITS}")
    for name, (ev, ca) in (
        ("baseline (system prompt)", results["system"]),
        ("coder (/add)", results["message"]),
    ):
        print(
            f"  {name:26s} evaluated {ev:6d}  from cache {ca:6d}  reuse {ca / max(1, ev + ca):.0%}"
        )
    ratio = results["system"][0] / max(1, results["message"][0])
    print(f"  evaluated tokens, baseline / coder: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
