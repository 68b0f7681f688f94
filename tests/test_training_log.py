"""The training log end to end: the real loop, a real Logger, a scripted server
that records what it receives, and real coder processes killed mid-session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coder import export
from coder.agent import Agent, run_turn
from coder.config import Config
from coder.llm import Client
from coder.log import Logger, Recorder, list_log_files, read_sessions
from coder.tools import ToolContext
from coder.tools.workspace import Workspace
from tests.scripted_server import (
    ScriptedServer,
    Stream,
    stream_text,
    stream_tool_calls,
    text_chunks,
)


def scripted_session(srv: ScriptedServer, tmp_path: Path, protocol: str) -> Path:
    (tmp_path / "README.md").write_text("first line\n")
    logs = tmp_path / "logs"
    cfg = Config()
    cfg.llm.tool_protocol = protocol
    logger = Logger(logs)
    recorder = Recorder(logger)
    client = Client(srv.base_url, api_key="sk-test-secret")
    agent = Agent(client, cfg, ToolContext(workspace=Workspace(tmp_path)), recorder)
    recorder.session_start(
        config={"llm": {"api_key": "sk-test-secret"}},
        model={"alias": "scripted"},
        tools=agent.tools,
        workspace=str(tmp_path),
        git_head=None,
    )
    run_turn(agent, "Read README.md", None)
    run_turn(agent, "Thanks. Now list the files.", None)
    recorder.session_end("exit")
    logger.close()
    client.close()
    return logs


def replies(protocol: str) -> list[Stream]:
    if protocol == "native":
        return [
            stream_tool_calls([("read_file", '{"path": "README.md"}')]),
            stream_text("It says first line."),
            stream_tool_calls([("list_dir", "{}")]),
            stream_text("README.md and logs/."),
        ]
    return [
        stream_text('{"tool": "read_file", "arguments": {"path": "README.md"}}'),
        stream_text('{"answer": "It says first line."}'),
        stream_text('{"tool": "list_dir", "arguments": {}}'),
        stream_text('{"answer": "README.md and logs/."}'),
    ]


@pytest.mark.parametrize("protocol", ["native", "json"])
def test_every_logged_prompt_is_byte_for_byte_what_the_server_received(tmp_path, protocol):
    with ScriptedServer() as srv:
        srv.enqueue(*replies(protocol))
        logs = scripted_session(srv, tmp_path, protocol)
        received = [r.body for r in srv.chat_requests()]

    [session] = list(read_sessions(list_log_files(logs)))
    rebuilt = [orjson.dumps(call.request) for call in session.calls]
    assert rebuilt == received

    # the --wire exports carry those same prompts
    out = tmp_path / "openai.jsonl"
    export.export([], "openai", out, log_dir=logs, wire=True)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    last_sent = orjson.loads(received[-1])["messages"]
    assert rows[-1]["messages"][: len(last_sent)] == last_sent
    if protocol == "native":  # canonical: the same messages, arguments compact
        export.export([], "openai", out, log_dir=logs)
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        want = [export.openai_message(m) for m in last_sent]
        assert rows[-1]["messages"][: len(last_sent)] == want

    # and no record holds the api key
    text = b"".join(p.read_bytes() for p in list_log_files(logs))
    assert b"sk-test-secret" not in text


def run_coder_line_loop(tmp_path: Path, base_url: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        CODER_BASE_URL=base_url,
        CODER_LOG_DIR=str(tmp_path / "logs"),
        CODER_LLM__AUTO_MANAGE="false",
        CODER_LLM__TOOL_PROTOCOL="native",
        CODER_LOGGING__FLUSH_INTERVAL="0.05",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "coder"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def log_lines(logs: Path) -> list[bytes]:
    return b"".join(p.read_bytes() for p in list_log_files(logs)).splitlines(keepends=True)


def model_calls_logged(logs: Path) -> int:
    return sum(b'"type":"model_call"' in line for line in log_lines(logs)) if logs.exists() else 0


def test_sigterm_mid_session_loses_nothing(tmp_path):
    with ScriptedServer() as srv:
        srv.enqueue(stream_tool_calls([("list_dir", "{}")]), stream_text("done"))
        coder = run_coder_line_loop(tmp_path, srv.base_url)
        coder.stdin.write(b"list the files\n")
        coder.stdin.flush()
        wait_for(lambda: len(srv.chat_requests()) == 2 and srv.pending == 0)
        time.sleep(0.2)  # the answer is printed; coder waits for the next line
        coder.send_signal(signal.SIGTERM)
        coder.wait(15)
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    assert len(session.calls) == 2 and len(session.tool_results) == 1
    assert session.end is not None and session.end["dropped"] == 0


def test_kill9_mid_session_leaves_valid_jsonl_and_the_next_run_appends(tmp_path):
    logs = tmp_path / "logs"
    with ScriptedServer() as srv:
        # a slow answer: coder is killed while it streams
        srv.enqueue(stream_tool_calls([("list_dir", "{}")]))
        srv.enqueue(Stream(text_chunks(["word "] * 200), delay=0.02))
        coder = run_coder_line_loop(tmp_path, srv.base_url)
        coder.stdin.write(b"list the files\n")
        coder.stdin.flush()
        wait_for(lambda: model_calls_logged(logs) >= 1)
        coder.kill()
        coder.wait()

        for line in log_lines(logs):
            if line.endswith(b"\n"):
                orjson.loads(line)  # every complete line is valid JSON

        srv.enqueue(stream_text("second run"))
        again = run_coder_line_loop(tmp_path, srv.base_url)
        out, err = again.communicate(b"hello\n", timeout=60)
    assert again.returncode == 0, err
    lines = log_lines(logs)
    assert all(line.endswith(b"\n") for line in lines)
    parsed = [orjson.loads(line) for line in lines]
    assert sum(r["type"] == "session_start" for r in parsed) == 2
    assert parsed[-1]["type"] == "session_end"


@pytest.mark.parametrize("check, code, reward", [("test -f README.md", 0, 1.0), ("false", 1, 0.0)])
def test_verify_command_becomes_a_verifier_reward(tmp_path, check, code, reward):
    (tmp_path / "README.md").write_text("hi\n")
    with ScriptedServer() as srv:
        srv.enqueue(stream_text("done"))
        env = dict(
            os.environ,
            CODER_BASE_URL=srv.base_url,
            CODER_LOG_DIR=str(tmp_path / "logs"),
            CODER_LLM__AUTO_MANAGE="false",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "coder", "-q", "do it", "--verify", check],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == code, proc.stderr
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    [verdict] = [r for r in session.rewards if r["source"] == "verifier"]
    assert verdict["value"] == reward and check in verdict["note"]


def test_api_key_from_the_user_config_reaches_no_record(tmp_path):
    key = "sk-config-file-secret-123"
    (tmp_path / "README.md").write_text(f"the key is {key}\n")  # the model will read it
    (tmp_path / "xdg" / "coder").mkdir(parents=True)
    (tmp_path / "xdg" / "coder" / "config.yaml").write_text(
        f"llm:\n  api_key: {key}\n  auto_manage: false\n"
    )
    with ScriptedServer(api_key=key) as srv:
        srv.enqueue(stream_tool_calls([("read_file", '{"path": "README.md"}')]), stream_text("ok"))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env["CODER_TOOL_PROTOCOL"] = "native"
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
        proc = subprocess.run(
            [sys.executable, "-m", "coder", "-q", "read it"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert all(r.headers.get("authorization") == f"Bearer {key}" for r in srv.chat_requests())
    assert proc.returncode == 0, proc.stderr
    text = b"".join(p.read_bytes() for p in list_log_files(tmp_path / "logs"))
    assert b'"type":"tool_result"' in text and key.encode() not in text


def test_a_server_sending_garbage_is_exit_3_with_the_call_logged_as_failed(tmp_path):
    with ScriptedServer() as srv:
        srv.enqueue(Stream(['{"choices": [{"index": 0, "delta": {"content": 5}}]}']))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env["CODER_LLM__AUTO_MANAGE"] = "false"
        proc = subprocess.run(
            [sys.executable, "-m", "coder", "-q", "hi"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 3, proc.stderr
    assert "malformed data from the server" in proc.stderr and "Traceback" not in proc.stderr
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    assert session.calls[0].error.startswith("malformed data from the server")
    assert session.end is not None


def test_records_lost_to_a_full_disk_are_reported_and_exit_4(tmp_path, monkeypatch, capsys):
    """A disk that stays full: the session still answers, but the user is told how many
    records were lost and where, and -q does not exit 0."""
    from coder import cli
    from tests.test_logger import FailingDisk

    logs = tmp_path / "logs"
    logs.mkdir()
    with ScriptedServer() as srv:
        srv.enqueue(stream_text("an answer"))
        monkeypatch.setenv("CODER_BASE_URL", srv.base_url)
        monkeypatch.setenv("CODER_LOG_DIR", str(logs))
        monkeypatch.setenv("CODER_LLM__AUTO_MANAGE", "false")
        monkeypatch.setenv("CODER_TOOL_PROTOCOL", "native")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr("os.write", FailingDisk(logs, fails=10**9))
        code = cli.main(["-q", "hi"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_LOG_INCOMPLETE, err
    assert "log records could not be written" in err and str(logs) in err


@pytest.mark.parametrize(
    ("sig", "reason"), [(signal.SIGTERM, "terminated"), (signal.SIGHUP, "hangup")]
)
def test_a_signal_mid_reply_logs_the_partial_call_and_names_itself(tmp_path, srv, sig, reason):
    """SIGTERM / SIGHUP while the model streams: the call in flight is logged as
    interrupted with what had arrived, as for Ctrl-C, and session_end says why."""
    logs = tmp_path / "logs"
    srv.enqueue(Stream(text_chunks(["partial "] + ["word "] * 400), delay=0.05))
    env = dict(
        os.environ,
        CODER_BASE_URL=srv.base_url,
        CODER_LOG_DIR=str(logs),
        CODER_LLM__AUTO_MANAGE="false",
        CODER_LLM__TOOL_PROTOCOL="native",
    )
    coder = subprocess.Popen(
        [sys.executable, "-m", "coder", "-q", "tell me a story"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert coder.stdout.read(len("partial")) == b"partial"  # the reply is streaming
    coder.send_signal(sig)
    coder.communicate(timeout=30)
    assert coder.returncode == 128 + sig
    [session] = list(read_sessions(list_log_files(logs)))
    [call] = session.calls
    assert call.interrupted and call.message["content"].startswith("partial ")
    assert call.request is not None  # the prompt is rebuildable, as for any call
    assert session.end is not None and session.end["reason"] == reason
