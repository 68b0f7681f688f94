"""End to end: the real `coder` REPL in a real terminal (tmux) against the real engine.

Each test runs coder in its own tmux server (-L), types like a user (send-keys) and
reads the screen (capture-pane), polling with timeouts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CODER = [sys.executable, "-m", "coder", "--temperature", "0", "--seed", "1", "--max-tokens", "48"]
WIDTH, HEIGHT = 110, 40


class Tmux:
    def __init__(self, tmp: Path, env: dict[str, str], *args: str) -> None:
        self.socket = f"coder-e2e-{os.getpid()}-{tmp.name}-{len(args)}"
        cwd = tmp / "ws"
        cwd.mkdir(exist_ok=True)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = " ".join(shlex.quote(c) for c in [*CODER, *args])
        shell = f"env {exports} {command}; echo EXITED:$?; sleep 120"
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-c",
            str(cwd),
            shell,
        )

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, cwd="/"
        )
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "e2e", "-S", "-2000")

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "e2e", "-l", text)
        self.tmux("send-keys", "-t", "e2e", "Enter")

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.screen(), re.M | re.S)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{self.screen()}")
            time.sleep(0.2)

    def wait_idle_after(self, typed: str, timeout: float = 180) -> str:
        """The text printed after `typed` up to the next empty prompt."""
        m = self.wait_for(rf"^> {re.escape(typed)}\n(.*?)\n>\s*\n", timeout)
        return m.group(1)

    def pane_pid(self) -> int:
        return int(self.tmux("display", "-p", "-t", "e2e", "#{pane_pid}").strip())

    def close(self) -> None:
        self.tmux("kill-server")


def coder_env(tmp: Path, **extra: str) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "CODER_REPL__SESSIONS_DIR": str(home / ".local" / "state" / "coder" / "sessions"),
        "CODER_LOG_DIR": str(tmp / "logs"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.update(extra)
    return env


def coder_process(t: Tmux) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(t.pane_pid()).children(recursive=True):
            with_coder = " ".join(child.cmdline())
            if "-m coder" in with_coder:
                return child
        time.sleep(0.1)
    raise AssertionError("coder process not found")


def gone(proc: psutil.Process, timeout: float = 20) -> bool:
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def alnum(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text)


def test_ask_save_clear_load_exit(engine_url, tmp_path):
    t = Tmux(tmp_path, coder_env(tmp_path, CODER_BASE_URL=engine_url))
    try:
        t.wait_for(r"^>\s*$.*\| ctx \d+/8192", timeout=120)
        proc = coder_process(t)

        question = "What is the capital of France?"
        t.type(question)
        shown = t.wait_idle_after(question)
        assert shown.strip(), "no answer on the screen"

        t.type("/save s1")
        saved = int(t.wait_for(r"saved s1 \((\d+) messages\)").group(1))
        assert saved >= 2
        session_file = tmp_path / "home" / ".local" / "state" / "coder" / "sessions" / "s1.json"
        messages = json.loads(session_file.read_text())["messages"]
        answer = next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
        assert alnum(answer)[:20] in alnum(shown), (answer, shown)  # the streamed answer

        t.type("/clear")
        t.wait_for(rf"cleared \({saved} messages\)")
        t.type("/load s1")
        t.wait_for(rf"loaded s1: {saved} messages, \d+ from you; last: {re.escape(question)}")
        t.wait_for(r"\| s1\s*$")  # the toolbar names the loaded session

        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
        assert gone(proc)
        # coder reused this server: it must still be there
        root = engine_url.removesuffix("/v1")
        with urllib.request.urlopen(root + "/health", timeout=5) as resp:
            assert resp.status == 200
    finally:
        t.close()


def test_continue_resumes_the_last_conversation_after_exit(engine_url, tmp_path):
    from coder.log import list_log_files, read_sessions

    # one step a turn: what is asked here is the history, not what the model makes of it
    env = coder_env(tmp_path, CODER_BASE_URL=engine_url, CODER_AGENT__MAX_STEPS="1")
    question = "My name is Ada. Say hello."
    t = Tmux(tmp_path, env)
    try:
        t.wait_for(r"^>\s*$.*\| ctx \d+/8192", timeout=120)
        t.type(question)
        t.wait_idle_after(question)
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
    finally:
        t.close()
    t = Tmux(tmp_path, env, "-c")
    try:
        t.wait_for(r"loaded ws-\S+: \d+ messages, 1 from you", timeout=120)
        t.type("What is my name?")
        t.wait_idle_after("What is my name?")
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
    finally:
        t.close()
    first, second = sorted(
        read_sessions(list_log_files(tmp_path / "logs")), key=lambda s: s.first_ts
    )
    sent = second.calls[0].request["messages"]
    asked = [m["content"] for m in sent if m["role"] == "user"]  # json protocol: results too
    assert asked[0] == question and asked[-1] == "What is my name?"


def test_exit_stops_the_server_coder_started(model_path, tmp_path):
    port = free_port()
    env = coder_env(
        tmp_path, CODER_BASE_URL=f"http://127.0.0.1:{port}/v1", CODER_MODEL=str(model_path)
    )
    t = Tmux(tmp_path, env)
    try:
        t.wait_for(r"^>\s*$.*\| ctx \d+/\d+", timeout=180)
        engines = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "--port" in (p.info["cmdline"] or []) and str(port) in (p.info["cmdline"] or [])
        ]
        assert engines, "coder did not start its own server"
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
        assert all(gone(p) for p in engines)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        t.close()


def offered_tools(call) -> set[str]:
    """The tools a logged request offered: `tools` (native), else the json protocol's
    list in the system text."""
    request = call.request
    if request.get("tools") is not None:
        return {t["function"]["name"] for t in request["tools"]}
    listed = request["messages"][0]["content"].split("\n# Tools\n", 1)[1]
    return {line[2:].split("(")[0] for line in listed.splitlines() if line.startswith("- ")}


def test_read_only_mode_offers_no_writing_tool_until_mode_switches_it(engine_url, tmp_path):
    from coder.log import list_log_files, read_sessions

    env = coder_env(tmp_path, CODER_BASE_URL=engine_url, CODER_AGENT__MAX_STEPS="1")
    t = Tmux(tmp_path, env, "--mode", "read-only")
    try:
        t.wait_for(r"^>\s*$.*\| read-only mode", timeout=120)
        t.type("Say hello.")
        t.wait_idle_after("Say hello.")
        t.type("/mode auto-edit")
        t.wait_for(r"mode read-only -> auto-edit: file edits apply at once")
        t.wait_for(r"offered to the model again: write_file, append_file, replace_in_file")
        t.wait_for(r"ask first: run_shell")
        t.type("Say hello again.")
        t.wait_idle_after("Say hello again.")
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
    finally:
        t.close()
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    first, last = session.calls[0], session.calls[-1]
    writing = {"write_file", "append_file", "replace_in_file", "run_shell", "git_add", "git_commit"}
    assert "read_file" in offered_tools(first) and not offered_tools(first) & writing
    constraint = json.dumps([first.request.get(k) for k in ("grammar", "response_format")])
    assert not any(name in constraint for name in writing)  # not even in the json grammar
    assert {"write_file", "replace_in_file", "run_shell"} <= offered_tools(last)
