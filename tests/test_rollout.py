"""`coder rollout` / `coder eval` against a scripted server: rewards, groups, timeouts,
missing repos, signals, resume, reports. The real-model run is in test_rollout_engine.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coder.log import iter_records, list_log_files
from coder.rollout.report import pass_at_k
from coder.rollout.tasks import TaskError, load_tasks
from coder.rollout.verify import graded_reward, run_command
from tests.scripted_server import Stream, completion, final_chunks, text_chunks

FIX = (
    "write_file",
    json.dumps({"path": "calc.py", "content": "def add(a, b):\n    return a + b\n"}),
)


def make_tasks(tmp_path: Path, *tasks: dict) -> Path:
    repo = tmp_path / "calc"
    repo.mkdir(exist_ok=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    lines = []
    for t in tasks:
        lines.append(
            json.dumps(
                {
                    "id": "fix-add",
                    "prompt": "fix add in calc.py",
                    "repo": "calc",
                    "verify": "python3 -c 'import calc; assert calc.add(2, 3) == 5'",
                    **t,
                }
            )
        )
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def coder(tmp_path: Path, base_url: str, *args: str, **kw) -> subprocess.Popen:
    env = dict(
        os.environ,
        CODER_BASE_URL=base_url,
        CODER_LLM__AUTO_MANAGE="false",
        TMPDIR=str(scratch(tmp_path)),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coder",
            *args,
            *(
                ["--tool-protocol", "native"]
                if args[0] != "eval" or "--compare" not in args
                else []
            ),
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "tmp"
    path.mkdir(exist_ok=True)
    return path


def run(tmp_path: Path, base_url: str, *args: str, timeout: float = 120):
    proc = coder(tmp_path, base_url, *args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def attempts(logs: Path) -> list[dict]:
    return [r for r in iter_records(list_log_files(logs)) if r["type"] == "attempt"]


def assert_clean(tmp_path: Path) -> None:
    """No worktree, copied repo or answer file left; every log line whole."""
    assert list(scratch(tmp_path).iterdir()) == []
    for f in list_log_files(tmp_path / "logs"):
        for line in f.read_bytes().splitlines(keepends=True):
            assert line.endswith(b"\n")
            orjson.loads(line)


def test_an_attempt_that_writes_the_fix_and_one_that_does_not_share_a_group(tmp_path, srv):
    tasks = make_tasks(tmp_path, {})
    srv.enqueue(completion(tool_calls=[FIX]), completion("fixed"), completion("I did nothing"))
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "2", "--logs", "logs")
    assert code == 0, err
    recs = sorted(attempts(tmp_path / "logs"), key=lambda r: r["attempt"])
    assert [r["status"] for r in recs] == ["passed", "failed"]
    assert [r["reward"] for r in recs] == [1.0, 0.0]
    assert recs[0]["group_id"] == recs[1]["group_id"] and recs[0]["group_id"].startswith("fix-add@")
    assert "+    return a + b" in recs[0]["diff"] and recs[1]["diff"] == ""
    assert recs[0]["seed"] != recs[1]["seed"]
    assert all(r["protocol"] == "native" for r in recs)
    # token-exact native attempts ask without streaming (llama.cpp streams no ids for calls)
    assert all(r.json["stream"] is False for r in srv.chat_requests())
    assert all(r.json["seed"] in (recs[0]["seed"], recs[1]["seed"]) for r in srv.chat_requests())
    rewards = [r for r in iter_records(list_log_files(tmp_path / "logs")) if r["type"] == "reward"]
    verifier = [r for r in rewards if r["source"] == "verifier"]
    assert len(verifier) == 2 and all("calc.add" in r["verifier"]["command"] for r in verifier)
    assert {r["verifier"]["exit_code"] for r in verifier} == {0, 1}

    out = subprocess.run(
        [sys.executable, "-m", "coder", "export", "--format", "grpo", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        check=True,
    )
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["task_id"] == "fix-add" and row["group_id"] == recs[0]["group_id"]
    assert sorted(row["rewards"]) == [0.0, 1.0]
    # the task repo was never touched: no worktree entry, no .git made in it
    assert not (tmp_path / "calc" / ".git").exists()
    assert (tmp_path / "calc" / "calc.py").read_text().endswith("a - b\n")
    assert_clean(tmp_path)


def test_a_hanging_verifier_is_killed_at_its_timeout(tmp_path, srv):
    tasks = make_tasks(tmp_path, {"verify": "sleep 60; true", "timeout": 1})
    srv.enqueue(completion("done"))
    started = time.monotonic()
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "1", "--logs", "logs")
    assert time.monotonic() - started < 50  # not the verifier's 60 s
    assert code == 0, err
    [rec] = attempts(tmp_path / "logs")
    assert rec["status"] == "failed" and rec["reward"] == 0.0
    assert "timed out" in rec["reason"]
    assert_clean(tmp_path)


def test_a_missing_repo_is_reported_and_the_other_tasks_finish(tmp_path, srv):
    tasks = make_tasks(tmp_path, {"id": "gone", "repo": "no-such-dir"}, {})
    srv.enqueue(completion(tool_calls=[FIX]), completion("fixed"))
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "1", "--logs", "logs")
    assert code == 1  # some attempts could not run
    assert "repo not found" in err and "no-such-dir" in err
    by_task = {r["task_id"]: r for r in attempts(tmp_path / "logs")}
    assert by_task["gone"]["status"] == "error" and "repo not found" in by_task["gone"]["reason"]
    assert by_task["fix-add"]["status"] == "passed"
    assert "1 passed, 0 failed, 1 errors" in err


def test_a_failing_setup_is_an_error_with_its_reason(tmp_path, srv):
    tasks = make_tasks(tmp_path, {"setup": "echo broken >&2; exit 3"})
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "1", "--logs", "logs")
    assert code == 1
    [rec] = attempts(tmp_path / "logs")
    assert (
        rec["status"] == "error" and "setup failed" in rec["reason"] and "exit 3" in rec["reason"]
    )
    assert srv.chat_requests() == []  # the model is not asked when setup failed


def test_a_rerun_skips_complete_attempts_and_retries_errors(tmp_path, srv):
    tasks = make_tasks(tmp_path, {})
    srv.enqueue(completion("nothing"), completion("nothing"))
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "2", "--logs", "logs")
    assert code == 0, err
    srv.enqueue(completion(tool_calls=[FIX]), completion("fixed"))
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "3", "--logs", "logs")
    assert code == 0, err
    assert "2 of 3 attempts are already in" in err
    recs = attempts(tmp_path / "logs")
    assert sorted((r["attempt"], r["status"]) for r in recs) == [
        (0, "failed"),
        (1, "failed"),
        (2, "passed"),
    ]
    assert len(srv.chat_requests()) == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_rollout_leaves_no_worktree_and_no_half_record(tmp_path, srv, sig):
    tasks = make_tasks(tmp_path, {})
    slow = Stream(text_chunks(["thinking"] * 4) + final_chunks("stop"), delay=5.0)
    srv.enqueue(completion(tool_calls=[FIX]), slow)
    proc = coder(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "2", "--logs", "logs")
    deadline = time.monotonic() + 60
    while len(srv.chat_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the second model call is underway
    assert len(srv.chat_requests()) == 2, proc.stderr.read() if proc.poll() is not None else ""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 128 + sig), err
    assert_clean(tmp_path)
    recs = attempts(tmp_path / "logs")
    assert [r["status"] for r in recs] == ["interrupted"]
    # a rerun does the attempt again
    srv.enqueue(completion("fixed at last"), completion("nothing"))
    code, _, err = run(tmp_path, srv.base_url, "rollout", str(tasks), "-n", "2", "--logs", "logs")
    assert code == 0, err
    assert sorted(r["status"] for r in attempts(tmp_path / "logs")) == [
        "failed",
        "failed",
        "interrupted",
    ]
    assert_clean(tmp_path)


def test_eval_writes_a_report_and_compares_two(tmp_path, srv):
    tasks = make_tasks(tmp_path, {})
    srv.enqueue(completion(tool_calls=[FIX]), completion("fixed"), completion("nothing"))
    code, out, err = run(
        tmp_path, srv.base_url, "eval", str(tasks), "-n", "2", "--logs", "ev", "--report", "a.json"
    )
    assert code == 0, err
    report = json.loads((tmp_path / "a.json").read_text())
    [base] = report["variants"]
    assert base["overall"]["pass_at"] == {"1": 0.5, "2": 1.0}
    assert base["tasks"]["fix-add"]["passes"] == 1 and base["tasks"]["fix-add"]["attempts"] == 2
    assert base["protocol"] in ("json", "native")  # each arm says how the model was asked
    assert (
        "pass@1" in out
        and "50.0%" in out
        and ["protocol", base["protocol"]] in [line.split() for line in out.splitlines()]
    )
    # a second eval of the same set resumes from the logs: same report, no new requests
    calls = len(srv.chat_requests())
    code, _, err = run(
        tmp_path, srv.base_url, "eval", str(tasks), "-n", "2", "--logs", "ev", "--report", "b.json"
    )
    assert code == 0, err
    assert len(srv.chat_requests()) == calls
    code, out, err = run(tmp_path, srv.base_url, "eval", "--compare", "a.json", "b.json")
    assert code == 0, err
    header = out.splitlines()[0]
    assert "a:base" in header and "b:base" in header
    [row] = [line.split() for line in out.splitlines() if line.startswith("pass@1")]
    assert row == ["pass@1", "50.0%", "50.0%"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "prompt": "p", "repo": "r"}', "'verify' is required"),
        (
            '{"id": "a", "prompt": "p", "repo": "r", "verify": "v", "colour": 1}',
            "unknown key 'colour'",
        ),
        (
            '{"id": "a", "prompt": "p", "repo": "r", "verify": "v", "max_steps": 0}',
            "'max_steps' must be a positive",
        ),
        (
            '{"id": "a", "prompt": "p", "repo": "r", "verify": "v", "approval": "ask"}',
            "'approval' must be auto or never",
        ),
        (
            '{"id": "a", "prompt": "p", "repo": "r", "verify": "v", "tools": ["nope"]}',
            "unknown tool 'nope'",
        ),
        ("[1]", "a task is a JSON object"),
        ("{oops", "not JSON"),
    ],
)
def test_a_bad_task_line_is_named_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "t.jsonl"
    path.write_text("# a comment\n" + line + "\n")
    with pytest.raises(TaskError) as err:
        load_tasks(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_a_bad_task_file_exits_2_before_any_server(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a"}\n')
    code, _, err = run(tmp_path, "http://127.0.0.1:9/v1", "rollout", str(path))
    assert code == 2 and f"{path}:1: 'prompt' is required" in err
    code, _, err = run(tmp_path, "http://127.0.0.1:9/v1", "rollout", str(tmp_path / "none.jsonl"))
    assert code == 2 and "task file not found" in err


def test_graded_verifier_and_captured_output(tmp_path):
    v = run_command("echo progress; echo '{\"reward\": 0.25}'", tmp_path, timeout=10)
    assert v.reward == 0.25 and v.graded and v.exit_code == 0
    v = run_command("echo '{\"reward\": 0.25}'; exit 1", tmp_path, timeout=10)
    # a graded verifier may exit non-zero (some tests failed): its line still grades
    assert v.reward == 0.25 and v.graded and v.exit_code == 1
    assert graded_reward('{"reward": true}') is None and graded_reward("{}") is None
    assert graded_reward('{"reward": NaN}') is None


def test_a_verifier_that_leaves_a_background_child_is_not_waited_for(tmp_path):
    started = time.monotonic()
    v = run_command("sleep 30 & echo started", tmp_path, timeout=20)
    assert v.exit_code == 0 and v.reward == 1.0 and "started" in v.output
    assert time.monotonic() - started < 15


def test_pass_at_k_is_the_unbiased_estimate():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)


def test_a_reused_server_with_fewer_slots_than_workers_is_reported(tmp_path, srv):
    tasks = make_tasks(tmp_path, {})
    srv.props = {**(srv.props or {}), "total_slots": 1}
    srv.enqueue(completion("nothing"), completion("nothing"))
    code, _, err = run(
        tmp_path, srv.base_url, "rollout", str(tasks), "-n", "2", "-w", "2", "--logs", "logs"
    )
    assert code == 0, err
    assert "has 1 slot(s) for 2 workers" in err
    assert len(attempts(tmp_path / "logs")) == 2
