"""-q output for scripts: text, one JSON object, or a stream of JSON events."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

from coder.render.progress import FRAMES
from tests import cli
from tests.scripted_server import stream_text, stream_tool_calls


def query(tmp_path: Path, base_url: str, *args: str) -> subprocess.CompletedProcess:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "README.md").write_text("first line\n")
    env = {
        "CODER_BASE_URL": base_url,
        "CODER_LLM__AUTO_MANAGE": "false",
        "CODER_TOOL_PROTOCOL": "native",
        "CODER_LOG_DIR": str(tmp_path / "logs"),
    }
    return cli.coder(*args, cwd=ws, env=env, timeout=60)


def test_stream_json_is_one_event_per_line_ending_with_the_result(tmp_path, srv):
    srv.enqueue(
        stream_tool_calls([("read_file", '{"path": "README.md"}')]),
        stream_text(["It says ", "first line."]),
    )
    done = query(tmp_path, srv.base_url, "-q", "read it", "--output-format", "stream-json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["type"] for e in events if e["type"] != "notice"]
    assert kinds[0] == "tool_call" and kinds[-1] == "result" and kinds.count("result") == 1
    [call] = [e for e in events if e["type"] == "tool_call"]
    assert call["name"] == "read_file" and json.loads(call["arguments"]) == {"path": "README.md"}
    [result] = [e for e in events if e["type"] == "tool_result"]
    assert (
        result["id"] == call["id"] and "first line" in result["output"] and not result["is_error"]
    )
    assert "".join(e["text"] for e in events if e["type"] == "text") == "It says first line."
    assert events[-1]["answer"] == "It says first line." and events[-1]["stop"] == "answer"
    assert events[-1]["usage"]["completion_tokens"] > 0
    assert "\x1b[" not in done.stdout + done.stderr


def test_json_and_its_alias_and_text_through_a_pipe(tmp_path, srv):
    srv.enqueue(stream_text("one"), stream_text("two"), stream_text("**three**"))
    a = query(tmp_path, srv.base_url, "-q", "x", "--json")
    b = query(tmp_path, srv.base_url, "-q", "x", "--output-format", "json")
    assert json.loads(a.stdout)["answer"] == "one" and json.loads(b.stdout)["answer"] == "two"
    c = query(tmp_path, srv.base_url, "-q", "x")
    assert c.stdout == "**three**\n" and "\x1b" not in c.stdout + c.stderr  # no ANSI
    assert "\r" not in c.stderr and "thinking" not in c.stderr  # no progress line
    assert not set(FRAMES) & set(c.stderr)
    d = query(tmp_path, srv.base_url, "-q", "x", "--json", "--output-format", "stream-json")
    assert d.returncode == 2 and "--json is --output-format json" in d.stderr


def test_progress_is_drawn_on_stderr_when_it_is_a_terminal_and_the_answer_goes_to_a_pipe(
    tmp_path, srv
):
    srv.enqueue(
        stream_tool_calls([("read_file", '{"path": "README.md"}')]),
        stream_text("It says first line."),
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("first line\n")
    env = dict(
        os.environ,
        CODER_BASE_URL=srv.base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_TOOL_PROTOCOL="native",
        CODER_LOG_DIR=str(tmp_path / "logs"),
        TERM="xterm-256color",
        LANG="C.UTF-8",
    )
    master, terminal = pty.openpty()
    seen: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder", "-q", "read it"],
        cwd=ws,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    out, _ = proc.communicate(timeout=60)
    reader.join(30)
    os.close(master)
    shown = b"".join(seen).decode()
    assert proc.returncode == 0, shown
    assert out.decode() == "It says first line.\n"  # the answer alone, through the pipe
    assert "thinking · " in shown and set(FRAMES) & set(shown)  # a spinner
    assert "running read_file" in shown and " tokens" in shown  # after the first call
    assert "> read_file" in shown  # tool activity as before, the line erased around it
    assert "\x1b" not in shown  # redrawn with carriage returns: no ANSI codes
    assert shown.rstrip(" ").endswith("\r")  # erased at the end
