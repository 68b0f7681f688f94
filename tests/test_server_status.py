"""Server visibility: health states, `coder server status [--watch]`, `coder server logs`."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from coder import server
from coder.server import Health, HealthCheck
from coder.server.logs import tail_offset
from tests import cli
from tests.conftest import free_port
from tests.repl_harness import repl_config, repl_session
from tests.scripted_server import Status

# -- the states ---------------------------------------------------------------------------


def test_health_counts_failures_in_a_row_outside_the_start_period(srv):
    closed = f"http://127.0.0.1:{free_port()}"
    check = HealthCheck(retries=3)
    assert check.state == Health.UNKNOWN
    assert check.observe(server.probe(srv.root)) == Health.HEALTHY
    # fewer than `retries` failures leave it as it was; the third in a row makes it unhealthy
    assert check.observe(server.probe(closed)) == Health.HEALTHY
    assert check.observe(server.probe(closed)) == Health.HEALTHY and check.failures == 2
    assert "refused" in check.detail.lower()
    assert check.observe(server.probe(closed)) == Health.UNHEALTHY
    # an answer resets the count: loading is an answer
    srv.route("GET", "/health", Status(503))
    assert check.observe(server.probe(srv.root)) == Health.LOADING and check.failures == 0
    assert check.observe(server.probe(closed)) == Health.LOADING
    # an HTTP error is not a failed check but something wrong: at once
    srv.route("GET", "/health", Status(500))
    assert check.observe(server.probe(srv.root)) == Health.ERROR
    assert check.exited(1) == Health.ERROR and "code 1" in check.detail


def test_failures_in_the_start_period_do_not_count():
    closed = f"http://127.0.0.1:{free_port()}"
    check = HealthCheck(retries=1, start_period=3600, started=time.time())
    assert check.observe(server.probe(closed)) == Health.UNKNOWN and check.failures == 0
    check.started -= 7200  # the same server, an hour past its start period
    assert check.observe(server.probe(closed)) == Health.UNHEALTHY


def test_the_repl_toolbar_shows_a_server_that_is_not_healthy(tmp_path, srv):
    with repl_session(repl_config(tmp_path, srv.base_url)) as s:
        health = s.repl.rt.server.health
        assert health.state == Health.HEALTHY and "server" not in s.repl.toolbar()
        closed = server.probe(f"http://127.0.0.1:{free_port()}")
        for _ in range(health.retries):
            health.observe(closed)
        assert "server UNHEALTHY" in s.repl.toolbar()


# -- coder server status ----------------------------------------------------------------


def coder(
    tmp_path: Path, base_url: str, *args: str, text: bool = True
) -> subprocess.CompletedProcess:
    return cli.coder(*args, "--base-url", base_url, cwd=tmp_path, env=env_for(tmp_path), text=text)


def env_for(tmp_path: Path) -> dict:
    return dict(
        os.environ, XDG_STATE_HOME=str(tmp_path / "state"), CODER_LOG_DIR=str(tmp_path / "logs")
    )


def rows(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines()[1:]:
        key, _, value = line.strip().partition(" ")
        out[key] = value.strip()
    return out


def test_status_of_a_stopped_server(tmp_path):
    port = free_port()
    done = coder(tmp_path, f"http://127.0.0.1:{port}/v1", "server", "status")
    assert done.returncode == 3
    got = rows(done.stdout)
    assert got["state"].startswith("UNHEALTHY (nothing answers on 127.0.0.1:")
    assert got["pid"] == "-" and got["port"] == str(port) and got["uptime"] == "-"


def test_status_of_a_server_that_died_leaving_its_pidfile(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    port = free_port()
    ep = server.Endpoint("127.0.0.1", port, f"http://127.0.0.1:{port}/v1")
    pidfile = tmp_path / "state" / "coder" / f"server-127.0.0.1-{port}.json"
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(json.dumps({"pid": dead.pid, "create_time": 1.0, "base_url": ep.base_url}))
    done = coder(tmp_path, ep.base_url, "server", "status")
    assert done.returncode == 3
    assert rows(done.stdout)["state"] == (
        f"ERROR (the server `coder server start` left (pid {dead.pid}) has exited)"
    )


def test_status_of_a_loading_server(tmp_path, srv):
    srv.route("GET", "/health", Status(503))  # llama.cpp's "Loading model"
    done = coder(tmp_path, srv.base_url, "server", "status")
    assert done.returncode == 3
    got = rows(done.stdout)
    assert got["state"] == "LOADING" and got["port"] == str(srv.port)
    assert got["pid"] == str(os.getpid())  # the process listening on the port: this one
    assert got["slots"] == "-"


def test_status_of_a_healthy_server(tmp_path, engine_url):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    req = urllib.request.Request(
        engine_url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=300) as resp:
        assert resp.status == 200
    done = coder(tmp_path, engine_url, "server", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    got = rows(done.stdout)
    assert got["state"] == "HEALTHY"
    pid = int(got["pid"])
    assert "coder.engine" in " ".join(psutil.Process(pid).cmdline())
    assert got["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf (alias smollm2)"
    assert got["slots"] == "1: 1 idle, 0 processing" and got["context"] == "8192 tokens per slot"
    assert "tok/s generating" in got["tokens/s"] and got["uptime"] != "-"


def test_watch_through_a_pipe_counts_failures_and_ends_on_ctrl_c(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder", "server", "status", "--watch", "--base-url", closed],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    states = [line.split()[1] for line in lines]
    assert states == ["UNKNOWN", "UNKNOWN", "UNHEALTHY"], lines  # 3 failures in a row
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_watch_on_a_terminal_is_a_live_view(tmp_path, srv):
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder", "server", "status", "--watch", "--base-url", srv.base_url],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60  # a guard against hanging, not a measurement
        while b"HEALTHY" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 4096)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        while select.select([master], [], [], 0.5)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:  # the other end closed
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "HEALTHY" in text and "Ctrl-C to stop" in text and "\x1b[" in text
    assert code == 0 and "Traceback" not in text


def test_status_flags_belong_to_their_action(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    watch = coder(tmp_path, url, "server", "stop", "--watch")
    assert watch.returncode == 2 and watch.stderr.strip().splitlines() == [
        "coder: --watch goes with `coder server status`"
    ]
    follow = coder(tmp_path, url, "server", "status", "--follow")
    assert follow.returncode == 2 and "--tail and --follow go with" in follow.stderr


# -- coder server logs ------------------------------------------------------------------


def test_tail_offset_finds_the_last_lines():
    def tail(data: bytes, n: int) -> bytes:
        f = io.BytesIO(data)
        f.seek(tail_offset(f, n))
        return f.read()

    assert tail(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert tail(b"a\nb\nc", 2) == b"b\nc"  # a last line without its newline counts
    assert tail(b"a\nb\n", 5) == b"a\nb\n" and tail(b"a\nb\n", 0) == b""
    assert tail(b"", 3) == b""
    big = b"".join(b"line %d %s\n" % (i, b"x" * 100) for i in range(3000))  # many blocks
    assert tail(big, 1500) == b"".join(big.splitlines(keepends=True)[-1500:])


def test_logs_prints_the_file_or_its_tail(tmp_path):
    log = tmp_path / "logs" / "llama-server.log"
    log.parent.mkdir()
    log.write_bytes(b"one\ntwo\nthree \xff\n")
    url = f"http://127.0.0.1:{free_port()}/v1"
    whole = coder(tmp_path, url, "server", "logs", text=False)
    assert whole.returncode == 0 and whole.stdout == b"one\ntwo\nthree \xff\n"
    last = coder(tmp_path, url, "server", "logs", "--tail", "1", text=False)
    assert last.returncode == 0 and last.stdout == b"three \xff\n"  # bytes as written
    bad = coder(tmp_path, url, "server", "logs", "--tail", "-1")
    assert bad.returncode == 2
    assert bad.stderr == "coder: --tail: not a number of lines (0 or more): -1\n"


def test_logs_without_a_log_is_one_line_and_exit_8(tmp_path):
    done = coder(tmp_path, f"http://127.0.0.1:{free_port()}/v1", "server", "logs", "--follow")
    assert done.returncode == 8
    assert done.stderr.splitlines() == [
        f"coder: no server log at {tmp_path / 'logs' / 'llama-server.log'} "
        "(no server was started with this logging.dir)"
    ]


def test_logs_follow_streams_new_lines_until_ctrl_c(tmp_path):
    log = tmp_path / "logs" / "llama-server.log"
    log.parent.mkdir()
    log.write_text("old 1\nold 2\n")
    cmd = [sys.executable, "-m", "coder", "server", "logs", "--tail", "1", "--follow"]
    proc = subprocess.Popen(
        [*cmd, "--base-url", f"http://127.0.0.1:{free_port()}/v1"],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "old 2\n"
        with open(log, "a") as f:
            f.write("new 1\n")
        assert proc.stdout.readline() == "new 1\n"
        with open(log, "a") as f:
            f.write("new 2\nnew 3\n")
        assert [proc.stdout.readline(), proc.stdout.readline()] == ["new 2\n", "new 3\n"]
        # a server started again writes into a new file: followed from its start
        fresh = log.with_suffix(".new")
        fresh.write_text("restarted\n")
        fresh.replace(log)
        assert proc.stdout.readline() == "restarted\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == ""
