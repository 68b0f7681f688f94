"""Conversations that survive the process: saved as they go, `-c` and `--resume` (with -q
here, against the scripted server; the REPL's in test_tmux_e2e.py and test_repl.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from coder import sessions
from tests.scripted_server import stream_text


def query(tmp_path: Path, base_url: str, *args: str) -> subprocess.CompletedProcess:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        CODER_BASE_URL=base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_LOG_DIR=str(tmp_path / "logs"),
        CODER_REPL__SESSIONS_DIR=str(tmp_path / "sessions"),
    )
    return subprocess.run(
        [sys.executable, "-m", "coder", *args],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def users(request) -> list[str]:
    return [m["content"] for m in request.json["messages"] if m["role"] == "user"]


def test_continue_goes_on_from_the_last_conversation_of_this_workspace(tmp_path, srv):
    srv.enqueue(stream_text("hello Ada"), stream_text("you are Ada"))
    assert query(tmp_path, srv.base_url, "-q", "I am Ada").returncode == 0
    done = query(tmp_path, srv.base_url, "-c", "-q", "who am I?")
    assert done.returncode == 0, done.stderr
    assert users(srv.chat_requests()[-1]) == ["I am Ada", "who am I?"]
    [saved] = sessions.list_sessions(tmp_path / "sessions")
    assert saved.workspace == str((tmp_path / "ws").resolve()) and saved.messages == 4


def test_another_workspace_is_not_continued(tmp_path, srv):
    other = tmp_path / "other"
    other.mkdir()
    sessions.save(
        tmp_path / "sessions",
        "elsewhere",
        [{"role": "system", "content": "s"}, {"role": "user", "content": "not here"}],
        workspace=str(other),
    )
    srv.enqueue(stream_text("fresh"))
    done = query(tmp_path, srv.base_url, "-c", "-q", "hi")
    assert done.returncode == 0, done.stderr
    assert "no earlier conversation" in done.stderr
    assert users(srv.chat_requests()[-1]) == ["hi"]


def test_resume_by_name_and_a_bad_session_is_refused_untouched(tmp_path, srv):
    sessions.save(
        tmp_path / "sessions",
        "plan",
        [{"role": "system", "content": "s"}, {"role": "user", "content": "step one"}],
    )
    bad = tmp_path / "sessions" / "broken.json"
    bad.write_text('{"version": 99, "messages": []}')
    srv.enqueue(stream_text("ok"))
    done = query(tmp_path, srv.base_url, "--resume", "plan", "-q", "step two")
    assert done.returncode == 0, done.stderr
    assert users(srv.chat_requests()[-1]) == ["step one", "step two"]
    done = query(tmp_path, srv.base_url, "--resume", "broken", "-q", "x")
    assert done.returncode == 2 and "broken" in done.stderr and "newer" in done.stderr
    assert json.loads(bad.read_text())["version"] == 99
    done = query(tmp_path, srv.base_url, "--resume", "-q", "x")
    assert done.returncode == 2 and "needs a NAME" in done.stderr
