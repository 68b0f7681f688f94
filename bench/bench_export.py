"""Export benchmark: throughput of every format against `cat`, and peak memory vs log size.

For each size a synthetic log is written in a temporary directory through the real
Logger + Recorder: realistic sessions (json and native protocol, cut replies, tool
errors, repeated calls, file reads of 1-6 KB), 4 rollouts a task with rewards 1, 0,
0.5, -1 (so grpo groups of 4 and dpo pairs), every task's texts distinct. Writing it
costs about 1 s per 30 MB, so no copying of lines is needed.

Measured, each export in its own child process (`coder.export.export` to a file):
- throughput, rows/s and MB/s of log read, at the largest size, against `cat` of the
  same files to /dev/null in the same run (export/cat is the figure; report only);
- peak RSS (the child's VmHWM) at each size. Target: the peak at the largest size is
  at most 1.5x the peak at the smallest (memory flat while the log grows).

    python bench/bench_export.py [--sizes 100 1000] [--formats sft dpo]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coder.export import FORMATS  # noqa: E402
from coder.log import Logger, Recorder  # noqa: E402
from tests.export_session import TOOLS, ScriptedAgent  # noqa: E402

MAX_PEAK_RATIO = 1.5
ATTEMPTS = 4  # rollouts a task: one grpo group of 4 completions, dpo pairs between them
REWARDS = (1.0, 0.0, 0.5, -1.0)

WORDS = [
    "x",
    "y",
    "total",
    "path",
    "items",
    "result",
    "value",
    "count",
    "name",
    "data",
    "buf",
    "line",
    "self",
    "cfg",
]

CHILD = """
import json, sys, time
from pathlib import Path
from coder.export import export

def hwm():  # ru_maxrss would report the parent's peak if larger (kept across fork+exec)
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))

base = hwm()  # after the imports
t0 = time.perf_counter()
st = export([Path(sys.argv[1])], sys.argv[2], Path(sys.argv[3]))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": st.rows, "sessions": st.sessions,
    "skipped_lines": st.skipped_lines, "broken_calls": st.broken_calls,
    "peak_kib": hwm(), "imports_kib": base}))
"""


def _code(rng: random.Random, lines: int) -> str:
    out = []
    for n in range(lines):
        a, b = rng.sample(WORDS, 2)
        out.append(f"    {a}_{n} = {b}.get({rng.randrange(1000)}) or {rng.random():.4f}")
    return "def handler(cfg, data):\n" + "\n".join(out) + "\n    return data\n"


def _session(rec: Recorder, task: int, attempt: int, rng: random.Random) -> None:
    """One rollout of ``task``: its first turn's prompt is the same for every attempt."""
    protocol = "json" if task % 2 else "native"
    rec.session_start(
        config={}, model={"alias": "smol"}, tools=TOOLS, workspace="/w", git_head=None
    )
    a = ScriptedAgent(rec, protocol)
    mod = f"pkg/mod{task}.py"
    a.user(f"Fix the failing test for {mod} (ticket #{task:05d}).")
    if attempt == 2:
        a.unreadable('```json\n{"tool": "read_file", "arguments": {"pa')
    if attempt == 1:
        a.call("call_e", f"pkg/missing{task}.py", f"error: pkg/missing{task}.py not found", True)
    for k in range(1 + attempt % 3):
        a.call(f"call_{k}", f"pkg/mod{task}_{k}.py", _code(rng, rng.randrange(20, 120)))
    if attempt == 3:
        for k in range(3):
            a.call(f"call_r{k}", mod, "x = 1")
        a.end_turn("repeated_call", REWARDS[attempt])
    else:
        a.answer(f"Fixed {mod}: the handler now returns data ({rng.randrange(10**6)}).")
        a.end_turn("answer", REWARDS[attempt], errors=int(attempt == 1))
    a.user(f"Now run the tests for {mod}.")
    a.call("call_t", f"tests/test_mod{task}.py", _code(rng, rng.randrange(10, 60)))
    a.answer(f"{rng.randrange(1, 50)} passed.")
    a.end_turn("answer", 0.0)
    rec.reward(REWARDS[attempt], "verifier")
    rec.session_end("exit")


def write_log(d: Path, size: int) -> int:
    """Sessions through the real Logger + Recorder into ``d`` until ``size`` bytes
    (rotated into 256 MiB files as in use). Returns the sessions written."""
    lg = Logger(d)
    rng = random.Random(0)
    task = 0
    while True:
        for attempt in range(ATTEMPTS):
            _session(Recorder(lg, f"{task * ATTEMPTS + attempt:032x}"), task, attempt, rng)
        task += 1
        if task % 10 == 0:
            lg.flush()
            if lg.stats()["bytes"] >= size:
                break
    lg.close()
    assert lg.stats()["dropped"] == 0
    return task * ATTEMPTS


def cat_seconds(d: Path, trials: int = 2) -> float:
    files = sorted(map(str, d.glob("*.jsonl")))
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def run_export(logs: Path, fmt: str, out: Path) -> dict:
    """One export in a fresh interpreter, so its peak RSS is this export's alone."""
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(logs), fmt, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    out.unlink(missing_ok=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], metavar="MB")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    args = ap.parse_args(argv)
    sizes = sorted(args.sizes)
    t_start = time.perf_counter()
    rows: list[tuple[str, str, str, bool | None]] = []
    with tempfile.TemporaryDirectory(prefix="coder-bench-export-") as tmp:
        results: dict[int, dict[str, dict]] = {}
        cat_mbs: dict[int, float] = {}
        mb: dict[int, float] = {}
        gen_s: dict[int, float] = {}
        for size in sizes:
            logs = Path(tmp) / f"logs{size}"
            t0 = time.perf_counter()
            n_sessions = write_log(logs, size * 1_000_000)
            gen_s[size] = time.perf_counter() - t0
            mb[size] = sum(p.stat().st_size for p in logs.glob("*.jsonl")) / 1e6
            cat_mbs[size] = mb[size] / cat_seconds(logs)
            results[size] = {}
            for fmt in args.formats:
                r = run_export(logs, fmt, Path(tmp) / f"out-{fmt}.jsonl")
                # the reader must accept every generated line and session
                assert r["skipped_lines"] == 0 and r["broken_calls"] == 0, r
                assert r["sessions"] == n_sessions, (r, n_sessions)
                results[size][fmt] = r
            print(f"  ({size} MB done at {time.perf_counter() - t_start:.0f} s)", flush=True)

        big, small = sizes[-1], sizes[0]
        for size in sizes:
            rows.append(
                (
                    f"write log via Logger+Recorder, {mb[size]:.0f} MB",
                    f"{gen_s[size]:.1f} s",
                    "-",
                    None,
                )
            )
        rows.append((f"cat to /dev/null, {mb[big]:.0f} MB", f"{cat_mbs[big]:,.0f} MB/s", "-", None))
        for fmt in args.formats:
            r = results[big][fmt]
            mbs = mb[big] / r["seconds"]
            rows.append(
                (
                    f"export {fmt}, {mb[big]:.0f} MB ({r['rows']:,} rows)",
                    f"{r['rows'] / r['seconds']:,.0f} rows/s, {mbs:.1f} MB/s",
                    "report",
                    None,
                )
            )
            rows.append((f"  {fmt} / cat", f"{mbs / cat_mbs[big]:.3f}x", "-", None))
        for fmt in args.formats:
            peaks = [results[s][fmt]["peak_kib"] / 1024 for s in sizes]
            ratio = peaks[-1] / peaks[0]
            label = " / ".join(f"{mb[s]:.0f}" for s in sizes) + " MB"
            base = results[big][fmt]["imports_kib"] / 1024
            rows.append(
                (
                    f"peak RSS {fmt}, {label}",
                    " / ".join(f"{p:.0f}" for p in peaks) + f" MiB (imports {base:.0f})",
                    "-",
                    None,
                )
            )
            ok = ratio <= MAX_PEAK_RATIO if big > small else None
            rows.append(
                (f"  peak {mb[big]:.0f} MB / {mb[small]:.0f} MB", f"{ratio:.2f}x", "<= 1.5x", ok)
            )

    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print(f"{'export benchmark':<{w}}  {'result':>{v}}  {'target':>8}  ok")
    print("-" * (w + v + 16))
    for name, val, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<{w}}  {val:>{v}}  {target:>8}  {mark}")
    load = os.getloadavg()[0]
    print(
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load:.1f}; "
        f"total {time.perf_counter() - t_start:.0f} s)"
    )
    return 0 if all(r[3] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
