"""cmd_train: the arguments checked, the run, and each failure's exit code."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from coder.config import Config, log_dir


def cmd_train(cfg: Config, args) -> int:
    from coder.cli import (
        EXIT_MISSING_EXTRA,
        EXIT_NO_BASE_MODEL,
        EXIT_NO_DATA,
        EXIT_OK,
        EXIT_TASK_FAILED,
        EXIT_USAGE,
        UsageError,
    )
    from coder.train import INSTALL_HINT, missing_extra

    def fail(msg: str, code: int) -> int:
        print(f"coder: {msg}", file=sys.stderr)
        return code

    say = lambda m: print(f"coder: {m}", file=sys.stderr)  # noqa: E731
    missing = missing_extra()
    if missing:
        return fail(
            f"coder train needs the `train` extra ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}",
            EXIT_MISSING_EXTRA,
        )
    for name in ("steps", "lora_r", "batch_size", "max_length", "group_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs must be above 0, not {args.epochs}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be above 0, not {args.lr}")
    recipe = _recipe(args)
    if args.data and args.logs:
        raise UsageError("give --data EXPORT.jsonl or LOG files, not both")
    if args.from_rollouts and (args.method != "sft" or args.data):
        raise UsageError("--from-rollouts goes with --method sft on LOG files (not --data)")
    out = (
        Path(args.out)
        if args.out
        else Path("adapters") / f"{args.recipe or args.method}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "card.json").exists())
    ):
        raise UsageError(f"--out {out}: exists and is not an adapter coder wrote; choose another")

    from coder.cli import log_paths
    from coder.train import data as data_mod
    from coder.train.base import BaseModelError, base_gguf
    from coder.train.convert import ConvertError

    try:
        gguf = base_gguf(cfg.llm.server.model_path)
    except BaseModelError as exc:
        return fail(str(exc), EXIT_NO_BASE_MODEL)
    logs = log_paths(args.logs or [])  # a LOG that is not there: said before any work
    if recipe is not None:
        from coder.train.recipe import demonstrations

        # the rollouts given (say, the adapter's own): what passed joins the demonstrations
        logs = log_paths([str(demonstrations(cfg, recipe, say))]) + logs
    data_file = Path(args.data).expanduser() if args.data else None
    if data_file is not None and not data_file.is_file():
        raise UsageError(f"--data: no such file: {data_file}")
    try:
        data = data_mod.load(
            args.method,
            data_file,
            logs,
            log_dir(cfg),
            from_rollouts=args.from_rollouts,
            group_size=args.group_size,
        )
    except data_mod.DataError as exc:
        return fail(str(exc), EXIT_USAGE)
    except data_mod.EmptyData as exc:
        return fail(f"nothing to train on: {exc}", EXIT_NO_DATA)
    if data.skipped:
        left = ", ".join(f"{n} {why}" for why, n in data.skipped.items())
        print(f"coder: left out: {left}", file=sys.stderr)

    from coder.train.methods import Hyper
    from coder.train.run import train

    h = Hyper(
        steps=args.steps,
        epochs=_given(args.epochs, recipe and recipe.epochs, 1.0),
        lr=_given(args.lr, recipe and recipe.lr, 2e-4),
        lora_r=_given(args.lora_r, recipe and recipe.lora_r, 8),
        batch_size=_given(args.batch_size, recipe and recipe.batch_size, 2),
        max_length=args.max_length,
        seed=args.seed if args.seed is not None else 0,
    )
    try:
        result = train(data, gguf, h, out, say=say, recipe=recipe and recipe.name)
    except data_mod.EmptyData as exc:
        return fail(f"nothing to train on: {exc}", EXIT_NO_DATA)
    except BaseModelError as exc:
        return fail(str(exc), EXIT_NO_BASE_MODEL)
    except ConvertError as exc:
        return fail(str(exc), EXIT_TASK_FAILED)
    c = result.card
    loss = f"{c['final_loss']:.4f}" if c["final_loss"] is not None else "-"
    stopped = " (stopped by Ctrl-C)" if c["interrupted"] else ""
    print(
        f"trained {c['method']}: {c['steps']} steps{stopped}, final loss {loss}, "
        f"{c['tokens_per_s']:.0f} tok/s, {c['seconds']['total']:.0f} s\n"
        f"adapter: {result.gguf}\n"
        f"use it:  coder --lora {result.gguf}",
    )
    return EXIT_OK


def _given(flag, recipe_value, default):
    """A flag the user gave, else the recipe's value, else the default."""
    return flag if flag is not None else recipe_value if recipe_value is not None else default


def _recipe(args):
    """--recipe NAME: sft on its demonstrations (and the passed attempts of any LOG
    given); or None, and then --method is needed."""
    from coder.cli import UsageError

    if args.recipe is None:
        if args.method is None:
            raise UsageError("coder train needs --method sft|dpo|kto|grpo (or --recipe starter)")
        return None
    if args.method not in (None, "sft") or args.data:
        raise UsageError(
            f"--recipe {args.recipe} makes its own sft data: drop --method and --data "
            "(LOG files add the attempts in them the verifier passed)"
        )
    from coder.train.recipe import RECIPES

    args.method, args.from_rollouts = "sft", True
    return RECIPES[args.recipe]
