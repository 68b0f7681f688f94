"""Task files: one JSON object per line, checked whole before anything runs.

    {"id": "fix-add", "prompt": "...", "repo": "repos/calc", "verify": "python -m pytest -q",
     "ref": "HEAD", "setup": "...", "max_steps": 8, "timeout": 120,
     "approval": "auto", "tools": ["read_file", "edit_file"],
     "solution": [[{"name": "read_file", "arguments": {"path": "calc.py"}}], "..."]}

Relative paths (repo) are relative to the task file. A missing repo is not an error
here: the runner reports that task and goes on with the others. `setup` and `verify`
run in the attempt's worktree with $CODER_TASK_DIR (the task file's directory, so a
verifier can live outside the repo the model edits) and, for verify, $CODER_ANSWER_FILE
(the model's final answer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DEFAULT_TIMEOUT = 120.0  # seconds for a task's setup and its verifier, each


class TaskError(Exception):
    """A task file that cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    repo: Path
    verify: str
    ref: str | None = None
    setup: str | None = None
    max_steps: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    approval: str | None = None  # run_shell: auto | never (nobody is asked in a rollout)
    tools: tuple[str, ...] | None = None  # narrows the tools offered
    solution: tuple | None = None  # steps that solve it, for --demonstrate (generate.py)
    base: Path = Path(".")  # the task file's directory: $CODER_TASK_DIR for setup and verify
    line: int = 0

    def spec(self) -> dict:
        """What defines the task's attempts (the group key hashes it), paths as given."""
        return {
            "id": self.id,
            "prompt": self.prompt,
            "verify": self.verify,
            "ref": self.ref,
            "setup": self.setup,
            "max_steps": self.max_steps,
            "approval": self.approval,
            "tools": list(self.tools) if self.tools is not None else None,
        }


_KINDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "prompt": (str,),
    "repo": (str,),
    "verify": (str,),
    "ref": (str,),
    "setup": (str,),
    "max_steps": (int,),
    "timeout": (int, float),
    "approval": (str,),
    "tools": (list,),
    "solution": (list,),
}
_REQUIRED = ("id", "prompt", "repo", "verify")


def load_tasks(path: Path) -> list[Task]:
    """Every task of a JSONL file; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"task file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot read task file {path}: {exc}") from None
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{n}"
        task = parse_task(line, path.parent, where, n)
        if task.id in seen:
            raise TaskError(f"{where}: id {task.id!r} is already used on line {seen[task.id]}")
        seen[task.id] = n
        tasks.append(task)
    if not tasks:
        raise TaskError(f"{path}: no tasks (one JSON object per line)")
    return tasks


def parse_task(line: str, base: Path, where: str, n: int = 0) -> Task:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise TaskError(f"{where}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: a task is a JSON object, not {type(raw).__name__}")
    for key, value in raw.items():
        kinds = _KINDS.get(key)
        if kinds is None:
            known = ", ".join(_KINDS)
            raise TaskError(f"{where}: unknown key {key!r} (known: {known})")
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TaskError(f"{where}: {key!r} must be {_kind_name(kinds)}, not {value!r}")
    for key in _REQUIRED:
        if not str(raw.get(key) or "").strip():
            raise TaskError(f"{where}: {key!r} is required and must not be empty")
    return Task(
        id=raw["id"],
        prompt=raw["prompt"],
        repo=(base / Path(raw["repo"]).expanduser()).resolve(),
        verify=raw["verify"],
        ref=raw.get("ref"),
        setup=raw.get("setup"),
        max_steps=_positive(raw, "max_steps", where),
        timeout=_positive(raw, "timeout", where) or DEFAULT_TIMEOUT,
        approval=_approval(raw.get("approval"), where),
        tools=_tools(raw.get("tools"), where),
        solution=_solution(raw.get("solution"), where),
        base=base.resolve(),
        line=n,
    )


def _positive(raw: dict[str, Any], key: str, where: str) -> Any:
    value = raw.get(key)
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise TaskError(f"{where}: {key!r} must be a positive number, not {value!r}")
    return value


def _approval(value: str | None, where: str) -> str | None:
    if value is not None and value not in ("auto", "never"):
        raise TaskError(
            f"{where}: 'approval' must be auto or never (nobody is asked in a rollout), "
            f"not {value!r}"
        )
    return value


def _tools(value: list | None, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    from coder import tools

    for name in value:
        if name not in tools.REGISTRY:
            known = ", ".join(sorted(tools.REGISTRY))
            raise TaskError(f"{where}: 'tools': unknown tool {name!r} (known: {known})")
    return tuple(value)


def _solution(value: list | None, where: str) -> tuple | None:
    """Steps: each a list of calls ({"name", "arguments": {...}}), the last the answer."""
    if value is None:
        return None
    ok = bool(value) and isinstance(value[-1], str)
    for step in value[:-1]:
        ok = ok and isinstance(step, list) and bool(step)
        for call in step if isinstance(step, list) else []:
            ok = ok and isinstance(call, dict) and isinstance(call.get("name"), str)
            ok = ok and isinstance(call.get("arguments"), dict)
    if not ok:
        raise TaskError(
            f"{where}: 'solution' must be a list of steps, each a list of calls "
            '{"name": TOOL, "arguments": {...}}, ending with the answer text'
        )
    return tuple(value)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list"}
    return " or ".join(names[k] for k in kinds)
