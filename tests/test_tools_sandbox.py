"""run_shell under bubblewrap (tools.shell.sandbox: bwrap), with real processes: what the
model's command can write, reach and see, and that it is still stopped."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from coder.tools import ToolContext, dispatch
from coder.tools import sandbox as sb
from coder.tools.workspace import Workspace, find_program


def _why_not() -> str:
    bwrap = find_program("bwrap", Path("/nonexistent"))
    if bwrap is None:
        return "bwrap is not installed (Debian package bubblewrap; .ci/run installs it)"
    problem = sb._probe(bwrap)
    return f"bwrap cannot create namespaces here: {problem}" if problem else ""


WHY_NOT = _why_not()
needs_bwrap = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)


@pytest.fixture
def ctx(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ToolContext(workspace=Workspace(ws), mode="yes", sandbox="bwrap")


def sh(ctx, command, **args):
    return dispatch("run_shell", {"command": command, **args}, ctx)


def running(marker: str) -> list[psutil.Process]:
    """Processes whose command line holds `marker` (a zombie counts as gone)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = p.info["cmdline"] or []
        if p.info["status"] != psutil.STATUS_ZOMBIE and any(marker in a for a in cmdline):
            found.append(p)
    return found


def none_left(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while running(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@needs_bwrap
def test_writes_inside_the_workspace_only(ctx, tmp_path):
    ws = ctx.workspace.root
    outside = tmp_path / "outside"  # writable to coder, not to the sandbox
    outside.mkdir()
    home_probe = Path.home() / f".coder-sandbox-{uuid.uuid4().hex}"
    # a directory outside /tmp (whose sandbox copy is private: paths under the real /tmp,
    # a CI's HOME or checkout among them, are not there at all rather than read-only)
    var_probe = Path("/var/tmp") / f"coder-sandbox-{uuid.uuid4().hex}"
    command = f"echo in > inside.txt; echo out > {outside}/x; echo home > {home_probe}"
    r = sh(ctx, f"{command}; echo var > {var_probe}; true")
    assert not r.is_error, r.output
    assert (ws / "inside.txt").read_text() == "in\n"
    assert not (outside / "x").exists() and not home_probe.exists() and not var_probe.exists()
    assert f"{var_probe}: Read-only file system" in r.output


@needs_bwrap
def test_tmp_is_private(ctx):
    name = f"coder-sandbox-{uuid.uuid4().hex}"
    r = sh(ctx, f"echo x > /tmp/{name} && cat /tmp/{name}")
    assert r.output == "x\n[exit code 0]"
    assert not Path("/tmp", name).exists()


@pytest.fixture
def listener():
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.sendall(b"hello\n")
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


CONNECT = "{py} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\""


@needs_bwrap
def test_no_network(ctx, listener):
    # a Python the sandbox can see: a checkout's venv under /tmp is hidden by its private /tmp
    py = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    plain = ToolContext(workspace=ctx.workspace, mode="yes")
    assert "connected" in sh(plain, CONNECT.format(py=py, port=listener)).output  # the control
    r = sh(ctx, CONNECT.format(py=py, port=listener))
    assert "connected" not in r.output and "ConnectionRefusedError" in r.output, r.output
    if find_program("curl", Path("/nonexistent")):
        r = sh(ctx, f"curl -sS --max-time 3 http://127.0.0.1:{listener}/")
        assert "hello" not in r.output and "exit code 0" not in r.output, r.output


@needs_bwrap
def test_coders_environment_is_not_visible(ctx, monkeypatch):
    monkeypatch.setenv("CODER_LLM__API_KEY", "sk-per-key-form-123")
    monkeypatch.setenv("CODER_LOG_DIR", "/tmp/not-a-secret")  # not a secret, still not shown
    monkeypatch.setenv("SOME_TOKEN", "tok-of-the-user")
    command = "env; echo ---; cat /proc/$PPID/environ; tr '\\0' '\\n' < /proc/1/environ; echo ---"
    out = sh(ctx, command + "; ls /proc").output
    env, parent, procs = out.split("---")
    names = {line.split("=", 1)[0] for line in env.split("\n") if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", *sb_extra(), "PWD", "SHLVL", "_", "OLDPWD"}, names
    assert {"PATH", "HOME", "TERM"} <= names
    assert "CODER_" not in out and "tok-of-the-user" not in out
    # the command is the namespace's init: no parent to read, its own environ the minimal one
    assert "CODER_" not in parent and "/proc/0/environ: No such file" in parent
    assert "PATH=" in parent
    pids = [int(p) for p in procs.split() if p.isdigit()]
    assert pids and max(pids) < 50  # its own pid namespace: coder's processes are not there


def sb_extra() -> set[str]:
    from coder.tools.shell import _ENV

    return set(_ENV)


@needs_bwrap
def test_a_command_past_its_timeout_is_killed_inside_the_sandbox(ctx):
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.25"  # sleep's argument: unique, a number
    r = sh(ctx, f"sleep {marker} & sleep {marker}", timeout=1)
    assert r.is_error and "timed out after 1 s" in r.output
    assert none_left(marker)


@needs_bwrap
def test_killing_bwrap_alone_stops_what_runs_inside(tmp_path):
    """--die-with-parent (and the pid namespace): the inside does not outlive bwrap, even
    when a kill reaches only bwrap's pid and not the group."""
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.5"
    bwrap = find_program("bwrap", tmp_path)
    assert bwrap is not None
    argv = [*sb.bwrap_argv(bwrap, tmp_path), "/bin/sh", "-c", f"sleep {marker}"]
    proc = subprocess.Popen(argv, env=sb.sandbox_env({}), start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not running(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running(marker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert none_left(marker)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@needs_bwrap
def test_kill9_of_coder_stops_a_sandboxed_command(tmp_path):
    """The watchdog's group kill reaches the command inside bwrap too."""
    from tests.scripted_server import ScriptedServer, stream_text, stream_tool_calls

    ws = tmp_path / "ws"
    ws.mkdir()
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.75"
    command = f"touch started; sleep {marker}; echo late > late.txt"
    with ScriptedServer() as srv:
        srv.enqueue(stream_tool_calls([("run_shell", json.dumps({"command": command}))]))
        srv.enqueue(stream_text("done"))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env |= {"CODER_LLM__AUTO_MANAGE": "false", "CODER_TOOL_PROTOCOL": "native"}
        env["CODER_TOOLS__SHELL__SANDBOX"] = "bwrap"
        coder = subprocess.Popen(
            [sys.executable, "-m", "coder", "-q", "go", "--yes"],
            cwd=ws,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (ws / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (ws / "started").exists() and running(marker)
        coder.kill()
        coder.wait(10)
    assert none_left(marker, within=10)
    assert not (ws / "late.txt").exists()


def test_missing_bwrap_is_one_line_naming_the_key(ctx, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    r = sh(ctx, "touch ran")
    assert r.is_error and not (ctx.workspace.root / "ran").exists()
    assert r.output.startswith("error: tools.shell.sandbox: bwrap is not installed"), r.output
    assert "\n" not in r.output


def test_bwrap_without_namespaces_reports_its_stderr(ctx, tmp_path, monkeypatch):
    """A container that forbids namespaces: bwrap's own complaint is passed on."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    sb._probe.cache_clear()
    try:
        r = sh(ctx, "touch ran")
        with pytest.raises(sb.SandboxError, match="No permissions to creating new namespace"):
            sb.check("bwrap", ctx.workspace.root)
    finally:
        sb._probe.cache_clear()
    assert r.is_error and not (ctx.workspace.root / "ran").exists()
    assert r.output == (
        "error: tools.shell.sandbox: bwrap cannot create its sandbox here: "
        "bwrap: No permissions to creating new namespace"
    )
    sb.check("none", ctx.workspace.root)  # not asked for: nothing checked


def test_coder_refuses_to_start_without_the_sandbox_it_was_asked_for(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty), CODER_LOG_DIR=str(tmp_path / "logs"))
    env |= {"CODER_TOOLS__SHELL__SANDBOX": "bwrap", "CODER_LLM__AUTO_MANAGE": "false"}
    env["CODER_BASE_URL"] = "http://127.0.0.1:9/v1"  # never reached: the check comes first
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "coder", "-q", "hi"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "tools.shell.sandbox: bwrap is not installed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@needs_bwrap
def test_what_a_command_leaves_in_the_background_ends_with_it(ctx):
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.125"
    r = sh(ctx, f"nohup sleep {marker} >/dev/null 2>&1 & echo started")
    assert r.output == "started\n[exit code 0]"
    assert none_left(marker, within=2.0)
