"""coder's api key, end to end with real processes: read from a file, gone from coder's
own environment and from every process it starts (the engine, the model's commands),
masked in saved sessions."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest

from coder import config, server, sessions
from coder.config import ConfigError
from tests.conftest import free_port
from tests.scripted_server import ScriptedServer, stream_text, stream_tool_calls

KEY = "sk-coder-secret-0123456789"


def environ_of(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return fh.read()


# -- llm.api_key_file ----------------------------------------------------------------


def test_api_key_file_is_read_into_the_key(tmp_path):
    path = tmp_path / "key"
    path.write_text(f"\n{KEY}\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    cfg = config.load(None, {"llm.api_key_file": str(path)}, env={}, cwd=tmp_path)
    assert cfg.llm.api_key == KEY
    assert KEY not in json.dumps(config.as_dict(cfg))


def test_api_key_file_relative_to_its_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "key").write_text(KEY)
    (tmp_path / "conf" / "c.yaml").write_text("llm:\n  api_key_file: key\n")
    cfg = config.load(tmp_path / "conf" / "c.yaml", env={}, cwd=tmp_path)
    assert cfg.llm.api_key == KEY


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), ("\n  \n", "is empty"), (b"\xff\xfe", "cannot read")],
)
def test_a_bad_api_key_file_names_the_key_and_the_path(tmp_path, content, message):
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        config.load(None, {"llm.api_key_file": str(path)}, env={}, cwd=tmp_path)
    assert "llm.api_key_file" in str(err.value) and str(path) in str(err.value)
    assert message in str(err.value)


def test_api_key_and_api_key_file_together_are_refused(tmp_path):
    (tmp_path / "key").write_text(KEY)
    with pytest.raises(ConfigError, match="llm.api_key_file .* and llm.api_key"):
        config.load(
            None, {"llm.api_key_file": str(tmp_path / "key")}, env={"CODER_API_KEY": "x" * 8}
        )


def test_coder_refuses_a_missing_key_file_with_exit_2(tmp_path):
    env = dict(os.environ, CODER_LLM__API_KEY_FILE=str(tmp_path / "nope"))
    out = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "hi"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "llm.api_key_file" in out.stderr and str(tmp_path / "nope") in out.stderr


# -- the managed engine ----------------------------------------------------------------


def test_the_engine_gets_the_key_through_a_pipe_not_its_environment(tmp_path, monkeypatch):
    """The key reaches the engine (it answers 401 without it), but not through its
    argv nor its environment, even when coder itself was given it in the environment."""
    monkeypatch.setenv("CODER_API_KEY", KEY)
    monkeypatch.setenv("LLAMA_API_KEY", KEY)
    port = free_port()
    cfg = config.load(None, env={"CODER_API_KEY": KEY}, cwd=tmp_path)
    cfg.llm.base_url = f"http://127.0.0.1:{port}/v1"
    s = server.connect(cfg, tmp_path / "logs")
    try:
        assert KEY.encode() not in environ_of(s.pid)
        assert KEY not in " ".join(psutil.Process(s.pid).cmdline())
        assert server.http_get(s.endpoint.root + "/v1/models", None, 5)[0] == 401
        assert server.http_get(s.endpoint.root + "/v1/models", KEY, 5)[0] == 200
    finally:
        server.stop(s)
    assert KEY not in (tmp_path / "logs" / server.LOG_NAME).read_text(errors="replace")


# -- coder's own environment and its commands ---------------------------------------


def test_coder_and_its_commands_hold_no_key_in_their_environment(tmp_path):
    """coder takes CODER_API_KEY out of its environment once read: /proc/PID/environ
    shows it blanked, and the model's command (its `env`, its /proc environ) never has it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    command = "env > env.txt; echo $$ > pid; sleep 30"
    with ScriptedServer(api_key=KEY) as srv:
        srv.enqueue(stream_tool_calls([("run_shell", json.dumps({"command": command}))]))
        srv.enqueue(stream_text("done"))
        env = dict(os.environ, CODER_BASE_URL=srv.base_url, CODER_LOG_DIR=str(tmp_path / "logs"))
        env |= {"CODER_LLM__AUTO_MANAGE": "false", "CODER_TOOL_PROTOCOL": "native"}
        env |= {"CODER_API_KEY": KEY, "MY_COPY": KEY}
        coder = subprocess.Popen(
            [sys.executable, "-m", "coder", "-q", "go", "--yes"],
            cwd=ws,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not (ws / "pid").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)
            shell = int((ws / "pid").read_text())
            coder_environ, shell_environ = environ_of(coder.pid), environ_of(shell)
            coder.send_signal(signal.SIGTERM)
            coder.communicate(timeout=30)
        finally:
            if coder.poll() is None:
                coder.kill()
    assert srv.chat_requests()  # the key did reach the server: it answered
    assert KEY.encode() not in coder_environ
    assert b"CODER_API_KEY=*" in coder_environ  # blanked in place, not re-executed
    assert KEY.encode() not in shell_environ
    assert KEY not in (ws / "env.txt").read_text()


# -- /save -----------------------------------------------------------------------------


def test_a_saved_session_holds_no_key(tmp_path, monkeypatch):
    """A key the user pasted, or a tool printed, is masked in the file as in the log:
    the config's key and one coder read from its environment alike."""
    env_key = "sk-from-the-environment-42"
    monkeypatch.setenv("CODER_LLM__API_KEY", env_key)
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": f"my key is {KEY}, and {env_key}"},
        {"role": "tool", "tool_call_id": "c1", "content": f"Authorization: Bearer {KEY}"},
    ]
    path = sessions.save(tmp_path, "s1", messages, [], {"llm": {"api_key": KEY}}, secrets=[KEY])
    text = path.read_text()
    assert KEY not in text and env_key not in text and "[REDACTED]" in text
    assert messages[1]["content"].startswith("my key is sk-")  # the live conversation is kept
