"""The loop, measured: pass@1 of the default model (SmolLM2-135M) in each setup, on tasks
it was never trained on, and with the adapter `coder train --recipe starter` makes.

Two held-out sets, both apart from the recipe's training draw (generated, seed 1):
  examples  examples/tasks: 12 hand-written tasks on three small repositories
  heldout   a generated draw with another seed (2): the recipe's task families, other
            files, names, values and wordings

Setups (no training first, as the issue asks, then the adapter):
  default      json tool protocol, the default tools
  small-tools  json, the recipe's five tools (read_file write_file replace_in_file list_dir grep)
  one-example  json, the default tools, a system prompt with one worked example
  adapter      the starter adapter: native tool calls in its template, its five tools
  iterated     one round of expert iteration on it: the starter adapter attempts a new
               generated draw (seed 3) N times at temperature 0.8, and the attempts the
               verifier passed join the recipe's demonstrations to train a new adapter
               (`coder train --recipe starter LOGDIR`: sft from the base, the recipe's
               hyperparameters)

    python bench/bench_loop.py [--adapter GGUF] [--iterated GGUF] [--heldout 16] [--samples 1]
                               [--arms A,B]

Without --adapter the recipe is trained first (its time and tok/s are reported), and
without --iterated the round of expert iteration runs (16 tasks x 4 attempts by default).
Every arm runs with at most 6 steps and 384 tokens a reply. Pass rates are reported as
they are, whatever they are; the JSON reports stay in the work dir.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.coder_cli import coder  # noqa: E402
from tests.conftest import free_port  # noqa: E402

EXAMPLES = ROOT / "examples" / "tasks" / "tasks.jsonl"
SMALL_TOOLS = "read_file,write_file,replace_in_file,list_dir,grep"
ONE_EXAMPLE = ROOT / "bench" / "prompts" / "system-one-example.md"
# the same bounds for every arm: the tasks take at most four calls, and a reply needs
# far fewer tokens than the default 1024 a looping model spends
LIMITS = ["--max-steps", "6", "--max-tokens", "384"]
# the setups that cost no training: each is the default one with one setting changed
NO_TRAINING = {
    "small-tools": {"CODER_AGENT__TOOLS": SMALL_TOOLS},
    "one-example": {"CODER_AGENT__SYSTEM_PROMPT": str(ONE_EXAMPLE)},
}
ARMS = ["default", *NO_TRAINING, "adapter", "iterated"]


def evaluate(name: str, tasks: Path, work: Path, samples: int, env=None, loras=None) -> dict:
    """{setup: pass figures} from one `coder eval` run: the base arm as `name`, and each
    adapter of `loras` ({setup: GGUF}) on its own server."""
    loras = loras or {}
    report = work / f"{name}-{tasks.parent.name}.json"
    args = ["eval", str(tasks), "-n", str(samples), *LIMITS, "--logs", str(work / "logs" / name)]
    args += ["--report", str(report)]
    for gguf in loras.values():
        args += ["--lora", str(gguf)]
    started = time.monotonic()
    coder(*args, env=env, cwd=work)
    rep = json.loads(report.read_text())
    by_path = {str(Path(g).resolve()): setup for setup, g in loras.items()}
    out = {}
    for v in rep["variants"]:
        o = v["overall"]
        setup = by_path[str(Path(v["lora"]).resolve())] if v.get("lora") else name
        out[setup] = {
            "pass@1": o["pass_at"].get("1"),
            "passed": o.get("passes"),
            "attempts": o.get("attempts"),
            "protocol": v.get("protocol"),
        }
    print(f"  {name} on {tasks.parent.name}: {time.monotonic() - started:.0f} s", flush=True)
    return out


def iterate(adapter: Path, work: Path, count: int, samples: int) -> Path:
    """One round of expert iteration: `adapter` attempts a new generated draw `samples`
    times at temperature 0.8; what its verifier passed joins the recipe's demonstrations
    (`coder train --recipe starter LOGDIR`) to train a new adapter from the base."""
    draw = work / "round1"
    coder("generate-tasks", str(draw), "--count", str(count), "--seed", "3", cwd=work)
    started = time.monotonic()
    coder(
        *("--lora", str(adapter), "--base-url", f"http://127.0.0.1:{free_port()}/v1"),
        *("rollout", str(draw / "tasks.jsonl"), "-n", str(samples), "--temperature", "0.8"),
        *LIMITS,
        *("--logs", str(work / "logs" / "round1")),
        cwd=work,
    )
    rollout_s = time.monotonic() - started
    started = time.monotonic()
    coder(
        *("train", "--recipe", "starter", str(work / "logs" / "round1")),
        *("--out", str(work / "iterated")),
        cwd=work,
    )
    card = json.loads((work / "iterated" / "card.json").read_text())
    print(
        f"round 1: {count} new tasks x {samples} attempts at temperature 0.8 in "
        f"{rollout_s:.0f} s; trained on {card['data']['rows']} rows (passed attempts and "
        f"demonstrations), {card['steps']} steps, final loss {card['final_loss']:.4f}, "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return work / "iterated" / "adapter.gguf"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", type=Path, help="a starter adapter already trained")
    ap.add_argument("--heldout", type=int, default=16, help="generated held-out tasks")
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--iterated", type=Path, help="an iterated adapter already trained")
    ap.add_argument("--round-tasks", type=int, default=16, help="iterated: new tasks drawn")
    ap.add_argument("--round-samples", type=int, default=4, help="iterated: attempts a task")
    ap.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"which setups to measure (default: {','.join(ARMS)})",
    )
    args = ap.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := set(arms) - set(ARMS):
        ap.error(f"--arms: unknown setup(s) {', '.join(sorted(unknown))}; known: {', '.join(ARMS)}")
    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    print(f"work dir: {work}")
    adapter = args.adapter
    if adapter is None and ("adapter" in arms or "iterated" in arms):
        started = time.monotonic()
        coder("train", "--recipe", "starter", "--out", str(work / "starter"), cwd=work)
        card = json.loads((work / "starter" / "card.json").read_text())
        print(
            f"starter recipe: {card['steps']} steps on {card['data']['rows']} demonstrations, "
            f"{card['tokens_per_s']} trained tok/s, final loss {card['final_loss']:.4f}, "
            f"{time.monotonic() - started:.0f} s in all"
        )
        adapter = work / "starter" / "adapter.gguf"
    coder(
        "generate-tasks",
        str(work / "heldout"),
        "--count",
        str(args.heldout),
        "--seed",
        "2",
        cwd=work,
    )
    sets = {"examples": EXAMPLES, "heldout": work / "heldout" / "tasks.jsonl"}
    loras = {"adapter": adapter} if "adapter" in arms else {}
    if "iterated" in arms:
        loras["iterated"] = args.iterated or iterate(
            adapter, work, args.round_tasks, args.round_samples
        )
    results: dict[str, dict] = {}
    for label, tasks in sets.items():
        row: dict = {}
        if "default" in arms or loras:
            # one eval: the base arm, and each adapter's arm on its own server
            row |= evaluate("default", tasks, work, args.samples, loras=loras)
        for arm in arms:
            if arm in NO_TRAINING:
                row |= evaluate(arm, tasks, work, args.samples, NO_TRAINING[arm])
        results[label] = row
    print(f"\npass@1 (N={args.samples}), held-out tasks only")
    print(f"{'setup':<19}" + "".join(f"{label:>18}" for label in sets))
    for setup in ARMS:
        if setup not in results["examples"]:
            continue
        cells = []
        for label in sets:
            r = results[label][setup]
            cells.append(f"{r['passed']}/{r['attempts']} ({r['protocol']})")
        print(f"{setup:<19}" + "".join(f"{c:>18}" for c in cells))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
