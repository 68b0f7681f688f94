"""Logger benchmark: throughput vs a stdlib json writer, enqueue latency, drops, exit drain.

Run: .venv/bin/python bench/bench_logger.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coder.chat import ChatResult  # noqa: E402
from coder.log import Logger, Recorder  # noqa: E402

VOCAB = [
    " the",
    " file",
    " read",
    "_file",
    "(",
    ")",
    ":",
    "\n",
    "    ",
    "def",
    " x",
    " =",
    " 1",
    "{",
    "}",
    '"',
    "path",
    " test",
    " fix",
    " import",
    " os",
    ".",
    ",",
    " return",
]
NORMAL_RATE = 1_000  # events/s: a busy agent (~100 tok/s streamed + calls + tools), generous


class _Capture:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def log(self, record: dict) -> None:
        self.records.append(record)


def model_call_records(n_variants: int = 8, tokens: int = 128) -> list[dict]:
    """model_call records exactly as the Recorder emits them (128 tokens with logprobs)."""
    rng = random.Random(0)
    cap = _Capture()
    rec = Recorder(cap, "bench")
    msgs = [{"role": "system", "content": "You are coder. " * 60}]
    for step in range(n_variants):
        msgs.append({"role": "user", "content": f"step {step}: fix the failing test in mod{step}"})
        toks = [rng.choice(VOCAB) for _ in range(tokens)]
        text = "".join(toks)
        lp = [
            {
                "id": rng.randrange(49152),
                "token": t,
                "bytes": list(t.encode()),
                "logprob": float(array("f", [-rng.random() * 3])[0]),  # float32, as llama.cpp
            }
            for t in toks
        ]
        reply = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{step}",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "src/x.py"}'},
                }
            ],
        }
        rec.model_call(
            turn=1,
            step=step,
            reply=ChatResult(
                tool_calls=[],
                request={
                    "model": "smol",
                    "messages": list(msgs),
                    "temperature": 0.2,
                    "top_p": 0.9,
                    "max_tokens": 1024,
                    "stream": True,
                    "logprobs": True,
                },
                message=reply,
                raw_content=text,
                finish_reason="tool_calls",
                usage={"prompt_tokens": 900 + step, "completion_tokens": tokens},
                timings={"prompt_n": 30, "cache_n": 870, "predicted_n": tokens, "prompt_ms": 110.0},
                logprobs=lp,
                protocol="native",
                duration_ms=1500.0,
            ),
        )
        msgs.append(reply)
    return [r for r in cap.records if r["type"] == "model_call"]


def bench_throughput(records: list[dict], n: int, trials: int = 3) -> tuple[float, float, int]:
    """Events/s from the first log() to the end of close() (all on disk), best of
    ``trials`` alternating with the baseline, so both see the same machine load."""
    k = len(records)
    ours = base = 0.0
    avg_bytes = 0
    for _ in range(trials):
        with tempfile.TemporaryDirectory() as d:
            lg = Logger(d)
            t0 = time.perf_counter()
            for i in range(n):
                lg.log(records[i % k])
            lg.close()
            ours = max(ours, n / (time.perf_counter() - t0))
            st = lg.stats()
            assert st["written"] == n and st["dropped"] == 0, st
            avg_bytes = st["bytes"] // n
        with tempfile.TemporaryDirectory() as d, open(Path(d) / "base.jsonl", "w") as f:
            t0 = time.perf_counter()
            for i in range(n):
                f.write(json.dumps(records[i % k]) + "\n")
            f.flush()
            base = max(base, n / (time.perf_counter() - t0))
    return ours, base, avg_bytes


def bench_latency(records: list[dict], n: int) -> dict[str, float]:
    """Per-call log() latency while the writer thread is serialising earlier bursts."""
    lat: list[int] = []
    pc = time.perf_counter_ns
    with tempfile.TemporaryDirectory() as d:
        lg = Logger(d)
        k = len(records)
        burst = lg.buffer_size // 2
        done = 0
        while done < n:
            for _ in range(burst):
                t = pc()
                lg.log(records[done % k])
                lat.append(pc() - t)
                done += 1
            # the writer drains the burst now, while the next burst is enqueued
            time.sleep(0.0005)
        lg.close()
        assert lg.stats()["dropped"] == 0
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000

    return {"p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "max": lat[-1] / 1000}


def bench_drops(rate: int, seconds: float, record: dict) -> tuple[int, int]:
    """Low-value (droppable) events at ``rate``/s, paced in 10 ms ticks, default buffer."""
    with tempfile.TemporaryDirectory() as d:
        lg = Logger(d, droppable={record["type"]})
        per_tick = max(1, rate // 100)
        sent = 0
        start = time.perf_counter()
        ticks = int(seconds * 100)
        for tick in range(ticks):
            for _ in range(per_tick):
                lg.log(record)
                sent += 1
            wait = start + (tick + 1) / 100 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        lg.close()
        return sent, lg.stats()["dropped"]


def bench_flood(record: dict, n: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as d:
        lg = Logger(d, droppable={record["type"]})
        for _ in range(n):
            lg.log(record)
        lg.close()
        return n, lg.stats()["dropped"]


def bench_drain(records: list[dict]) -> tuple[float, int]:
    """close() with a full default buffer (writer stalled while it filled)."""
    with tempfile.TemporaryDirectory() as d:
        lg = Logger(d)
        with lg._io:  # stall the writer so the queue really is full
            for i in range(lg.buffer_size):
                lg.log(records[i % len(records)])
            queued = lg.stats()["queued"]
        t0 = time.perf_counter()
        lg.close()
        return (time.perf_counter() - t0) * 1000, queued


def bench_disk_full(records: list[dict], seconds: float = 0.3) -> tuple[int, int, float]:
    """os.write fails with ENOSPC for ``seconds`` while model_calls are logged at the
    normal rate; returns (sent, written, ms from the disk coming back to all written)."""
    real = os.write
    state = {"full": True}
    with tempfile.TemporaryDirectory() as d:

        def write(fd: int, data: bytes) -> int:
            if state["full"] and os.readlink(f"/proc/self/fd/{fd}").startswith(d):
                raise OSError(28, "No space left on device")
            return real(fd, data)

        os.write = write  # stands in for the kernel
        try:
            lg = Logger(d, flush_interval=0.05)
            sent = 0
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                lg.log(records[sent % len(records)])
                sent += 1
                time.sleep(1 / NORMAL_RATE)
            state["full"] = False
            t0 = time.perf_counter()
            while lg.stats()["written"] < sent and time.perf_counter() - t0 < 5:
                time.sleep(0.005)
            recovered_ms = (time.perf_counter() - t0) * 1000
            lg.close()
        finally:
            os.write = real
        return sent, lg.stats()["written"], recovered_ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args(argv)
    records = model_call_records()
    low = {"v": 1, "ts": time.time(), "type": "stream_delta", "session_id": "b", "text": "tok"}

    ours, base, size = bench_throughput(records, args.events)
    lat = bench_latency(records, min(args.events, 50_000))
    sent10, drop10 = bench_drops(NORMAL_RATE * 10, 2.0, low)
    flood_n, flood_drop = bench_flood(low, 200_000)
    drain_ms, queued = bench_drain(records)
    full_sent, full_written, full_ms = bench_disk_full(records)
    threads = threading.active_count()

    rows = [
        (f"throughput, model_call (~{size} B)", f"{ours:,.0f} ev/s", ">= 100,000", ours >= 1e5),
        ("  baseline: stdlib json, sync", f"{base:,.0f} ev/s", "-", None),
        ("  speed-up over baseline", f"{ours / base:.1f}x", "-", None),
        ("enqueue latency p50", f"{lat['p50']:.2f} us", "-", None),
        ("enqueue latency p99 (writer busy)", f"{lat['p99']:.2f} us", "< 50 us", lat["p99"] < 50),
        ("enqueue latency p99.9 / max", f"{lat['p999']:.1f} / {lat['max']:.0f} us", "-", None),
        (
            f"drops at 10x normal ({NORMAL_RATE * 10:,}/s, 2 s)",
            f"{drop10} of {sent10}",
            "report",
            None,
        ),
        ("drops, unpaced flood (low-value)", f"{flood_drop:,} of {flood_n:,}", "report", None),
        (f"drain at exit, {queued} queued", f"{drain_ms:.1f} ms", "<= 100 ms", drain_ms <= 100),
        (
            "ENOSPC for 0.3 s: written / sent",
            f"{full_written} / {full_sent}",
            "all",
            full_written == full_sent,
        ),
        ("  disk back -> all written", f"{full_ms:.0f} ms", "<= 2.5 s", full_ms <= 2500),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'logger benchmark':<{w}}  {'result':>22}  {'target':>10}  ok")
    print("-" * (w + 42))
    for name, val, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<{w}}  {val:>22}  {target:>10}  {mark}")
    load = os.getloadavg()[0]
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load:.1f}; best of 3)")
    assert threads >= 1
    return 0 if all(r[3] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
