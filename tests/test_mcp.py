"""MCP servers (mcp.servers): real stdio servers (tests/mcp_server.py, the SDK's MCPServer),
a scripted model calling their tools through coder, servers dying, coder exiting."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from coder.agent import run_turn
from coder.config import Config, ConfigError, load
from coder.config.schema import McpServerConfig
from coder.repl.commands import Commands
from coder.runtime import open_runtime
from tests.scripted_server import Stream, stream_text, stream_tool_calls, text_chunks

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def server_spec(*args: str, trusted: bool = True) -> McpServerConfig:
    return McpServerConfig(command=sys.executable, args=[SERVER, *args], trusted=trusted)


def config(tmp_path: Path, base_url: str, **servers: McpServerConfig) -> Config:
    cfg = Config()
    cfg.llm.base_url = base_url
    cfg.llm.auto_manage = False
    cfg.llm.tool_protocol = "native"
    cfg.logging.dir = str(tmp_path / "logs")
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    cfg.tools.workspace = str(ws)
    cfg.agent.tools = ["read_file"]
    cfg.mcp.servers = dict(servers)
    return cfg


def offered(request) -> list[str]:
    return [t["function"]["name"] for t in request.json.get("tools") or []]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def read_pids(path: Path) -> list[int]:
    assert wait_for(path.exists, 30), "the MCP server never wrote its pidfile"
    return [int(line) for line in path.read_text().split()]


# ------------------------------------------------------------------ config


def test_mcp_servers_are_validated_and_named_with_their_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "mcp:\n  servers:\n    files:\n      command: python\n      args: [s.py]\n"
        "      env: {TOKEN: secret}\n      trusted: true\n"
    )
    cfg = load(good, env={})
    files = cfg.mcp.servers["files"]
    assert (files.command, files.args, files.env, files.trusted) == (
        "python",
        ["s.py"],
        {"TOKEN": "secret"},
        True,
    )
    from coder.config import as_dict

    assert as_dict(cfg)["mcp"]["servers"]["files"]["env"] == {"TOKEN": "[REDACTED]"}
    cases = {
        "mcp:\n  servers:\n    files:\n      command: python\n      trusted: maybe\n": (
            "'mcp.servers.files.trusted' must be true or false"
        ),
        "mcp:\n  servers:\n    files:\n      comand: python\n": "unknown key 'mcp.servers.files.comand'",
        "mcp:\n  servers:\n    files:\n      args: [x]\n": "'mcp.servers.files.command' is required",
        "mcp:\n  servers: [a]\n": "'mcp.servers' must be a mapping",
        "mcp:\n  servers:\n    a.b:\n      command: x\n": "may hold only letters",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as err:
            load(bad, env={})
        assert message in str(err.value)
        if "required" not in message:
            assert str(bad) in str(err.value)
    # the command line: one line, exit 2
    done = subprocess.run(
        [sys.executable, "-P", "-m", "coder", "--config", str(bad), "-q", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "may hold only letters" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_later_sources_merge_into_a_server_and_null_drops_one(tmp_path):
    first = tmp_path / "user" / "coder" / "config.yaml"
    first.parent.mkdir(parents=True)
    first.write_text(
        "mcp:\n  servers:\n    a: {command: one}\n    b: {command: two, trusted: true}\n"
    )
    second = tmp_path / "second.yaml"
    second.write_text("mcp:\n  servers:\n    a: {timeout: 5}\n    b: null\n")
    cfg = load(
        second,
        env={"XDG_CONFIG_HOME": str(tmp_path / "user"), "CODER_MCP__SERVERS__C__COMMAND": "three"},
    )
    assert sorted(cfg.mcp.servers) == ["a", "c"]
    assert (cfg.mcp.servers["a"].command, cfg.mcp.servers["a"].timeout) == ("one", 5.0)


def test_a_project_config_cannot_set_mcp(tmp_path):
    ws = tmp_path / "ws"
    (ws / ".coder").mkdir(parents=True)
    (ws / ".coder" / "config.yaml").write_text("mcp:\n  servers:\n    x: {command: evil}\n")
    with pytest.raises(ConfigError) as err:
        load(env={}, cwd=ws)
    assert "'mcp.servers' cannot be set in a project config" in str(err.value)


def test_tool_names_follow_the_openai_function_name_rules():
    from coder.mcp.tools import tool_name

    assert tool_name("files", "read") == "mcp__files__read"
    assert tool_name("files", "read.file v2") == "mcp__files__read_file_v2"
    long_a, long_b = tool_name("s", "x" * 80 + "a"), tool_name("s", "x" * 80 + "b")
    assert len(long_a) == 64 and len(long_b) == 64 and long_a != long_b
    assert all(c.isalnum() or c in "_-" for c in long_a)


def test_coder_does_not_import_the_sdk_without_servers():
    code = (
        "import sys, runpy\nsys.argv = ['coder', '--version']\n"
        "try:\n    runpy.run_module('coder', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "import coder.runtime\nprint('mcp' in sys.modules, 'anyio' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split()[-2:] == ["False", "False"], done.stdout + done.stderr


# ------------------------------------------------------------------ through coder


def test_a_scripted_model_calls_an_mcp_tool_and_the_result_reaches_the_next_request(tmp_path, srv):
    cfg = config(tmp_path, srv.base_url, calc=server_spec())
    srv.enqueue(
        stream_tool_calls([("mcp__calc__add", '{"a": 2, "b": 40}')]),
        stream_text("It is 42."),
    )
    with open_runtime(cfg, lambda m: None) as rt:
        result = run_turn(rt.agent, "add 2 and 40", cancel=rt.cancel)
    assert result.answer == "It is 42.", result
    first, second = srv.chat_requests()
    assert offered(first) == ["read_file", "mcp__calc__add", "mcp__calc__echo", "mcp__calc__fail"]
    [add] = [t for t in first.json["tools"] if t["function"]["name"] == "mcp__calc__add"]
    params = add["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["a", "b"]
    assert params["properties"]["a"]["type"] == "integer"
    assert second.json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": second.json["messages"][-2]["tool_calls"][0]["id"],
        "content": "42",
    }


def test_an_mcp_error_and_a_long_result_come_back_like_other_tool_results(tmp_path, srv):
    cfg = config(tmp_path, srv.base_url, calc=server_spec())
    cfg.tools.shell.max_output_bytes = 1000
    srv.enqueue(
        stream_tool_calls([("mcp__calc__fail", '{"reason": "no such thing"}')]),
        stream_tool_calls([("mcp__calc__echo", json.dumps({"text": "y" * 5000}))]),
        stream_text("done"),
    )
    with open_runtime(cfg, lambda m: None) as rt:
        run_turn(rt.agent, "go", cancel=rt.cancel)
    _, second, third = srv.chat_requests()
    assert second.json["messages"][-1]["content"].startswith("error: ")
    assert "no such thing" in second.json["messages"][-1]["content"]
    echoed = third.json["messages"][-1]["content"]
    assert len(echoed.encode()) < 1200 and "elided" in echoed


def test_a_server_killed_mid_session_is_withdrawn_with_a_notice(tmp_path, srv):
    pidfile = tmp_path / "pids"
    cfg = config(tmp_path, srv.base_url, calc=server_spec("--pidfile", str(pidfile)))
    notices: list[str] = []
    console = Console(file=io.StringIO(), width=200, color_system=None)
    srv.enqueue(stream_text("first"), stream_text("second"))
    with open_runtime(cfg, notices.append) as rt:
        run_turn(rt.agent, "one", cancel=rt.cancel)
        [pid] = read_pids(pidfile)
        Commands(rt, console).run("mcp", "")
        assert "calc  ready" in console.file.getvalue()
        assert "mcp__calc__add" in console.file.getvalue()
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: rt.mcp.servers["calc"].state == "died")
        result = run_turn(rt.agent, "two", cancel=rt.cancel)
        Commands(rt, console).run("mcp", "")
    assert result.answer == "second"
    first, second = srv.chat_requests()
    assert "mcp__calc__add" in offered(first)
    assert offered(second) == ["read_file"]
    assert any("MCP server 'calc' died" in n and "withdrawn" in n for n in notices), notices
    assert "calc  died" in console.file.getvalue()


def test_a_server_that_fails_to_start_is_reported_and_the_session_goes_on(tmp_path, srv):
    cfg = config(
        tmp_path,
        srv.base_url,
        broken=server_spec("--fail"),
        missing=McpServerConfig(command=str(tmp_path / "no-such-program")),
        silent=McpServerConfig(command="sleep", args=["60"], startup_timeout=1.0),
        calc=server_spec(),
    )
    notices: list[str] = []
    srv.enqueue(stream_text("fine"))
    with open_runtime(cfg, notices.append) as rt:
        result = run_turn(rt.agent, "hi", cancel=rt.cancel)
        states = {name: s.state for name, s in rt.mcp.servers.items()}
    assert result.answer == "fine"
    assert states == {"broken": "failed", "missing": "failed", "silent": "failed", "calc": "ready"}
    [broken] = [n for n in notices if "'broken'" in n]
    assert "did not start" in broken and "cannot start: --fail given" in broken
    [missing] = [n for n in notices if "'missing'" in n]
    assert "command not found" in missing
    [silent] = [n for n in notices if "'silent'" in n]
    assert "not ready after 1 s (mcp.servers.silent.startup_timeout)" in silent
    names = offered(srv.chat_requests()[0])
    assert "mcp__calc__add" in names and not any("broken" in n for n in names)


@pytest.mark.parametrize("mode", ["ask", "auto-edit", "read-only"])
def test_an_untrusted_servers_tools_ask_and_read_only_offers_none(tmp_path, srv, mode):
    cfg = config(tmp_path, srv.base_url, calc=server_spec(trusted=False))
    cfg.tools.mode = mode
    asked: list[tuple[str, str]] = []
    srv.enqueue(
        stream_tool_calls([("mcp__calc__add", '{"a": 1, "b": 2}')]),
        stream_tool_calls([("mcp__calc__add", '{"a": 3, "b": 4}')]),
        stream_text("ok"),
    )
    answers = iter([False, True])
    with open_runtime(cfg, lambda m: None) as rt:

        def approve(name: str, what: str) -> bool:
            asked.append((name, what))
            return next(answers)

        rt.agent.tool_ctx.approve = approve
        run_turn(rt.agent, "add", cancel=rt.cancel)
    first, second, third = srv.chat_requests()
    refused, approved = (
        second.json["messages"][-1]["content"],
        third.json["messages"][-1]["content"],
    )
    if mode != "read-only":
        assert "mcp__calc__add" in offered(first)
        assert [name for name, _ in asked] == ["mcp__calc__add", "mcp__calc__add"]
        assert "MCP server 'calc'" in asked[0][1] and '"a": 1' in asked[0][1]
        assert "not approved" in refused and approved == "7"
    else:  # not offered, and refused when named anyway
        assert "mcp__calc__add" not in offered(first) and "read_file" in offered(first)
        assert asked == [] and "not available in read-only mode" in refused


@pytest.mark.parametrize("mode", ["ask", "auto-edit"])
def test_a_trusted_server_is_not_asked(tmp_path, srv, mode):
    cfg = config(tmp_path, srv.base_url, calc=server_spec(trusted=True))
    cfg.tools.mode = mode
    srv.enqueue(stream_tool_calls([("mcp__calc__add", '{"a": 1, "b": 2}')]), stream_text("3"))
    with open_runtime(cfg, lambda m: None) as rt:
        # approval refuses until the caller sets its own: a trusted server never asks
        run_turn(rt.agent, "add", cancel=rt.cancel)
    assert srv.chat_requests()[1].json["messages"][-1]["content"] == "3"


# ------------------------------------------------------------------ no orphans


def coder_q(tmp_path: Path, base_url: str, pidfile: Path) -> subprocess.Popen:
    conf = tmp_path / "config.yaml"
    conf.write_text(
        "mcp:\n  servers:\n    calc:\n"
        f"      command: {json.dumps(sys.executable)}\n"
        f"      args: {json.dumps([SERVER, '--pidfile', str(pidfile), '--linger'])}\n"
        "      trusted: true\n"
    )
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        CODER_BASE_URL=base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_TOOL_PROTOCOL="native",
        CODER_LOG_DIR=str(tmp_path / "logs"),
    )
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "coder", "--config", str(conf), "-q", "go"],
        cwd=ws,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_coder_exit_leaves_no_mcp_process(tmp_path, srv):
    pidfile = tmp_path / "pids"
    srv.enqueue(stream_tool_calls([("mcp__calc__add", '{"a": 1, "b": 1}')]), stream_text("2"))
    proc = coder_q(tmp_path, srv.base_url, pidfile)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0 and out.strip() == "2", err
    pids = read_pids(pidfile)
    assert len(pids) == 2 and all(gone(p) for p in pids)  # the lingering child too


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_coder_killed_leaves_no_mcp_process(tmp_path, srv, sig):
    pidfile = tmp_path / "pids"
    srv.default = Stream(text_chunks("z" * 600), delay=0.1)  # a minute of streaming
    proc = coder_q(tmp_path, srv.base_url, pidfile)
    try:
        pids = read_pids(pidfile)
        assert wait_for(lambda: srv.chat_requests(), 60), "coder never asked the model"
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        if sig == signal.SIGTERM:
            assert proc.returncode == 143
        # SIGKILL runs no code of coder's: the watchdog stops the group (the lingering
        # child ignores stdin, so the server's own exit would not take it along)
        assert wait_for(lambda: all(gone(p) for p in pids), 10), [(p, gone(p)) for p in pids]
    finally:
        proc.kill()
        proc.communicate()


def test_mcp_command_without_servers_says_so(tmp_path, srv):
    cfg = config(tmp_path, srv.base_url)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    with open_runtime(cfg, lambda m: None) as rt:
        assert rt.mcp is None and [t["function"]["name"] for t in rt.agent.tools] == ["read_file"]
        Commands(rt, console).run("mcp", "")
    assert "no MCP servers configured" in console.file.getvalue()
