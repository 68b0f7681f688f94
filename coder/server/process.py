"""One server process: spawned in its own group, waited for until ready."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from coder.procs import group_alive, kill_group, signal_group
from coder.server.command import redact
from coder.server.endpoint import Endpoint, ServerError, probe
from coder.server.health import HealthCheck

Notify = Callable[[str], None]
LOG_NAME = "llama-server.log"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "coder"


@contextlib.contextmanager
def start_lock(ep: Endpoint, timeout: float) -> Iterator[None]:
    """One coder at a time starts a server on `ep`: the others wait here, then find it
    running and reuse it (two sessions started at once would both bind the port)."""
    path = state_dir() / f"server-{ep.host}-{ep.port}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"another coder has been starting a server on {ep.address} for "
                        f"{timeout:g} s (llm.startup_timeout); lock {path}"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass
class Server:
    """A usable llama.cpp server: one coder started (managed) or one it found."""

    endpoint: Endpoint
    managed: bool
    props: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    model: str | None = None
    env: dict[str, str] | None = field(default=None, repr=False)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    health: HealthCheck = field(default_factory=HealthCheck)  # kept by manager.watch
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watch: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if coder dies without cleaning up (even kill -9).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def key_pipe(api_key: str) -> int:
    """The read end of a pipe holding the key and a newline, its write end closed: the
    server reads it as `--api-key-file /dev/fd/N` (llama-server and the engine alike)."""
    data = api_key.encode() + b"\n"
    if len(data) > select.PIPE_BUF * 8:  # would not fit the pipe's buffer: write would block
        raise ServerError("llm.api_key: longer than 32 KiB; that is not an api key")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


def spawn(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    detached: bool = False,
    api_key: str | None = None,
) -> subprocess.Popen:
    key_fd = key_pipe(api_key) if api_key else None
    if key_fd is not None:
        command = [*command, "--api-key-file", f"/dev/fd/{key_fd}"]
    try:
        return _popen(command, log_path, env, detached, key_fd)
    finally:
        if key_fd is not None:
            os.close(key_fd)


def _popen(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None,
    detached: bool,
    key_fd: int | None,
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(
            f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(redact(command))}\n".encode()
        )
        log.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: stop() kills the whole tree
            preexec_fn=None if detached else _die_with_parent,
            close_fds=True,
            pass_fds=() if key_fd is None else (key_fd,),
        )


# An idle llama.cpp server stops in about 0.1 s; one still serving a request waits for it
# to finish (measured on the engine: the whole reply, 30 s and more), unless it gets a
# second signal, which llama-server and the engine take as "stop now".
SETTLE = 0.5


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a server coder started without waiting out a request in flight: SIGTERM,
    after SETTLE seconds a second SIGTERM, after `grace` SIGKILL of the whole group."""
    if proc.poll() is not None and not group_alive(proc.pid):
        return
    signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(SETTLE)
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
    kill_group(proc, grace=max(0.0, grace - SETTLE))


def log_tail(path: Path | None, lines: int = 8) -> str:
    if not path or not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, 2) - 16384))
        text = fh.read().decode("utf-8", "replace")
    text = text.rsplit("\n==== ", 1)[-1]  # only this start's output
    return "\n".join(text.strip().splitlines()[1:][-lines:])


def wait_ready(server: Server, timeout: float, api_key: str | None) -> dict:
    """Poll /health until ready; fail fast when the process exits; kill it on timeout."""
    deadline = time.monotonic() + timeout
    root = server.endpoint.root
    while True:
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerError(
                f"llama-server exited with code {server.proc.returncode} while starting "
                f"on {server.endpoint.address} with {server.model or 'its model'}:\n"
                f"{log_tail(server.log_path)}"
            )
        p = probe(root, api_key, timeout=1.0)
        if p.state == "ready":
            return p.props
        if time.monotonic() > deadline:
            if server.proc is not None:
                kill_group(server.proc)
            raise ServerError(
                f"llama-server on {server.endpoint.address} not ready after {timeout:g} s "
                f"(llm.startup_timeout); stopped it. Last log lines:\n{log_tail(server.log_path)}"
            )
        time.sleep(0.05)
