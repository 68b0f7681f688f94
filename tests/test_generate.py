"""Generated task sets (coder generate-tasks) and demonstrations (rollout --demonstrate):
every family's check fails on the untouched repository and passes after its solution,
run through the real agent loop, tools, worktrees and verifier; draws are repeatable
and a held-out seed shares no task with the training one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coder.export import export
from coder.rollout.generate import FAMILIES, generate, write_task_set
from coder.rollout.tasks import TaskError, load_tasks
from tests import cli

ROOT = Path(__file__).resolve().parent.parent


def coder(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli.coder(*args, cwd=cwd, env={"CODER_LOG_DIR": str(cwd / "default-logs")}, timeout=300)


def check(task_dir: Path, task_id: str, cwd: Path, answer: str = "") -> subprocess.CompletedProcess:
    answer_file = task_dir / "answer.txt"
    answer_file.write_text(answer)
    env = dict(os.environ, CODER_TASK_DIR=str(task_dir), CODER_ANSWER_FILE=str(answer_file))
    return subprocess.run(
        [sys.executable, str(task_dir / "check.py"), task_id],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_check_fails_before_the_work(tmp_path):
    tasks = generate(2 * len(FAMILIES), seed=5)
    write_task_set(tmp_path, tasks)
    for t in tasks:
        got = check(tmp_path, t.id, tmp_path / "repos" / t.id, answer="I could not do it.")
        assert got.returncode == 1, (t.id, got.stdout)
        assert got.stdout.strip()  # it says what failed


def test_demonstrations_pass_their_checks_and_export_as_tool_calls(tmp_path):
    got = coder("generate-tasks", "set", "--count", str(len(FAMILIES)), "--seed", "3", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    tasks_file = tmp_path / "set" / "tasks.jsonl"
    assert {t.id.rsplit("-", 2)[0] for t in load_tasks(tasks_file)} == set(FAMILIES)
    got = coder("rollout", str(tasks_file), "--demonstrate", "--logs", "logs", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert f"{len(FAMILIES)} passed, 0 failed, 0 errors" in got.stderr
    export([tmp_path / "logs"], "sft", tmp_path / "sft.jsonl", min_reward=1.0)
    rows = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == len(FAMILIES)
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles[:3] == ["system", "user", "assistant"] and roles[-1] == "assistant"
        assert row["messages"][2]["tool_calls"] and "tool" in roles
        assert isinstance(row["messages"][2]["tool_calls"][0]["function"]["arguments"], dict)
    # the task repositories were only read: every attempt ran in a worktree of a copy
    for t in load_tasks(tasks_file):
        assert not (t.repo / ".git").exists()


def test_a_draw_is_repeatable_and_seeds_do_not_overlap():
    a, b = generate(16, seed=1), generate(16, seed=1)
    assert [(t.prompt, t.files, t.check, t.solution) for t in a] == [
        (t.prompt, t.files, t.check, t.solution) for t in b
    ]
    assert len({t.prompt for t in generate(80, seed=1)}) == 80  # found by prompt: all differ
    held_out = generate(16, seed=2)
    same = {(t.prompt, str(sorted(t.files.items()))) for t in a}
    assert not same & {(t.prompt, str(sorted(t.files.items()))) for t in held_out}
    assert not {t.id for t in a} & {t.id for t in held_out}


def test_demonstrate_needs_solutions_and_families_are_checked(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f.txt").write_text("x\n")
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"id": "t1", "prompt": "p", "repo": "repo", "verify": "true"}) + "\n"
    )
    got = coder("rollout", "t.jsonl", "--demonstrate", "--logs", "l", cwd=tmp_path)
    assert got.returncode == 2 and "task 't1' has no 'solution'" in got.stderr
    got = coder("generate-tasks", "x", "--families", "first_line,nope", cwd=tmp_path)
    assert got.returncode == 2 and "unknown family 'nope'" in got.stderr
    assert "first_line" in got.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "solution",
    [[], ["answer", "answer"], [[{"name": "read_file"}], "done"], [[], "done"], [["x"], "y"]],
)
def test_a_bad_solution_is_refused_naming_the_key(tmp_path, solution):
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"id": "t", "prompt": "p", "repo": ".", "verify": "true", "solution": solution})
        + "\n"
    )
    with pytest.raises(TaskError, match=r"t.jsonl:1: 'solution' must be"):
        load_tasks(tmp_path / "t.jsonl")
