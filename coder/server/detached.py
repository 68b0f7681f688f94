"""`coder server start`: a server left running in the background, found again by its pidfile."""

from __future__ import annotations

import json
from pathlib import Path

from coder.config import Config
from coder.procs import kill_group
from coder.server.command import redact
from coder.server.endpoint import Endpoint, ServerError, endpoint, probe
from coder.server.manager import start
from coder.server.process import Notify, Server, start_lock, state_dir


def pidfile_path(ep: Endpoint) -> Path:
    return state_dir() / f"server-{ep.host}-{ep.port}.json"


def start_detached(cfg: Config, log_dir: Path, notify: Notify = lambda m: None) -> Server:
    import psutil

    ep = endpoint(cfg)
    with start_lock(ep, cfg.llm.startup_timeout):
        p = probe(ep.root, cfg.llm.api_key)
        if p.state in ("ready", "loading"):
            raise ServerError(f"a llama.cpp server already answers on {ep.address}")
        if p.state == "foreign":
            raise ServerError(f"{ep.address} is held by something that is not a llama.cpp server")
        server = start(cfg, log_dir, notify, detached=True)
    info = {
        "pid": server.pid,
        "create_time": psutil.Process(server.pid).create_time(),
        "base_url": ep.base_url,
        "command": redact(server.command),
        "log": str(server.log_path),
    }
    from coder.atomic import atomic_write

    atomic_write(pidfile_path(ep), json.dumps(info, indent=1).encode())
    return server


def read_pidfile(ep: Endpoint) -> dict | None:
    path = pidfile_path(ep)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pidfile_process(ep: Endpoint):
    """The live process a pidfile names, or None (gone, or the PID was recycled)."""
    import psutil

    info = read_pidfile(ep)
    if not info:
        return None
    try:
        proc = psutil.Process(info["pid"])
        if abs(proc.create_time() - info["create_time"]) < 0.01:
            return proc
    except (psutil.Error, KeyError, TypeError):
        pass
    return None


def stop_detached(ep: Endpoint, grace: float = 5.0) -> bool:
    """Stop the server `coder server start` left running; False when none is recorded."""

    proc = pidfile_process(ep)
    pidfile_path(ep).unlink(missing_ok=True)
    if proc is None:
        return False
    kill_group(proc, grace)
    return True
