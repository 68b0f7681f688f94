"""Benchmark: `coder models` over a tree of 10,000 files and 20 GGUFs.

The tree: 10,000 small non-model files in 100 directories, 2 hard links of the real
SmolLM2 GGUF (98 MB, a 49,152-token vocabulary in its header) and 18 synthetic GGUFs
(tests/gguf_files.py) with vocabularies of 32k to 152k tokens, like real models' headers.

- `coder models` end to end (a process), against `python -P -c pass` in the same run;
- discovery in process against a bare os.walk of the same tree (the cost of the headers);
- one header read per vocabulary size;
- memory: peak RSS of discovering 1 GGUF vs all 20 (equal: only headers are read, each
  file is unmapped before the next), and Python's own peak allocation per header.
Targets: `coder models` under 2 s; RSS with 20 GGUFs within 5 MB of RSS with 1.

    python bench/bench_models.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import models, provision  # noqa: E402
from tests.gguf_files import write_gguf  # noqa: E402

TARGET_S = 2.0
TARGET_RSS_MB = 5.0
RSS = """
import resource, sys
from pathlib import Path
from coder import models
found = models.discover([Path(sys.argv[1])])
assert found, sys.argv[1]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def build_tree(root: Path, real: Path) -> None:
    for d in range(100):
        sub = root / f"pkg{d:03d}" / "src"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"file{f:03d}.py").write_text(f"x = {f}\n")
    for i in range(2):
        os.link(real, root / f"pkg{i:03d}" / f"smol-{i}.gguf")
    for i in range(18):
        vocab = 32_000 + i * 7_000  # 32k .. 151k
        write_gguf(root / f"pkg{i + 10:03d}" / f"synthetic-{i:02d}-Q4_K_M.gguf", vocab=vocab)


def median_s(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    real = provision.ensure_model()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        build_tree(tree, real)
        one = Path(tmp) / "one"
        one.mkdir()
        os.link(real, one / "smol.gguf")
        env = dict(os.environ, CODER_LLM__MODEL_DIRS=str(tree))
        cmd = [sys.executable, "-P", "-m", "coder", "models"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        listed = sum(1 for line in out.splitlines() if ".gguf" in line)
        files = sum(len(f) for _, _, f in os.walk(tree))
        print(f"tree: {files} files, {listed} GGUFs listed; runs: {args.runs} (median)\n")

        def run_cli() -> None:
            subprocess.run(cmd, env=env, capture_output=True, check=True)

        def bare() -> None:
            subprocess.run([sys.executable, "-P", "-c", "pass"], check=True)

        cli, python = median_s(run_cli, args.runs), median_s(bare, args.runs)
        walk = median_s(lambda: [f for _, _, f in os.walk(tree)], args.runs)
        disc = median_s(lambda: models.discover([tree]), args.runs)
        print(f"{'':34} {'s':>8} {'vs baseline':>12}")
        print(
            f"{'coder models (process)':34} {cli:8.3f} {cli / python:11.1f}x  (python -c pass {python:.3f} s)"
        )
        print(
            f"{'discover() in process':34} {disc:8.3f} {disc / walk:11.1f}x  (bare os.walk {walk:.3f} s)"
        )

        print(f"\n{'one header':34} {'ms':>8} {'py peak KB':>12}")
        for path in [one / "smol.gguf", *tree.glob("pkg01[0]/*.gguf"), *tree.glob("pkg027/*.gguf")]:
            ms = median_s(lambda p=path: models.describe(p), args.runs) * 1000
            tracemalloc.start()
            info = models.describe(path)
            peak = tracemalloc.get_traced_memory()[1] / 1024
            tracemalloc.stop()
            size = path.stat().st_size / 1e6
            print(
                f"{path.name[:26] + f' ({size:.0f} MB)':34} {ms:8.1f} {peak:12.0f}  {info.file_type} {info.architecture}"
            )

        def rss(d: Path) -> float:
            proc = subprocess.run(
                [sys.executable, "-P", "-c", RSS, str(d)],
                capture_output=True,
                text=True,
                check=True,
            )
            return int(proc.stdout) / 1024

        rss_one, rss_all = rss(one), rss(tree)
        print(
            f"\npeak RSS: 1 GGUF {rss_one:.1f} MB, 20 GGUFs + 10k files {rss_all:.1f} MB "
            f"(+{rss_all - rss_one:.1f} MB)"
        )
    ok = cli <= TARGET_S and rss_all - rss_one <= TARGET_RSS_MB
    print(
        f"targets: coder models <= {TARGET_S} s, RSS growth <= {TARGET_RSS_MB} MB: "
        + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
