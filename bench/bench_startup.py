"""Benchmark: start-up costs of the foundation, as ratios and differences in one run.

- `coder --version` vs bare `python -c pass` (target <= 1.5x: imports stay lazy)
- ready when reusing a running server, interpreter start included (target <= 400 ms)
- managed cold start to ready vs the engine started by hand with the same flags
  (target <= 150 ms more)

    python bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import provision  # noqa: E402
from tests.conftest import free_port, wait_healthy  # noqa: E402

READY_WHEN_REUSING = """
import sys, time
from coder import config, server
cfg = config.load(None, env={}, cwd="/")
cfg.llm.base_url = sys.argv[1]
server.connect(cfg, "/tmp")
"""

MANAGED_START = """
import sys, time
t0 = time.perf_counter()
from coder import config, server
cfg = config.load(None, env={}, cwd="/")
cfg.llm.base_url = sys.argv[1]
cfg.llm.server.model_path = sys.argv[2]
s = server.connect(cfg, sys.argv[3])
print(time.perf_counter() - t0)  # from coder's imports to /health 200; the stop is not timed
server.stop(s)
"""


def timed(cmd: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def engine_by_hand(model: str, port: int) -> float:
    """Start the engine directly (same flags as coder passes) and time it to /health 200."""
    from coder import config, server

    cfg = config.load(None, env={}, cwd="/")
    cfg.llm.base_url = f"http://127.0.0.1:{port}/v1"
    cmd = server.build_command(cfg, [sys.executable, "-m", "coder.engine"], model)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    model = str(provision.ensure_model())
    py = sys.executable
    # pip compiles an installed wheel; do the same for this checkout so we time imports,
    # not the compiler (PYTHONDONTWRITEBYTECODE may be set on this machine).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "coder", quiet=1)
    rows = []

    bare, module, script, floor = [], [], [], []
    for _ in range(args.runs * 2):  # interleaved, so load changes hit all alike
        bare.append(timed([py, "-c", "pass"]))
        module.append(timed([py, "-m", "coder", "--version"]))
        script.append(timed([str(Path(py).parent / "coder"), "--version"]))
        floor.append(timed([py, "-c", "import re"]))
    b = statistics.median(bare)
    for name, samples in (
        ("python -m coder --version / python -c pass", module),
        ("coder --version (console script)", script),
        ("  floor: its pip wrapper's `import re`", floor),
    ):
        v = statistics.median(samples)
        rows.append((name, f"{v * 1000:.0f} / {b * 1000:.0f} ms", f"{v / b:.2f}x", "<= 1.5x"))

    port = free_port()
    cfg_cmd = [py, "-m", "coder.engine", "-m", model, "--port", str(port), "-c", "4096"]
    engine = subprocess.Popen(cfg_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", engine)
        reuse = [
            timed([py, "-c", READY_WHEN_REUSING, f"http://127.0.0.1:{port}/v1"])
            for _ in range(args.runs)
        ]
    finally:
        engine.terminate()
        engine.wait(10)
    r = statistics.median(reuse)
    rows.append(("ready when reusing (incl. interpreter)", f"{r * 1000:.0f} ms", "", "<= 400 ms"))

    by_hand, managed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(3, args.runs // 2)):
            by_hand.append(engine_by_hand(model, free_port()))
            port = free_port()
            out = subprocess.run(
                [py, "-c", MANAGED_START, f"http://127.0.0.1:{port}/v1", model, tmp],
                capture_output=True,
                text=True,
                check=True,
            )
            managed.append(float(out.stdout.strip()))
    h, m = statistics.median(by_hand), statistics.median(managed)
    rows.append(
        (
            "managed cold start vs engine by hand",
            f"{m * 1000:.0f} / {h * 1000:.0f} ms",
            f"+{(m - h) * 1000:.0f} ms",
            "<= +150 ms",
        )
    )
    # (the managed figure includes its own interpreter start and the stop; see the README)

    print(f"{'measure':<42} {'value':>20} {'result':>10}   target")
    for name, value, result, target in rows:
        print(f"{name:<42} {value:>20} {result:>10}   {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
