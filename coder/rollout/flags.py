"""The flags of `coder rollout` and `coder eval` (no heavy imports: the CLI builds its
parser on every start)."""

from __future__ import annotations


def add_parsers(sub, common) -> None:
    ro = sub.add_parser(
        "rollout",
        parents=[common],
        help="N sampled attempts per task, verified and logged as GRPO groups",
        description="Run each task of TASKS.jsonl N times, each attempt in a fresh git "
        "worktree, score it with the task's verifier and log it (docs/rollouts.md).",
    )
    _run_flags(ro, samples=4)
    ro.add_argument("--logs", metavar="DIR", help="log directory (default: logging.dir)")

    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="pass@1 / pass@k of the model (and of LoRA adapters) on a task set",
        description="Run TASKS.jsonl like `coder rollout` and report pass rates; with "
        "--lora, once per adapter and once without, side by side.",
    )
    _run_flags(ev, samples=1, tasks_optional=True)
    ev.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="GGUF",
        help="a LoRA adapter (GGUF) to evaluate beside the base model; repeatable",
    )
    ev.add_argument("--logs", metavar="DIR", help="log directory (default: logging.dir/eval)")
    ev.add_argument("--report", metavar="FILE", help="write the JSON report here")
    ev.add_argument("--json", action="store_true", help="print the JSON report, not a table")
    ev.add_argument(
        "--compare",
        nargs="+",
        metavar="REPORT",
        help="print saved JSON reports side by side (runs nothing)",
    )


def _run_flags(p, samples: int, tasks_optional: bool = False) -> None:
    p.add_argument(
        "tasks",
        metavar="TASKS.jsonl",
        nargs="?" if tasks_optional else None,
        help="one task a line: {id, prompt, repo, verify, ...} (docs/rollouts.md)",
    )
    p.add_argument(
        "--samples",
        "-n",
        type=int,
        default=samples,
        help=f"attempts per task (default {samples})",
    )
    p.add_argument(
        "--workers",
        "-w",
        type=int,
        default=1,
        help="attempts run at once; a server coder starts gets that many slots (-np)",
    )
    p.add_argument("--max-steps", type=int, help="agent.max_steps for tasks that do not say")
