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
    ro.add_argument(
        "--demonstrate",
        action="store_true",
        help="answer each task with its 'solution' instead of the model (no server): "
        "correct trajectories to train on",
    )

    gen = sub.add_parser(
        "generate-tasks",
        parents=[common],
        help="write a task set of small generated repositories, with checks and solutions",
        description="Write DIR/tasks.jsonl and its repositories: COUNT tasks drawn from the "
        "task families in turn (docs/rollouts.md). --seed picks the draw (default 1): "
        "different seeds give different tasks, so a train and a held-out split share none.",
    )
    gen.add_argument("out", metavar="DIR", help="directory to write the task set into")
    gen.add_argument("--count", type=int, default=40, help="how many tasks (default 40)")
    gen.add_argument(
        "--families",
        metavar="NAMES",
        help="comma-separated families (default: all; an unknown name lists them)",
    )

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
