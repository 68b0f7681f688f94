"""A rollout of example tasks with the real engine and model: N=2, two workers on a server
coder starts with two slots, then the GRPO export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from coder.log import iter_records, list_log_files
from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"
PICK = ("fix-add", "find-slugify", "readme-first-line")  # one from each repo


def busy_slots(root: str, stop: threading.Event, seen: list[int]) -> None:
    """Poll /slots: the most slots processing at once."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(root + "/slots", timeout=2) as resp:
                slots = json.loads(resp.read())
            seen.append(sum(bool(s.get("is_processing")) for s in slots))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


def test_rollout_of_three_example_tasks_with_two_workers(tmp_path, model_path):
    tasks_dir = tmp_path / "tasks"
    shutil.copytree(EXAMPLES, tasks_dir)
    lines = [
        line
        for line in (tasks_dir / "tasks.jsonl").read_text().splitlines()
        if json.loads(line)["id"] in PICK
    ]
    (tasks_dir / "three.jsonl").write_text("\n".join(lines) + "\n")
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(
        os.environ,
        CODER_BASE_URL=f"http://127.0.0.1:{port}/v1",  # nothing there: coder starts its own
        CODER_LLM__SERVER__MODEL_PATH=str(model_path),
        TMPDIR=str(scratch),
    )
    stop, seen = threading.Event(), []
    poller = threading.Thread(
        target=busy_slots, args=(f"http://127.0.0.1:{port}", stop, seen), daemon=True
    )
    poller.start()
    args = ["rollout", str(tasks_dir / "three.jsonl"), "-n", "2", "-w", "2"]
    args += ["--max-steps", "6", "--max-tokens", "256", "--logs", str(tmp_path / "logs")]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "coder", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    finally:
        stop.set()
        poller.join()
    assert proc.returncode == 0, proc.stderr

    records = list(iter_records(list_log_files(tmp_path / "logs")))
    attempts = [r for r in records if r["type"] == "attempt"]
    assert sorted(r["task_id"] for r in attempts) == sorted(PICK * 2)
    assert {r["status"] for r in attempts} <= {"passed", "failed"}, proc.stderr
    verifier = [r for r in records if r["type"] == "reward" and r["source"] == "verifier"]
    assert len(verifier) == 6 and all("check.py" in r["verifier"]["command"] for r in verifier)
    calls = [r for r in records if r["type"] == "model_call"]
    assert calls and all(r["tokens"] is not None for r in calls if not r["error"])
    assert max(seen, default=0) == 2, f"the two slots never worked at once: {seen[-20:]}"

    # nothing left: no worktree or copied repo, no server on the port
    assert list(scratch.iterdir()) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server outlived coder"

    out = subprocess.run(
        [sys.executable, "-m", "coder", "export", "--format", "grpo", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["task_id"] for r in rows) == sorted(PICK)
    assert all(len(r["rewards"]) == 2 for r in rows)


def test_sigterm_mid_rollout_stops_the_server_it_started(tmp_path, model_path):
    shutil.copytree(EXAMPLES, tmp_path / "tasks")
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(
        os.environ,
        CODER_BASE_URL=f"http://127.0.0.1:{port}/v1",
        CODER_LLM__SERVER__MODEL_PATH=str(model_path),
        TMPDIR=str(scratch),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder", "rollout", str(tmp_path / "tasks" / "tasks.jsonl")]
        + ["-n", "2", "--logs", str(tmp_path / "logs")],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(scratch.glob("coder-rollout-*/*-0-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)  # until the first attempt's worktree exists
    time.sleep(1.0)  # its model call is underway
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert list(scratch.iterdir()) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server outlived coder"
    for f in list_log_files(tmp_path / "logs"):
        for line in f.read_bytes().splitlines(keepends=True):
            assert line.endswith(b"\n")
            json.loads(line)
