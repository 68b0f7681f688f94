"""The server manager against the real engine and SmolLM2: reuse, start, stop, watch."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from coder import config, engine, server
from coder.config import Config, ConfigError, Sampling
from coder.llm import Client
from coder.server.process import key_pipe
from tests import cli
from tests.conftest import free_port, wait_healthy

# The model ran (exit 0), or ran and did not finish the task (exit 1: a tiny model's
# choice); these tests are about the server's lifecycle, not the answer.
ANSWERED = (0, 1)


def servers_on(port: int) -> list[psutil.Process]:
    """Live processes that were started to serve `port` (ours or anyone's)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "--port" in cmd and str(port) in cmd:
            found.append(proc)
    return found


def wait_gone(port: int, timeout: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := servers_on(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def coder_env(tmp_path: Path, port: int, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        CODER_BASE_URL=f"http://127.0.0.1:{port}/v1",
        CODER_LOG_DIR=str(tmp_path / "logs"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        CODER_LLM__SAMPLING__MAX_TOKENS="16",
    )
    env.update(extra)
    return env


def run_coder(tmp_path, port, *args, input=None, timeout=120, **env):
    env = coder_env(tmp_path, port, **env)
    return cli.coder(*args, cwd=tmp_path, env=env, input=input, timeout=timeout)


def cfg_for(tmp_path: Path, port: int, **server_keys) -> Config:
    cfg = config.load(None, env={}, cwd=tmp_path)
    cfg.llm.base_url = f"http://127.0.0.1:{port}/v1"
    for key, value in server_keys.items():
        setattr(cfg.llm.server, key, value)
    return cfg


# ------------------------------------------------------------ command line


def test_every_flag_the_builder_emits_parses_in_the_engine(tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    cfg = cfg_for(
        tmp_path, 8099, threads=2, n_gpu_layers=0, n_cpu_moe=1, chat_template_file=str(template)
    )
    cfg.llm.api_key = "secret"
    cmd = server.build_command(cfg, [], "/m.gguf")
    args = engine.parse_args(cmd)
    assert (args.model, args.port, args.ctx_size, args.parallel) == ("/m.gguf", 8099, 8192, 1)
    assert args.host == "127.0.0.1" and args.cache_ram == 1024 and args.metrics
    assert (args.threads, args.n_gpu_layers, args.n_cpu_moe) == (2, 0, 1)
    cfg.llm.server.jinja = False
    assert engine.parse_args(server.build_command(cfg, [], "/m.gguf")).jinja is False
    # the key travels through a pipe, never on the command line (ps shows argv) nor in the
    # environment (/proc/PID/environ)
    assert "secret" not in cmd and server.API_KEY_ENV not in server.server_env(cfg)
    fd = key_pipe("secret")
    try:
        args = engine.parse_args([*cmd, "--api-key-file", f"/dev/fd/{fd}"])
        assert engine.api_keys(args) == ["secret"]
    finally:
        os.close(fd)


def test_chat_template_file_may_name_a_shipped_template(tmp_path):
    # relative paths in a config file are anchored to it; the shipped one is found anyway
    cfg = cfg_for(tmp_path, 8099, chat_template_file=str(tmp_path / "prompts/chatml-tools.jinja"))
    cmd = server.build_command(cfg, [], "/m.gguf")
    assert Path(cmd[cmd.index("--chat-template-file") + 1]).read_text().startswith("{#- ChatML")
    cfg.llm.server.chat_template_file = str(tmp_path / "missing.jinja")
    with pytest.raises(ConfigError, match="llm.server.chat_template_file"):
        server.build_command(cfg, [], "/m.gguf")


def test_managed_server_with_api_key_requires_it_and_keeps_it_off_argv(tmp_path):
    port = free_port()
    cfg = cfg_for(tmp_path, port)
    cfg.llm.api_key = "sk-local-test-key"
    s = server.connect(cfg, tmp_path / "logs")
    try:
        assert "sk-local-test-key" not in " ".join(psutil.Process(s.pid).cmdline())
        assert server.http_get(s.endpoint.root + "/v1/models", None, 5)[0] == 401
        assert server.http_get(s.endpoint.root + "/v1/models", "sk-local-test-key", 5)[0] == 200
    finally:
        server.stop(s)


def test_builder_flags_match_llama_server_help_when_present(tmp_path):
    binary = os.environ.get("LLAMA_SERVER") or shutil_which("llama-server")
    if not binary:
        pytest.skip(
            "no llama-server binary on this machine; the engine parser test covers the flags"
        )
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    cfg = cfg_for(tmp_path, 8099, threads=2, n_gpu_layers=0, n_cpu_moe=1)
    for flag in server.build_command(cfg, [], "/m.gguf"):
        if flag.startswith("-"):
            assert flag in help_text, flag


def shutil_which(name):
    import shutil

    return shutil.which(name)


def test_engine_rejects_an_unsupported_flag_by_name(model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "coder.engine", "-m", str(model_path), "--rope-freq-base", "1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--rope-freq-base" in proc.stderr


# ------------------------------------------------------------------- reuse


def test_external_server_is_reused_and_left_running(tmp_path, engine_url):
    port = int(engine_url.rsplit(":", 1)[1].split("/")[0])
    before = {p.pid for p in servers_on(port)}
    proc = run_coder(tmp_path, port, "-q", "Say hi")
    assert proc.returncode in ANSWERED, proc.stderr
    assert "starting" not in proc.stderr
    assert {p.pid for p in servers_on(port)} == before
    assert server.probe(engine_url.removesuffix("/v1")).state == "ready"


def test_a_reused_server_with_another_model_never_answers_silently(tmp_path, model_path):
    from tests.conftest import start_engine

    other = tmp_path / "other-model.gguf"
    os.link(model_path, other)  # the same weights under another name: another model to coder
    proc, url = start_engine(other, tmp_path / "engine.log")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        done = run_coder(tmp_path, port, "-q", "Say hi", "--max-tokens", "8")
        assert done.returncode in ANSWERED, done.stderr
        assert "serves other-model.gguf, not coder's default model" in done.stderr
        asked = run_coder(tmp_path, port, "-q", "Say hi", "--model", str(model_path))
        assert asked.returncode == 3 and "other-model.gguf" in asked.stderr
        again = run_coder(tmp_path, port, "server", "start")  # one is running: said, exit 0
        assert again.returncode == 0, again.stderr
        assert "already runs" in again.stdout and "other-model.gguf" in again.stdout
    finally:
        proc.terminate()
        proc.wait(30)


def test_port_held_by_plain_http_server_fails_with_exit_3(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        proc = run_coder(tmp_path, port, "-q", "hi")
    finally:
        httpd.shutdown()
    assert proc.returncode == 3
    assert f"127.0.0.1:{port}" in proc.stderr
    assert servers_on(port) == []


# ----------------------------------------------------- managed start/stop


def test_managed_server_is_gone_after_normal_exit(tmp_path):
    port = free_port()
    proc = run_coder(tmp_path, port, "-q", "Say hi")
    assert proc.returncode in ANSWERED, proc.stderr
    assert "starting llama.cpp server" in proc.stderr
    assert wait_gone(port) == []
    assert (tmp_path / "logs" / "llama-server.log").is_file()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_managed_server_is_gone_after_signal(tmp_path, sig):
    port = free_port()
    coder = subprocess.Popen(
        [sys.executable, "-m", "coder"],
        cwd=tmp_path,
        env=coder_env(tmp_path, port),
        stdin=subprocess.PIPE,  # the line loop waits for tasks: coder stays mid-session
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
        assert servers_on(port)
        coder.send_signal(sig)
        coder.wait(15)
    finally:
        if coder.poll() is None:
            coder.kill()
    assert coder.returncode != 0
    assert wait_gone(port) == []


def test_managed_server_dies_with_coder_even_on_sigkill(tmp_path):
    port = free_port()
    coder = subprocess.Popen(
        [sys.executable, "-m", "coder"],
        cwd=tmp_path,
        env=coder_env(tmp_path, port),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(f"http://127.0.0.1:{port}", timeout=60)
    coder.kill()
    coder.wait()
    assert wait_gone(port) == []


def test_missing_model_fails_fast_naming_the_path(tmp_path):
    port = free_port()
    missing = tmp_path / "nope.gguf"
    start = time.monotonic()
    proc = run_coder(tmp_path, port, "-q", "hi", "--model", str(missing))
    assert time.monotonic() - start < 2
    assert proc.returncode == 3 and str(missing) in proc.stderr
    assert servers_on(port) == []


def test_corrupt_model_fails_fast_naming_the_path(tmp_path):
    port = free_port()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    start = time.monotonic()
    proc = run_coder(tmp_path, port, "-q", "hi", "--model", str(bad))
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    assert str(bad) in proc.stderr
    assert elapsed < 5  # interpreter + engine start; the failure itself is immediate
    assert wait_gone(port) == []


STUB = """#!/bin/sh
# stands in for a llama-server binary: records its argv, then behaves as asked
printf '%s\\n' "$@" > "{argv_file}"
{then}
"""


def write_stub(tmp_path: Path, then: str) -> Path:
    stub = tmp_path / "llama-server-stub"
    stub.write_text(STUB.format(argv_file=tmp_path / "argv.txt", then=then))
    stub.chmod(0o755)
    return stub


def test_startup_timeout_kills_the_whole_process_group(tmp_path):
    port = free_port()
    # A "server" that never becomes healthy and has a child of its own.
    stub = write_stub(
        tmp_path, "sleep 300 &\necho $! > " + str(tmp_path / "child.pid") + "\nsleep 300"
    )
    cfg = cfg_for(tmp_path, port, binary=str(stub))
    cfg.llm.startup_timeout = 1.0
    with pytest.raises(server.ServerError) as err:
        server.connect(cfg, tmp_path / "logs")
    assert "startup_timeout" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_llama_server_env_binary_gets_the_same_flags(tmp_path, model_path):
    port = free_port()
    stub = write_stub(tmp_path, f'exec "{sys.executable}" -m coder.engine "$@"')
    proc = run_coder(
        tmp_path, port, "-q", "Say hi", "--model", str(model_path), LLAMA_SERVER=str(stub)
    )
    assert proc.returncode in ANSWERED, proc.stderr
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    cfg = cfg_for(tmp_path, port)
    assert argv == server.build_command(cfg, [], str(model_path))
    assert wait_gone(port) == []


def test_dead_managed_server_is_restarted(tmp_path):
    port = free_port()
    cfg = cfg_for(tmp_path, port)
    messages: list[str] = []
    s = server.connect(cfg, tmp_path / "logs", messages.append)
    try:
        first = s.pid
        os.killpg(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while s.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.restarts == 1 and s.pid != first, messages
        assert any("died" in m for m in messages)
        assert s.health.state == server.Health.HEALTHY  # the restart is seen as healthy
        assert server.probe(s.endpoint.root).state == "ready"
        # the next request works
        with Client(s.base_url) as client:
            reply = client.chat(
                [{"role": "user", "content": "Say hi"}], [], sampling=Sampling(max_tokens=8)
            )
        assert reply.error is None and reply.usage["completion_tokens"] > 0
    finally:
        server.stop(s)
    assert wait_gone(port) == []


def test_detached_start_status_stop_with_pidfile(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    port = free_port()
    start = run_coder(tmp_path, port, "server", "start")
    assert start.returncode == 0, start.stderr
    try:
        status = run_coder(tmp_path, port, "server", "status")
        assert status.returncode == 0 and "HEALTHY" in status.stdout
        assert "coder server start" in status.stdout
        # a coder session reuses the detached server and leaves it running
        assert run_coder(tmp_path, port, "-q", "hi").returncode in ANSWERED
        assert servers_on(port)
    finally:
        stop = run_coder(tmp_path, port, "server", "stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert wait_gone(port) == []


def test_stop_never_kills_a_recycled_pid(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    victim = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ep = server.Endpoint("127.0.0.1", 9, "http://127.0.0.1:9/v1")
        path = server.pidfile_path(ep)
        path.parent.mkdir(parents=True)
        real = psutil.Process(victim.pid).create_time()
        path.write_text(f'{{"pid": {victim.pid}, "create_time": {real - 100}}}')
        assert server.stop_detached(ep) is False
        assert victim.poll() is None
    finally:
        victim.kill()


def test_a_reused_server_that_goes_away_is_replaced(tmp_path, model_path):
    # session A started a server; session B reuses it; A exits and takes it along
    port = free_port()
    cfg = cfg_for(tmp_path, port)
    cmd = server.build_command(cfg, [sys.executable, "-m", "coder.engine"], str(model_path))
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    messages: list[str] = []
    try:
        wait_healthy(f"http://127.0.0.1:{port}", first)
        s = server.connect(cfg, tmp_path / "logs", messages.append)
        assert not s.managed
        first.terminate()
        first.wait(10)
        deadline = time.monotonic() + 60
        while s.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.managed and s.restarts == 1, messages
        assert any("went away" in m for m in messages)
        assert server.probe(s.endpoint.root).state == "ready"
    finally:
        if first.poll() is None:
            first.kill()
        server.stop(s)
    assert wait_gone(port) == []  # ours now, so ours to stop


@pytest.mark.engine
def test_two_sessions_started_at_once_share_one_server(tmp_path, monkeypatch):
    """Both find no server; one starts it, the other waits for the start lock and reuses
    it, instead of failing to bind the same port. (When the first then exits it stops its
    server, and a request of the second still in flight fails: that hand-over is not
    graceful yet.)"""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    port = free_port()
    env = dict(os.environ, CODER_LOG_DIR=str(tmp_path / "logs"), CODER_AGENT__MAX_STEPS="1")
    cmd = [sys.executable, "-m", "coder", "-q", "hi", "--max-tokens", "4"]
    cmd += ["--base-url", f"http://127.0.0.1:{port}/v1"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    first = [err.splitlines()[0] if err else "" for err in errs]
    assert sum(line.startswith("coder: starting llama.cpp server") for line in first) == 1, errs
    assert not any("bind" in err or "exited with code" in err for err in errs), errs
    assert server.probe(f"http://127.0.0.1:{port}").state == "down"  # nothing is left


def test_a_port_held_by_a_silent_listener_is_reported_not_started_on(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts (the kernel does), never answers
    port = listener.getsockname()[1]
    try:
        assert server.probe(f"http://127.0.0.1:{port}", timeout=0.3).state == "foreign"
        cfg = cfg_for(tmp_path, port)
        with pytest.raises(server.ServerError, match=f"127.0.0.1:{port} is held by something"):
            server.connect(cfg, tmp_path / "logs")
    finally:
        listener.close()


def engine_busy(root: str) -> bool:
    """The engine is working on a request (/slots: a slot is processing)."""
    import json
    import urllib.request

    with urllib.request.urlopen(root + "/slots", timeout=5) as resp:
        return any(slot.get("is_processing") for slot in json.load(resp))


def long_prompt() -> str:
    # a few thousand tokens: the engine spends seconds reading it before the first byte
    return "Summarise these words. " + "apple river stone cloud " * 700


def post_and_hold(url: str, body: dict) -> threading.Thread:
    """POST a request in a thread and keep the connection open without reading."""
    import json
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((u.hostname, u.port))
    head = (
        f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    sock.sendall(head + data)
    held = threading.Thread(target=lambda: (sock.recv(1), time.sleep(60), sock.close()))
    held.daemon = True
    held.start()
    return held


def test_an_engine_mid_request_stops_on_the_second_sigterm(tmp_path, model_path):
    """llama.cpp's graceful stop waits for the reply in flight; the stop coder sends
    follows with llama-server's "second interrupt", so it is not killed after its grace."""
    from tests.conftest import start_engine

    proc, url = start_engine(model_path, tmp_path / "engine.log")
    root = url.removesuffix("/v1")
    try:
        post_and_hold(root + "/completion", {"prompt": long_prompt(), "n_predict": 4000})
        deadline = time.monotonic() + 30
        while not engine_busy(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine_busy(root)
        server.stop_process(proc, grace=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGTERM  # not SIGKILL after 120 s


def test_sigterm_mid_request_stops_the_engine_and_logs_the_call(tmp_path):
    """coder -q against its own engine, SIGTERM while the engine reads the prompt: the
    call is logged as interrupted, session_end says terminated, the engine is gone."""
    from coder.log import list_log_files, read_sessions

    port = free_port()
    env = coder_env(tmp_path, port, CODER_LLM__SERVER__CTX_SIZE="8192")
    coder = subprocess.Popen(
        [sys.executable, "-m", "coder", "-q", long_prompt()],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        wait_healthy(root, timeout=60)
        deadline = time.monotonic() + 60
        while not engine_busy(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine_busy(root)
        coder.send_signal(signal.SIGTERM)
        _, err = coder.communicate(timeout=60)
    finally:
        if coder.poll() is None:
            coder.kill()
    assert coder.returncode == 128 + signal.SIGTERM, err
    assert wait_gone(port) == []
    engine_log = (tmp_path / "logs" / "llama-server.log").read_text(errors="replace")
    assert "waiting for main loop exit" in engine_log  # it took the SIGTERM and began to stop
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    [call] = session.calls
    assert call.interrupted and call.request is not None
    assert session.end is not None and session.end["reason"] == "terminated"
