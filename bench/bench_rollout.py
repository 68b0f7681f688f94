"""Rollout benchmark: coder's own cost per attempt, throughput with W workers, and the
default model's pass rate on the example task set.

1. Overhead: `coder rollout` against a scripted server that answers at once, attempts of
   a task whose verifier is `true`: the time per attempt (from runs of 1 and 1+K
   attempts, so process start and server probe cancel out) against the same
   `git worktree add` / `remove` and verifier run by hand, in the same run.
2. Throughput: attempts per minute with --workers 1, 2, 4 against one engine with 4
   slots (the same 8 attempts, same seeds), and the scaling ratio against W=1.
3. Quality: the whole example set (examples/tasks, N=2) with the default model:
   pass@1 and pass@2, reported as they are.

    python bench/bench_rollout.py [--skip-quality]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.coder_cli import coder  # noqa: E402
from coder import provision  # noqa: E402
from tests.conftest import free_port, start_engine  # noqa: E402
from tests.scripted_server import ScriptedServer, completion  # noqa: E402

EXAMPLES = ROOT / "examples" / "tasks"
K = 20  # attempts in the overhead run beyond the first


def timed(*args: str, env: dict | None = None, cwd: Path | None = None) -> float:
    """Seconds `coder ARGS` took."""
    started = time.perf_counter()
    coder(*args, env=env, cwd=cwd)
    return time.perf_counter() - started


def overhead(tmp: Path) -> None:
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("hello\n")
    tasks = tmp / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t", "prompt": "p", "repo": "repo", "verify": "true"}))
    with ScriptedServer() as srv:
        srv.default = completion("done")
        env = {"CODER_BASE_URL": srv.base_url, "CODER_LLM__AUTO_MANAGE": "false"}
        common = ["rollout", str(tasks), "--tool-protocol", "native"]
        one = timed(*common, "-n", "1", "--logs", str(tmp / "l1"), env=env)
        many = timed(*common, "-n", str(1 + K), "--logs", str(tmp / "l2"), env=env)
    per_coder = (many - one) / K

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
        cwd=repo,
        check=True,
    )
    started = time.perf_counter()
    for i in range(K):
        wt = tmp / f"wt{i}"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(wt)], cwd=repo, check=True)
        subprocess.run(["bash", "-c", "true"], cwd=wt, check=True)
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=repo, check=True)
    per_hand = (time.perf_counter() - started) / K
    print(f"overhead per attempt (scripted model answers at once, verifier `true`, {K} attempts)")
    print(f"  coder rollout          {per_coder * 1000:8.1f} ms")
    print(f"  worktree + verify, by hand {per_hand * 1000:8.1f} ms")
    print(f"  ratio                  {per_coder / per_hand:8.2f}x")


def subset(tmp: Path, ids: tuple[str, ...] | None) -> Path:
    dest = tmp / "tasks"
    if not dest.exists():
        shutil.copytree(EXAMPLES, dest)
    lines = (dest / "tasks.jsonl").read_text().splitlines()
    if ids is not None:
        lines = [line for line in lines if json.loads(line)["id"] in ids]
    path = dest / f"subset-{len(lines)}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def throughput(tmp: Path, model: Path) -> None:
    tasks = subset(tmp, ("fix-add", "version-file", "readme-first-line", "find-slugify"))
    proc, base_url = start_engine(model, tmp / "engine.log", "-np", "4", "-c", "16384")
    rates = {}
    try:
        for w in (1, 2, 4):
            args = ["rollout", str(tasks), "-n", "2", "-w", str(w), "--seed", "7"]
            args += ["--max-steps", "4", "--max-tokens", "128", "--temperature", "0.8"]
            args += ["--base-url", base_url, "--no-auto-manage", "--logs", str(tmp / f"w{w}")]
            seconds = timed(*args)
            rates[w] = 8 / seconds * 60
    finally:
        proc.terminate()
        proc.wait(30)
    print("\nthroughput, 8 attempts (4 tasks x 2), max 4 steps x 128 tokens, one engine -np 4")
    for w, rate in rates.items():
        print(f"  W={w}  {rate:6.1f} attempts/min   {rate / rates[1]:.2f}x W=1")


def quality(tmp: Path) -> None:
    tasks = subset(tmp, None)
    report = tmp / "quality.json"
    port = free_port()
    args = ["eval", str(tasks), "-n", "2", "-w", "2", "--max-steps", "6", "--max-tokens", "256"]
    args += ["--temperature", "0.8", "--logs", str(tmp / "q"), "--report", str(report)]
    coder(*args, env={"CODER_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    rep = json.loads(report.read_text())["variants"][0]
    o = rep["overall"]
    print("\nquality: examples/tasks (12 tasks), N=2, default model, 6 steps x 256 tokens, T=0.8")
    print(
        f"  pass@1 {100 * (o['pass_at'].get('1') or 0):.1f}%   pass@2 {100 * (o['pass_at'].get('2') or 0):.1f}%"
        f"   {o['passes']}/{o['attempts']} attempts passed, {o['errors']} errors"
    )
    for task_id, t in rep["tasks"].items():
        print(f"  {task_id:20s} {t['passes']}/{t['attempts']}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    model = provision.ensure_model()
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as d:
        tmp = Path(d)
        (tmp / "o").mkdir()
        overhead(tmp / "o")
        throughput(tmp, model)
        if not args.skip_quality:
            quality(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
