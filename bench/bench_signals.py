"""Benchmark: how long coder takes to exit after SIGTERM, against SIGINT, in one run.

coder -q runs against its own managed engine, which is reading a long prompt (a request
in flight: llama.cpp's graceful stop would wait for it); the signal is sent to coder
and the time to its exit is measured. Target: SIGTERM within 1.5x of SIGINT (both
record the call in flight as interrupted and stop the engine the same way).

    python bench/bench_signals.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port, wait_healthy  # noqa: E402
from tests.test_server import coder_env, engine_busy, long_prompt  # noqa: E402


def exit_time(sig: int) -> float:
    """Seconds from `sig` to coder's exit, the engine busy with coder's request."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = coder_env(Path(tmp), port, CODER_LLM__SERVER__CTX_SIZE="8192")
        coder = subprocess.Popen(
            [sys.executable, "-m", "coder", "-q", long_prompt()],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            root = f"http://127.0.0.1:{port}"
            wait_healthy(root, timeout=120)
            while not engine_busy(root):
                time.sleep(0.02)
            start = time.perf_counter()
            coder.send_signal(sig)
            coder.wait(120)
            return time.perf_counter() - start
        finally:
            if coder.poll() is None:
                os.kill(coder.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {"SIGINT": [], "SIGTERM": [], "SIGHUP": []}
    for _ in range(args.runs):  # interleaved, so load on the machine hits all alike
        for name in times:
            times[name].append(exit_time(getattr(signal, name)))
    base = statistics.median(times["SIGINT"])
    print(f"{'signal':<8} {'exit (median s)':>16} {'vs SIGINT':>10}   (runs: {args.runs})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<8} {median:>16.3f} {median / base:>9.2f}x")
    ratio = statistics.median(times["SIGTERM"]) / base
    print(f"target SIGTERM <= 1.5x SIGINT: {'met' if ratio <= 1.5 else 'MISSED'}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
