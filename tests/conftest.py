"""Shared fixtures: a real llama.cpp engine serving the real SmolLM2 model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coder import provision

# A suite started in the background by a script (`make test &`, nohup) inherits SIGINT
# ignored, and so would every coder it starts: the tests that Ctrl-C one would fail. An
# ignored signal stays ignored across exec; a Python handler does not, so installing one
# here gives the children the default disposition back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Tests (and the coder processes they start) never read the real ~/.config/coder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    # nor write conversations into the real ~/.local/state/coder/sessions
    monkeypatch.setenv("CODER_REPL__SESSIONS_DIR", str(tmp_path_factory.mktemp("sessions")))


@pytest.fixture
def srv():
    """A scripted OpenAI-compatible server (real sockets, real SSE) for one test."""
    from tests.scripted_server import ScriptedServer

    with ScriptedServer() as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


@pytest.fixture(scope="session")
def model_path() -> Path:
    return provision.ensure_model()


def start_engine(model_path: Path, log: Path, *extra: str):
    """Start the real engine on a free port; returns (process, base URL ".../v1")."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "coder.engine",
        "-m",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        "8192",
        "-np",
        "1",
        "--alias",
        "smollm2",
        "--metrics",
        "--cache-ram",
        "256",
        "-t",
        "2",
        *extra,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(root, proc)
    except BaseException:
        stop_engine(proc)
        raise
    return proc, root + "/v1"


def stop_engine(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


@pytest.fixture(scope="session")
def engine_url(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """Base URL (".../v1") of one real engine shared by the whole test session."""
    proc, url = start_engine(model_path, tmp_path_factory.mktemp("engine") / "engine.log")
    try:
        yield url
    finally:
        stop_engine(proc)


class Hung(BaseException):  # not an Exception: dispatch must not turn it into an error result
    pass


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) if a tool blocks, e.g. on opening a FIFO."""

    def on_alarm(*_):
        raise Hung("the tool blocked")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
