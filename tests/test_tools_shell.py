"""run_shell with real processes: approval, timeout, process-group kill, output cap."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.workspace import Workspace


def never_asked(name, what):
    raise AssertionError("approve must not be called")


@pytest.fixture
def ctx(tmp_path):
    return ToolContext(workspace=Workspace(tmp_path), approve=never_asked, mode="yes")


def gone(pid: int, within: float = 2.0) -> bool:
    """The process no longer runs (exited; a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def sh(ctx, command, **args):
    return dispatch("run_shell", {"command": command, **args}, ctx)


def test_runs_in_the_workspace_with_exit_code(ctx, tmp_path):
    r = sh(ctx, "pwd; echo err >&2; exit 3")
    assert not r.is_error
    assert r.output == f"{tmp_path}\nerr\n[exit code 3]"
    assert sh(ctx, "true").output == "(no output)\n[exit code 0]"
    assert sh(ctx, "cat").output == "(no output)\n[exit code 0]"  # stdin is closed, no hang


def test_approval_ask_refused(tmp_path):
    asked = []

    def deny(name, what):
        asked.append((name, what))
        return False

    ctx = ToolContext(workspace=Workspace(tmp_path), approve=deny, mode="auto-edit")
    r = sh(ctx, "touch ran")
    assert r.is_error
    assert "run_shell was not run: it was not approved (touch ran). Do not retry" in r.output
    assert "the user did not" not in r.output  # true whether or not someone was asked
    assert asked == [("run_shell", "touch ran")]
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("reason", ["coder -q runs commands only with --yes", "x.", ""])
def test_approve_may_refuse_with_a_reason(tmp_path, reason):
    """approve returning a str refuses (bool(str) would have run it) and the reason is shown."""
    ctx = ToolContext(workspace=Workspace(tmp_path), approve=lambda n, w: reason, mode="auto-edit")
    r = sh(ctx, "touch ran")
    assert r.is_error and not (tmp_path / "ran").exists()
    shown = reason.rstrip(".")
    expect = f"; {shown}. Do not retry" if shown else " (touch ran). Do not retry"
    assert "run_shell was not run: it was not approved (touch ran)" in r.output
    assert expect in r.output, r.output


def test_approval_ask_default_callback_refuses(tmp_path):
    ctx = ToolContext(workspace=Workspace(tmp_path))  # like -q without --yes
    r = sh(ctx, "touch ran")
    assert r.is_error and "was not approved" in r.output
    assert not (tmp_path / "ran").exists()


def test_approval_ask_allowed(tmp_path):
    ctx = ToolContext(workspace=Workspace(tmp_path), approve=lambda n, w: True, mode="auto-edit")
    assert sh(ctx, "touch ran").output == "(no output)\n[exit code 0]"
    assert (tmp_path / "ran").exists()


def test_mode_yes_runs_unasked_and_read_only_refuses(ctx, tmp_path):
    assert not sh(ctx, "touch ran").is_error  # yes: never_asked is not called
    ctx.mode = "read-only"
    r = sh(ctx, "touch ran2")
    assert r.is_error and "run_shell is not available in read-only mode" in r.output
    assert not (tmp_path / "ran2").exists()


def test_timeout_kills_the_process_group(ctx):
    ctx.shell_timeout = 1.0
    start = time.monotonic()
    r = sh(ctx, "sleep 100 & echo child=$!; sleep 50")
    assert time.monotonic() - start < 5
    assert r.is_error
    assert "[timed out after 1 s; the command and its child processes were killed]" in r.output
    pid = int(re.search(r"child=(\d+)", r.output).group(1))
    assert gone(pid)


def test_model_timeout_is_capped_by_config(ctx):
    ctx.shell_timeout = 1.0
    r = sh(ctx, "sleep 30", timeout=600)
    assert r.is_error and "timed out after 1 s" in r.output


def test_background_leftovers_are_stopped(ctx):
    start = time.monotonic()
    r = sh(ctx, "sleep 100 & echo child=$!")
    assert time.monotonic() - start < 3
    assert not r.is_error
    assert "[processes it left running in the background were stopped]" in r.output
    assert gone(int(re.search(r"child=(\d+)", r.output).group(1)))


def test_keyboard_interrupt_kills_the_group(ctx, tmp_path):
    pidfile = tmp_path / "pid"

    def interrupt_once_started() -> None:  # Ctrl-C, as the terminal would send it
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sh(ctx, f"sleep 100 & echo $! > {pidfile}; wait")
    assert gone(int(pidfile.read_text()))


def test_cancel_event_stops_the_command(ctx):
    ctx.cancel = threading.Event()
    threading.Timer(0.3, ctx.cancel.set).start()
    start = time.monotonic()
    r = sh(ctx, "echo started; sleep 100")
    assert time.monotonic() - start < 3
    assert r.is_error and "started" in r.output and "cancelled by the user" in r.output


def test_huge_output_is_capped_head_and_tail(ctx):
    ctx.max_output_bytes = 4096
    r = sh(ctx, "seq 1 200000")
    assert not r.is_error
    assert len(r.output.encode()) <= 4096
    assert r.output.startswith("1\n2\n3\n")
    assert r.output.endswith("199999\n200000\n[exit code 0]")
    m = re.search(r"\[\.\.\. (\d+) bytes elided from the middle of the output \.\.\.\]", r.output)
    assert m
    total = sum(len(str(i)) + 1 for i in range(1, 200001))
    shown = len(r.output.encode()) - len(m.group(0)) - len("\n[exit code 0]") - 2
    assert abs(int(m.group(1)) + shown - total) < 10


def test_ansi_colors_are_stripped(ctx):
    assert sh(ctx, r"printf '\033[31mred\033[0m\n'").output == "red\n[exit code 0]"


def test_commands_do_not_see_coders_api_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("CODER_API_KEY", "sk-should-stay-hidden")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-also-hidden")
    ctx = ToolContext(workspace=Workspace(tmp_path), mode="yes")
    out = dispatch("run_shell", {"command": "env"}, ctx)
    assert not out.is_error and "PATH=" in out.output
    assert "sk-should-stay-hidden" not in out.output and "sk-also-hidden" not in out.output


def test_commands_see_no_form_of_coders_key(tmp_path, monkeypatch):
    """CODER_LLM__API_KEY is the documented per-key form; a copy under another name
    (export MY_KEY=$CODER_API_KEY before starting coder) is hidden by its value."""
    monkeypatch.setenv("CODER_LLM__API_KEY", "sk-per-key-form-123")
    monkeypatch.setenv("CODER_API_KEY", "sk-short-form-456")
    monkeypatch.setenv("MY_COPY", "sk-short-form-456")
    monkeypatch.setenv("CODER_LOG_DIR", "/tmp/not-a-secret")
    ctx = ToolContext(workspace=Workspace(tmp_path), mode="yes")
    out = dispatch("run_shell", {"command": "env"}, ctx).output
    assert "sk-per-key-form-123" not in out and "sk-short-form-456" not in out
    assert "CODER_LOG_DIR=/tmp/not-a-secret" in out  # only secrets are left out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_an_approved_command_does_not_outlive_coder(tmp_path, sig):
    """The model's command is stopped with coder on SIGTERM and SIGHUP (a closed
    terminal), not left to finish unwatched."""
    from tests.scripted_server import ScriptedServer, stream_text, stream_tool_calls

    ws = tmp_path / "ws"
    ws.mkdir()
    command = "echo $$ > pid; sleep 2; echo late > late.txt"
    with ScriptedServer() as srv:
        srv.enqueue(stream_tool_calls([("run_shell", json.dumps({"command": command}))]))
        srv.enqueue(stream_text("done"))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env |= {"CODER_LLM__AUTO_MANAGE": "false", "CODER_TOOL_PROTOCOL": "native"}
        coder = subprocess.Popen(
            [sys.executable, "-m", "coder", "-q", "go", "--yes"],
            cwd=ws,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (ws / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        coder.send_signal(sig)
        coder.wait(10)
    shell = int((ws / "pid").read_text())
    time.sleep(2.5)
    assert gone(shell) and not (ws / "late.txt").exists()


def group_gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_kill9_of_coder_stops_the_command_group(tmp_path):
    """kill -9 runs no code of coder's: its watchdog sees the pipe from coder close and
    stops the command's whole group (bash and its sleep), then exits itself."""
    import psutil

    from tests.scripted_server import ScriptedServer, stream_text, stream_tool_calls

    ws = tmp_path / "ws"
    ws.mkdir()
    command = "echo $$ > pid; sleep 20; echo late > late.txt"
    with ScriptedServer() as srv:
        srv.enqueue(stream_tool_calls([("run_shell", json.dumps({"command": command}))]))
        srv.enqueue(stream_text("done"))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env |= {"CODER_LLM__AUTO_MANAGE": "false", "CODER_TOOL_PROTOCOL": "native"}
        coder = subprocess.Popen(
            [sys.executable, "-m", "coder", "-q", "go", "--yes"],
            cwd=ws,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (ws / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        children = psutil.Process(coder.pid).children()
        watchdogs = [p for p in children if "watchdog.py" in " ".join(p.cmdline())]
        assert [p.environ() for p in watchdogs] == [{}]  # nothing of coder's environment
        coder.kill()
        coder.wait(10)
    shell = int((ws / "pid").read_text())
    assert group_gone(shell)  # the sleep too: nothing of the group is left to write late.txt
    assert not (ws / "late.txt").exists()
    assert len(watchdogs) == 1 and gone(watchdogs[0].pid, within=10.0)  # it exits after
