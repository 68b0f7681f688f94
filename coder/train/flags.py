"""The flags of `coder train` (no heavy imports: the CLI builds its parser on every start)."""

from __future__ import annotations

METHODS = ("sft", "dpo", "kto", "grpo")
RECIPES = ("starter",)  # coder.train.recipe.RECIPES (not imported here: kept light)


def add_parser(sub, common) -> None:
    tr = sub.add_parser(
        "train",
        parents=[common],
        help="LoRA fine-tune the served model on your logs (sft, dpo, kto, grpo)",
        description="Train a LoRA adapter for the model the managed server runs, on an "
        "export file or on logs (exported here), and write it as PEFT + GGUF with a "
        "card.json into --out (docs/training.md). Needs the `train` extra.",
    )
    tr.add_argument("--method", choices=METHODS, help="the training method")
    tr.add_argument(
        "--recipe",
        choices=RECIPES,
        help="starter: sft on verified demonstrations of generated tasks, with the small "
        "tool set the adapter is then served with (docs/training.md); no data needed. "
        "LOG files given add the attempts in them the verifier passed (a round of expert "
        "iteration)",
    )
    tr.add_argument(
        "--data",
        metavar="EXPORT.jsonl",
        help="rows from `coder export` (sft: --format sft; dpo: dpo; kto and grpo: grpo)",
    )
    tr.add_argument(
        "logs",
        nargs="*",
        metavar="LOG",
        help="log files or directories to export here instead of --data "
        "(default: every log of logging.dir)",
    )
    tr.add_argument(
        "--from-rollouts",
        action="store_true",
        help="sft from logs: only the attempts the verifier passed (reward 1)",
    )
    n = tr.add_mutually_exclusive_group()
    n.add_argument("--steps", type=int, metavar="N", help="optimizer steps")
    n.add_argument("--epochs", type=float, metavar="E", help="passes over the data (default 1)")
    tr.add_argument("--lr", type=float, help="learning rate (default 2e-4; a recipe's own)")
    tr.add_argument("--lora-r", type=int, help="LoRA rank (default 8)")
    tr.add_argument("--batch-size", type=int, help="rows per step (default 2)")
    tr.add_argument(
        "--max-length", type=int, default=2048, help="tokens per row, longer rows cut (2048)"
    )
    tr.add_argument(
        "--group-size",
        type=int,
        metavar="G",
        help="grpo: completions per group (default: the first group's); others skipped",
    )
    tr.add_argument(
        "--out", metavar="DIR", help="output directory (default: adapters/<method>-<time>)"
    )
