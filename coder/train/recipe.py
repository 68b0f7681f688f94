"""`coder train --recipe starter`: the default model's improvement in one command.

A recipe fixes everything the loop needs: a generated task set (coder.rollout.generate,
drawn with its own seed, apart from examples/tasks and from any held-out draw), the
tools the adapter is trained with and served with, and the hyperparameters. Its data
are demonstrations (`coder rollout --demonstrate`): each task solved by its known
solution through the real agent loop and tools, kept only when the verifier passes, as
`--from-rollouts` keeps sampled attempts. The task set and the demonstrations are made
once, in the cache, and reused by later runs of the same recipe.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from coder.config import Config


@dataclass(frozen=True)
class Recipe:
    name: str
    count: int  # generated training tasks
    seed: int  # their draw; held-out sets use other seeds
    tools: tuple[str, ...]  # offered in training, and when the adapter is served
    epochs: float
    lr: float
    batch_size: int
    lora_r: int


RECIPES = {
    "starter": Recipe(
        name="starter",
        count=32,
        seed=1,
        tools=("read_file", "write_file", "replace_in_file", "list_dir", "grep"),
        epochs=2.0,
        lr=1e-3,
        batch_size=2,
        lora_r=8,
    )
}


def workdir(recipe: Recipe) -> Path:
    from coder.train.base import cache_root

    key = hashlib.blake2b(orjson.dumps(asdict(recipe)), digest_size=6).hexdigest()
    return cache_root() / "recipes" / f"{recipe.name}-{key}"


def demonstrations(cfg: Config, recipe: Recipe, say) -> Path:
    """The log directory holding one verified demonstration per generated task (made on
    the first run; a rerun finds them complete and runs nothing)."""
    import copy

    from coder.rollout.command import run_tasks
    from coder.rollout.generate import generate, write_task_set
    from coder.rollout.runner import Settings
    from coder.rollout.tasks import load_tasks

    where = workdir(recipe)
    tasks_file = where / "tasks" / "tasks.jsonl"
    if not tasks_file.is_file():
        say(f"generating {recipe.count} tasks (seed {recipe.seed}) in {tasks_file.parent}")
        write_task_set(tasks_file.parent, generate(recipe.count, recipe.seed))
    run_cfg = copy.deepcopy(cfg)
    run_cfg.agent.tools = list(recipe.tools)
    settings = Settings(samples=1, workers=2, variant="demonstration")
    logs = where / "logs"
    outcomes, total, _ = run_tasks(
        run_cfg, load_tasks(tasks_file), settings, logs, None, None, demonstrate=True
    )
    passed = sum(o.status == "passed" for o in outcomes)
    say(f"{passed} of {total} demonstrations verified, in {logs}")
    return logs
